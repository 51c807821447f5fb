"""Uploading many small files over UploadItems streams, many files per gRPC stream.

Each stream is run by one thread that reads results as the server finishes files. Its
request iterator (run by gRPC in another thread) takes the next file from a queue shared by
all streams, reads it whole (bulk files are small) and sends it as one message, or several
of `chunk_size`, with each message's crc32c and the file's sha256 on the last. Once the
server has announced that it reads `batched` (UPLOAD_BATCHED_HEADER, checked after the
stream's first file), whole single-message files go several per message, up to `chunk_size`
bytes: each message costs both sides far more CPU than a small file's bytes. The server
bounds what a stream has in flight and stops reading beyond it, so the sender never gets far
ahead and memory stays at about one message per stream on this side.

A stream that fails with UNAVAILABLE or ABORTED is retried with the files it had no result
for, under the same request_ids, so a file the server did finish returns its first result.
A stream that fails for good fails its unanswered files and those not yet sent. A server
without UploadItems (UNIMPLEMENTED) gets the files one call each.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import google_crc32c
import grpc

from corral.client.results import UploadResult
from corral.client.uploads import (
    PlannedFile,
    StreamState,
    UploadCancelled,
    result_from_response,
)
from corral.client.wire import BatchRequest, ChunkRequest
from corral.errors import Aborted, CorralError, Internal, Unavailable, error_for_code
from corral.rpc import UPLOAD_BATCHED_HEADER, translate
from corral.upload.v1 import upload_service_pb2

# Files up to this size go on bulk streams; larger ones one call each (or resumable).
BULK_MAX_FILE_BYTES = 4 * 1024 * 1024
_STREAM_ATTEMPTS = 3
# At most this many files per batched message (and at most chunk_size bytes of them).
BATCH_MAX_FILES = 64

Outcome = UploadResult | BaseException
BulkCall = Callable[[Iterator[ChunkRequest | BatchRequest]],
                   Iterator[upload_service_pb2.UploadItemsResponse]]


class _BulkUnsupported(Exception):
    """The server has no UploadItems."""


@dataclass
class BulkFile:
    entry: PlannedFile
    spec: upload_service_pb2.UploadSpec | None = None
    state: StreamState = field(default_factory=StreamState)


class FileQueue:
    """Files not sent yet, shared by the streams (deque pops are atomic)."""

    def __init__(self, entries: Iterable[PlannedFile]) -> None:
        self._files = collections.deque(BulkFile(entry) for entry in entries)

    def take(self) -> BulkFile | None:
        try:
            return self._files.popleft()
        except IndexError:
            return None

    def drain(self) -> list[BulkFile]:
        return list(iter(self.take, None))


@dataclass
class BulkSender:
    """`call` starts one UploadItems stream; `make_spec(entry)` gives a file's spec (with its
    request_id) the first time it is sent; `on_done(entry, outcome)` gets every file's result
    or error exactly once; `on_bytes(entry, n)` reports bytes sent (negative when a retry
    sends them again); `one_call(entry)` uploads a file alone (servers without UploadItems)."""

    call: BulkCall
    make_spec: Callable[[PlannedFile], upload_service_pb2.UploadSpec]
    on_done: Callable[[PlannedFile, Outcome], None]
    on_bytes: Callable[[PlannedFile, int], None]
    one_call: Callable[[PlannedFile], UploadResult]
    chunk_size: int
    cancel: threading.Event
    _calls: set[grpc.Call] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run_stream(self, files: FileQueue) -> None:
        """Sends files from the queue until it is empty."""
        retry: list[BulkFile] = []
        error: BaseException | None = None
        try:
            for attempt in range(_STREAM_ATTEMPTS):
                stream = _Stream(self, files, retry)
                error = stream.run()
                retry = stream.unanswered()
                if error is None:
                    return
                if (not isinstance(error, Unavailable | Aborted) or self.cancel.is_set()
                        or attempt + 1 == _STREAM_ATTEMPTS):
                    break
                time.sleep(0.25 * 2**attempt)
                for file in retry:
                    self.on_bytes(file.entry, -file.state.sent)
            if isinstance(error, _BulkUnsupported):
                remaining, retry, error = [*retry, *files.drain()], [], None
                for file in remaining:
                    self._send_alone(file.entry)
        except BaseException as exc:
            error = exc
            raise
        finally:
            for file in [*retry, *files.drain()] if error is not None else []:
                self.on_done(file.entry, error)

    def _send_alone(self, entry: PlannedFile) -> None:
        try:
            outcome: Outcome = self.one_call(entry)
        except Exception as exc:  # noqa: BLE001 - reported as that file's failure
            outcome = exc
        self.on_done(entry, outcome)

    def cancel_streams(self) -> None:
        self.cancel.set()
        with self._lock:
            calls = list(self._calls)
        for call in calls:
            call.cancel()

    def _track(self, call: grpc.Call, active: bool) -> None:
        with self._lock:
            if active:
                self._calls.add(call)
            else:
                self._calls.discard(call)


class _Stream:
    """One UploadItems call: the files it sent and has no result for yet."""

    def __init__(self, sender: BulkSender, files: FileQueue, retry: list[BulkFile]) -> None:
        self._sender, self._files, self._retry = sender, files, retry
        self._waiting: dict[int, BulkFile] = {}
        self._indexes = itertools.count()
        self._error: BaseException | None = None  # what ended the request iterator early
        self._call: grpc.Call | None = None
        self._started = threading.Event()  # set once _call is

    def unanswered(self) -> list[BulkFile]:
        return list(self._waiting.values())

    def run(self) -> BaseException | None:
        """None once every file sent has its result; else what ended the stream."""
        sender = self._sender
        call = self._call = sender.call(self._requests())
        self._started.set()
        sender._track(call, True)
        try:
            for response in call:
                for result in response.results:
                    file = self._waiting.pop(result.file_index, None)
                    if file is not None:
                        sender.on_done(file.entry, self._outcome(result, file))
        except grpc.RpcError as exc:
            if self._error is not None:
                return self._error
            if sender.cancel.is_set():
                return UploadCancelled("upload cancelled")
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return _BulkUnsupported(exc.details())
            return translate(exc)
        finally:
            sender._track(call, False)
        if self._error is not None:
            return self._error
        if self._waiting:
            return Internal(f"the upload stream ended without results for "
                            f"{len(self._waiting)} files")
        return None

    def _requests(self) -> Iterator[ChunkRequest | BatchRequest]:
        """Local errors end the stream (after the files already sent) and are kept, because
        gRPC would otherwise turn them into a bare CANCELLED."""
        sender = self._sender
        batching: bool | None = None  # whether the server reads `batched`: known after a file
        batch: list[ChunkRequest] = []
        batch_bytes = 0
        try:
            for file in itertools.chain(self._retry, iter(self._files.take, None)):
                if sender.cancel.is_set():
                    raise UploadCancelled("upload cancelled")
                try:
                    data = file.entry.local_path.read_bytes()
                except OSError as exc:
                    sender.on_done(file.entry, exc)
                    continue
                if file.spec is None:
                    file.spec = sender.make_spec(file.entry)
                file.spec.size = len(data)
                index = next(self._indexes)
                self._waiting[index] = file
                messages = self._messages(index, file, data)
                if not batching or len(data) > sender.chunk_size:
                    if batch:
                        yield _one_message(batch)
                        batch, batch_bytes = [], 0
                    yield from messages
                    if batching is None:
                        batching = self._server_reads_batched()
                    continue
                if batch and (batch_bytes + len(data) > sender.chunk_size
                              or len(batch) >= BATCH_MAX_FILES):
                    yield _one_message(batch)
                    batch, batch_bytes = [], 0
                batch.extend(messages)
                batch_bytes += len(data)
            if batch:
                yield _one_message(batch)
        except Exception as exc:  # noqa: BLE001 - kept for run() to report
            self._error = exc

    def _server_reads_batched(self) -> bool:
        """Whether the server announced UPLOAD_BATCHED_HEADER. Its headers come at the
        stream's start, an older server's with its first result (the file just sent)."""
        self._started.wait()
        assert self._call is not None
        try:
            headers = self._call.initial_metadata() or ()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a failed call reports itself in run()
            return False
        return any(tuple(header) == UPLOAD_BATCHED_HEADER for header in headers)

    def _messages(self, index: int, file: BulkFile, data: bytes) -> Iterator[ChunkRequest]:
        # The state is complete before the last message goes out: its result may arrive
        # before this generator runs again.
        state = file.state = StreamState()
        state.hasher.update(data)
        state.sent, state.finished = len(data), True
        sha256 = state.hasher.hexdigest()
        self._sender.on_bytes(file.entry, len(data))
        chunk_size = self._sender.chunk_size
        for offset in range(0, max(len(data), 1), chunk_size):
            piece = data if len(data) <= chunk_size else data[offset:offset + chunk_size]
            last = offset + chunk_size >= len(data)
            yield ChunkRequest(write_offset=offset, data=piece, finish_write=last,
                               spec=file.spec if offset == 0 else None,
                               crc32c=google_crc32c.value(piece),
                               sha256=sha256 if last else "", file_index=index)

    @staticmethod
    def _outcome(result: upload_service_pb2.UploadItemsResult, file: BulkFile) -> Outcome:
        if result.HasField("error"):
            return error_for_code(result.error.code, result.error.message)
        try:
            return result_from_response(result, file.state, str(file.entry.local_path))
        except CorralError as exc:
            return exc


def _one_message(requests: list[ChunkRequest]) -> ChunkRequest | BatchRequest:
    return requests[0] if len(requests) == 1 else BatchRequest(requests)
