"""Reading an UploadItem stream (or one file of an UploadItems stream) into a sink: offsets,
per-message CRC32C, the declared size, and the optional whole-object sha256 sent with
finish_write."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import google_crc32c

from corral.errors import DataLoss, InvalidArgument
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from services.upload.sink import HashingBlobSink
from services.upload.spec import too_large

_SHA256 = re.compile(r"[0-9a-f]{64}")

# Both upload request messages share these fields (write_offset, data, finish_write, crc32c,
# sha256).
ChunkMessage = upload_pb2.UploadItemRequest | upload_pb2.UploadItemsRequest


def check_message(message: ChunkMessage, data: bytes) -> None:
    """Refuses a message whose data does not match its crc32c (the data is not kept), or a
    malformed sha256."""
    if message.HasField("crc32c"):
        actual = google_crc32c.value(data)
        if actual != message.crc32c:
            raise DataLoss(f"crc32c of the data at write_offset {message.write_offset} is "
                           f"{actual}, but the message declared {message.crc32c}")
    if message.sha256:
        if not message.finish_write:
            raise InvalidArgument("sha256 may only be sent with finish_write")
        if not _SHA256.fullmatch(message.sha256.lower()):
            raise InvalidArgument("sha256 must be 64 hexadecimal characters")


async def receive(first: upload_pb2.UploadItemRequest,
                  messages: AsyncIterator[upload_pb2.UploadItemRequest],
                  sink: HashingBlobSink, declared_size: int | None,
                  max_bytes: int) -> str | None:
    """Streams every message's data into `sink` up to the one with finish_write and returns
    that message's sha256 ("" if none); None if the stream ended without finish_write."""
    message: upload_pb2.UploadItemRequest | None = first
    while True:
        await accept(message, sink, declared_size, max_bytes)
        if message.finish_write:
            return message.sha256.lower()
        message = await anext(messages, None)
        if message is None:
            return None
        if message.WhichOneof("first_message"):
            raise InvalidArgument("only the first message may carry spec or upload_id")


async def accept(message: ChunkMessage, sink: HashingBlobSink,
                 declared_size: int | None, max_bytes: int) -> None:
    """Checks one message against what `sink` received so far and feeds it its data; data
    that would take the upload past `max_bytes` is refused before it is stored."""
    if message.write_offset != sink.size:
        raise InvalidArgument(f"write_offset {message.write_offset}, expected {sink.size}")
    data = message.data  # each access copies the bytes out of the message
    check_message(message, data)
    if data:
        if declared_size is not None and sink.size + len(data) > declared_size:
            raise InvalidArgument(
                f"received more than the declared spec.size of {declared_size} bytes")
        if sink.size + len(data) > max_bytes:
            raise too_large(f"with this message the upload would hold {sink.size + len(data)} "
                            "bytes", max_bytes)
        await sink.write(data)
