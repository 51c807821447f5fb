"""The SDK's resumable uploads with the upload stub replaced: no server involved."""

from __future__ import annotations

import hashlib
import io

import grpc
import pytest

from corral.catalog.v1 import resources_pb2
from corral.client.resumable import ResumableSender, ResumePolicy
from corral.errors import DeadlineExceeded, Unavailable
from corral.upload.v1 import upload_service_pb2 as upload_pb2

MIB = 1024 * 1024


class _Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._code.name


class FlakySessions:
    """A session server whose streams fail after `persist_per_call` bytes while `failures`
    last, persisting those bytes; then it stores the whole object."""

    def __init__(self, failures: int, persist_per_call: int,
                 code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.failures, self.persist_per_call, self.code = failures, persist_per_call, code
        self.persisted = b""
        self.first_offsets: list[int] = []
        self.cancelled: list[str] = []
        self.start_calls = 0

    def StartResumableUpload(self, request, timeout=None):  # noqa: N802
        self.start_calls += 1
        return upload_pb2.StartResumableUploadResponse(upload_id="a" * 32)

    def QueryUploadStatus(self, request, timeout=None):  # noqa: N802
        return upload_pb2.QueryUploadStatusResponse(persisted_size=len(self.persisted))

    def CancelResumableUpload(self, request, timeout=None):  # noqa: N802
        self.cancelled.append(request.upload_id)
        return upload_pb2.CancelResumableUploadResponse()

    def UploadItem(self, requests):  # noqa: N802
        messages = [m.to_message() for m in requests]
        assert messages[0].upload_id == "a" * 32
        self.first_offsets.append(messages[0].write_offset)
        assert messages[0].write_offset == len(self.persisted)
        data = b"".join(m.data for m in messages)
        if self.failures:
            self.failures -= 1
            self.persisted += data[:self.persist_per_call]
            raise _Failed(self.code)
        self.persisted += data
        last = messages[-1]
        assert last.finish_write and last.sha256 == hashlib.sha256(self.persisted).hexdigest()
        item = resources_pb2.Item(id="i" * 32, filename="/x.bin", size=len(self.persisted),
                                  sha256=last.sha256, type=resources_pb2.ITEM_TYPE_FILE)
        return upload_pb2.UploadItemResponse(item=item,
                                             outcome=resources_pb2.CREATE_OUTCOME_CREATED)


def send(server: FlakySessions, data: bytes, attempts: int = 5):
    policy = ResumePolicy(threshold=MIB, attempts=attempts, max_backoff_seconds=0.0)
    sender = ResumableSender(server, server.UploadItem, 5.0, policy)
    return sender.send(upload_pb2.UploadSpec(name="x.bin"), lambda: io.BytesIO(data),
                       256 * 1024, None)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.DEADLINE_EXCEEDED])
def test_a_failed_stream_resumes_from_the_persisted_size(code: grpc.StatusCode) -> None:
    data = bytes(range(256)) * (16 * 1024)  # 4 MiB
    server = FlakySessions(failures=2, persist_per_call=MIB, code=code)
    result = send(server, data)
    assert server.first_offsets == [0, MIB, 2 * MIB]
    assert result.resumed_from == (MIB, 2 * MIB)
    assert result.item["sha256"] == hashlib.sha256(data).hexdigest()
    assert server.start_calls == 1 and server.cancelled == []


def test_resuming_gives_up_after_the_attempts_and_cancels_the_session() -> None:
    server = FlakySessions(failures=10, persist_per_call=1000)
    with pytest.raises(Unavailable):
        send(server, b"x" * (2 * MIB), attempts=3)
    assert len(server.first_offsets) == 3 and server.cancelled == ["a" * 32]


def test_a_deadline_on_start_is_retried() -> None:
    server = FlakySessions(failures=0, persist_per_call=0)
    start = server.StartResumableUpload
    calls = []

    def flaky_start(request, timeout=None):
        calls.append(request.spec.name)
        if len(calls) == 1:
            raise _Failed(grpc.StatusCode.DEADLINE_EXCEEDED)
        return start(request, timeout)

    server.StartResumableUpload = flaky_start
    assert send(server, b"y" * MIB).outcome == "created"
    assert calls == ["x.bin", "x.bin"]

    def always_late(request, timeout=None):
        raise _Failed(grpc.StatusCode.DEADLINE_EXCEEDED)

    server.StartResumableUpload = always_late
    with pytest.raises(DeadlineExceeded):
        send(server, b"y" * MIB, attempts=2)
