"""UploadItem and UploadItems requests encoded without copying each chunk into a message.

Building `UploadItemRequest(data=chunk)` copies the chunk into the message and serializing it
copies it again; with the bytes just read that is three fresh 1 MiB buffers per chunk, and on
fresh pages the page faults cost more than hashing. Here the small fields are serialized by
protobuf and the data field (tag, length, bytes) is appended: the chunk is copied once,
straight into the wire bytes. Protobuf parsers accept fields in any order, so the bytes parse
to exactly the message the generated serializer would have produced.
"""

from __future__ import annotations

from dataclasses import dataclass

from corral.upload.v1 import upload_service_pb2

_SERVICE = upload_service_pb2.DESCRIPTOR.services_by_name["UploadService"]
UPLOAD_ITEM_METHOD = f"/{_SERVICE.full_name}/UploadItem"
UPLOAD_ITEMS_METHOD = f"/{_SERVICE.full_name}/UploadItems"
_DATA_FIELD = upload_service_pb2.UploadItemRequest.DESCRIPTOR.fields_by_name["data"]
_DATA_TAG = bytes([(_DATA_FIELD.number << 3) | 2])  # wire type 2: length-delimited
assert _DATA_FIELD.number < 16, "the tag must stay one byte"
assert upload_service_pb2.UploadItemsRequest.DESCRIPTOR.fields_by_name["data"].number == \
    _DATA_FIELD.number, "both requests share the data tag"


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@dataclass(slots=True)
class ChunkRequest:
    """One UploadItemRequest (or UploadItemsRequest, for file `file_index` of a bulk
    stream); `spec` or `upload_id` only on the first, `sha256` (of the whole object) only on
    the last."""

    write_offset: int
    data: bytes
    finish_write: bool
    spec: upload_service_pb2.UploadSpec | None = None
    upload_id: str = ""
    crc32c: int | None = None
    sha256: str = ""
    file_index: int = 0

    def to_message(self) -> upload_service_pb2.UploadItemRequest:
        return upload_service_pb2.UploadItemRequest.FromString(encode_request(self))


def encode_request(request: ChunkRequest) -> bytes:
    """The request's wire bytes (the gRPC request serializer)."""
    small_fields = upload_service_pb2.UploadItemRequest(
        write_offset=request.write_offset, finish_write=request.finish_write,
        spec=request.spec, crc32c=request.crc32c, sha256=request.sha256)
    if request.upload_id:
        small_fields.upload_id = request.upload_id
    return _with_data(small_fields.SerializeToString(), request.data)


_BATCHED_FIELD = upload_service_pb2.UploadItemsRequest.DESCRIPTOR.fields_by_name["batched"]
_BATCHED_TAG = bytes([(_BATCHED_FIELD.number << 3) | 2])
assert _BATCHED_FIELD.number < 16, "the tag must stay one byte"


@dataclass(slots=True)
class BatchRequest:
    """Several UploadItemsRequests sent as one message: the first one's fields, the others
    in its `batched` field (for servers that announced it; see UPLOAD_BATCHED_HEADER)."""

    requests: list[ChunkRequest]


def encode_bulk_request(request: ChunkRequest | BatchRequest) -> bytes:
    """The wire bytes of the request as an UploadItemsRequest (the bulk stream's serializer).
    A batch is its first request's fields followed by every other request as an entry of
    `batched` (tag, length, the request's bytes); each chunk is copied once, by one join."""
    if not isinstance(request, BatchRequest):
        return b"".join(_bulk_parts(request))
    first, *rest = request.requests
    parts = _bulk_parts(first)
    for other in rest:
        inner = _bulk_parts(other)
        parts += (_BATCHED_TAG, _varint(sum(map(len, inner))), *inner)
    return b"".join(parts)


def _bulk_parts(request: ChunkRequest) -> list[bytes]:
    head = upload_service_pb2.UploadItemsRequest(
        file_index=request.file_index, write_offset=request.write_offset,
        finish_write=request.finish_write, spec=request.spec, crc32c=request.crc32c,
        sha256=request.sha256).SerializeToString()
    data = request.data
    return [head, _DATA_TAG, _varint(len(data)), data] if data else [head]


def _with_data(head: bytes, data: bytes) -> bytes:
    if not data:
        return head
    return b"".join((head, _DATA_TAG, _varint(len(data)), data))
