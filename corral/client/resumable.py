"""Large uploads through a resumable session: start it, stream from the persisted size, and
when the stream fails with a transient error (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED), back
off, ask the server how much it persisted and continue from there, within a bounded number of
attempts and total time. The same request_id makes a retried start return the same session.

The sha256 sent with finish_write covers the whole object: after a resume the client re-reads
its own first `persisted_size` bytes locally (never resends them) to rebuild the hash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import grpc

from corral.client.convert import OUTCOMES, item_to_dict
from corral.client.results import UploadResult
from corral.client.uploads import (
    StreamState,
    call_upload,
    result_from_response,
    upload_requests,
)
from corral.errors import Aborted, CorralError, DeadlineExceeded, Unavailable
from corral.rpc import translate
from corral.upload.v1 import upload_service_pb2

MIB = 1024 * 1024
_RETRYABLE = (Unavailable, DeadlineExceeded, Aborted)
_REHASH_CHUNK = 4 * MIB


@dataclass(frozen=True)
class ResumePolicy:
    """Files larger than `threshold` bytes go through a session; a failed stream is resumed
    at most `attempts` times and not after `total_seconds`, pausing 0.25 s, 0.5 s, ... up to
    `max_backoff_seconds` before each try."""

    threshold: int = 16 * MIB
    attempts: int = 10
    total_seconds: float = 600.0
    max_backoff_seconds: float = 5.0

    def backoff(self, attempt: int) -> float:
        return min(self.max_backoff_seconds, 0.25 * 2 ** attempt)


class ResumableSender:
    """Sends one upload through a session. `stub` is the UploadService stub (for the unary
    session calls); `upload_item` the stream-unary UploadItem callable."""

    def __init__(self, stub: Any, upload_item: Callable[..., Any], timeout: float,
                 policy: ResumePolicy) -> None:
        self._stub, self._upload_item = stub, upload_item
        self._timeout, self._policy = timeout, policy

    def send(self, spec: upload_service_pb2.UploadSpec, open_source: Callable[[], BinaryIO],
             chunk_size: int, local_path: str | None,
             on_bytes: Callable[[int], None] | None = None,
             cancel: threading.Event | None = None) -> UploadResult:
        deadline = time.monotonic() + self._policy.total_seconds
        attempt = 0

        def retry_later(error: CorralError) -> None:
            nonlocal attempt
            attempt += 1
            if (attempt >= self._policy.attempts or time.monotonic() > deadline
                    or (cancel is not None and cancel.is_set())):
                raise error
            time.sleep(self._policy.backoff(attempt - 1))

        started = self._call_retrying(self._stub.StartResumableUpload,
                                      upload_service_pb2.StartResumableUploadRequest(spec=spec),
                                      retry_later)
        if not started.upload_id:  # skipped: the item exists
            return UploadResult(item=item_to_dict(started.item),
                                outcome=OUTCOMES.get(started.outcome, "skipped"),  # type: ignore[arg-type]
                                local_path=local_path)
        upload_id, offset, resumed_from = started.upload_id, 0, []
        state = StreamState()
        try:
            while True:
                try:
                    with open_source() as source:
                        state = StreamState(hasher=_hash_prefix(source, offset), sent=offset)
                        response = self._stream(upload_id, source, chunk_size, state,
                                                on_bytes, cancel)
                    result = result_from_response(response, state, local_path)
                    return dataclasses.replace(result, resumed_from=tuple(resumed_from))
                except _RETRYABLE as exc:
                    retry_later(exc)
                status = self._call_retrying(
                    self._stub.QueryUploadStatus,
                    upload_service_pb2.QueryUploadStatusRequest(upload_id=upload_id),
                    retry_later)
                if status.HasField("item"):  # the finish succeeded; its reply was lost
                    finished = upload_service_pb2.UploadItemResponse(item=status.item,
                                                                     outcome=status.outcome)
                    result = result_from_response(finished, state, local_path)
                    return dataclasses.replace(result, resumed_from=tuple(resumed_from))
                offset = status.persisted_size
                if on_bytes is not None and state.sent != offset:
                    on_bytes(offset - state.sent)  # what is sent again
                resumed_from.append(offset)
        except BaseException:
            self._cancel_quietly(upload_id)
            raise

    def _stream(self, upload_id: str, source: BinaryIO, chunk_size: int, state: StreamState,
                on_bytes: Callable[[int], None] | None,
                cancel: threading.Event | None) -> upload_service_pb2.UploadItemResponse:
        requests = upload_requests(None, source, chunk_size, state, on_bytes, cancel,
                                   upload_id=upload_id)
        return call_upload(self._upload_item, requests, state)

    def _call_retrying(self, method: Callable[..., Any], request: Any,
                       retry_later: Callable[[CorralError], None]) -> Any:
        while True:
            try:
                return method(request, timeout=self._timeout)
            except grpc.RpcError as exc:
                error = translate(exc)
                if not isinstance(error, _RETRYABLE):
                    raise error from exc
                retry_later(error)

    def _cancel_quietly(self, upload_id: str) -> None:
        """A session this client gives up on is discarded now rather than at its expiry."""
        with contextlib.suppress(grpc.RpcError):
            self._stub.CancelResumableUpload(
                upload_service_pb2.CancelResumableUploadRequest(upload_id=upload_id),
                timeout=min(self._timeout, 5.0))


def _hash_prefix(source: BinaryIO, size: int) -> hashlib._Hash:
    """The sha256 state of the source's first `size` bytes, leaving it positioned there."""
    digest = hashlib.sha256()
    left = size
    while left:
        chunk = source.read(min(left, _REHASH_CHUNK))
        if not chunk:
            raise OSError(f"the source ended before byte {size} it had sent")
        digest.update(chunk)
        left -= len(chunk)
    return digest
