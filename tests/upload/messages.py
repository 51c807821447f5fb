"""Builders of UploadItemRequest streams, shared by the domain and service tests."""

from __future__ import annotations

from collections.abc import Iterator

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
