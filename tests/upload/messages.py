"""Builders of UploadItemRequest streams, shared by the domain and service tests."""

from __future__ import annotations

from collections.abc import Iterator

import google_crc32c

from corral.upload.v1 import upload_service_pb2 as upload_pb2

CHUNK = 256 * 1024


def upload_requests(spec: upload_pb2.UploadSpec, data: bytes, chunk: int = CHUNK,
                    finish: bool = True) -> Iterator[upload_pb2.UploadItemRequest]:
    """The spec with the first chunk, then one message per chunk; finish_write on the last."""
    offsets = list(range(0, len(data), chunk)) or [0]
    for index, offset in enumerate(offsets):
        message = upload_pb2.UploadItemRequest(write_offset=offset,
                                               data=data[offset:offset + chunk])
        if index == 0:
            message.spec.CopyFrom(spec)
        message.finish_write = finish and index == len(offsets) - 1
        yield message


def session_requests(upload_id: str, data: bytes, start: int = 0, chunk: int = CHUNK,
                     finish: bool = True) -> Iterator[upload_pb2.UploadItemRequest]:
    """A resumable session's stream from `start`: upload_id on the first message, crc32c on
    every message, finish_write on the last when `finish`."""
    offsets = list(range(start, len(data), chunk)) or [start]
    for index, offset in enumerate(offsets):
        piece = data[offset:offset + chunk]
        message = upload_pb2.UploadItemRequest(write_offset=offset, data=piece,
                                               crc32c=google_crc32c.value(piece))
        if index == 0:
            message.upload_id = upload_id
        message.finish_write = finish and index == len(offsets) - 1
        yield message


def bulk_file_messages(index: int, spec: upload_pb2.UploadSpec | None, data: bytes,
                       chunk: int = CHUNK, finish: bool = True, crc: bool = True,
                       ) -> list[upload_pb2.UploadItemsRequest]:
    """One file's UploadItems messages: spec on the first, crc32c on each, finish_write on the
    last when `finish`."""
    offsets = list(range(0, len(data), chunk)) or [0]
    messages = []
    for number, offset in enumerate(offsets):
        piece = data[offset:offset + chunk]
        message = upload_pb2.UploadItemsRequest(file_index=index, write_offset=offset,
                                                data=piece)
        if crc:
            message.crc32c = google_crc32c.value(piece)
        if number == 0 and spec is not None:
            message.spec.CopyFrom(spec)
        message.finish_write = finish and number == len(offsets) - 1
        messages.append(message)
    return messages


def interleaved(*files: list[upload_pb2.UploadItemsRequest],
                ) -> Iterator[upload_pb2.UploadItemsRequest]:
    """The files' messages round-robin, each file's own messages in order."""
    iterators = [iter(f) for f in files]
    while iterators:
        for iterator in list(iterators):
            message = next(iterator, None)
            if message is None:
                iterators.remove(iterator)
            else:
                yield message
