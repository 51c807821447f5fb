"""Feeds received bytes to a new blob off the event loop while hashing them.

Chunks are batched (fewer thread hops for small chunks), and while the next batch is being
received the current one is hashed and written at the same time in two I/O threads (hashlib
and os.write release the GIL for large buffers), so receiving, hashing and disk/S3 I/O all
overlap with about two batches in memory. The batch's bytes objects are handed over as they
are, never copied or joined. A small upload costs a single thread hop: open, write, hash,
verify and commit at once.

A resumable session's sink continues at the session's persisted size, with the hash state of
the bytes before it when this process still holds it (else no hash: see resumable.py), and
can pause: persist what the store allows and close, keeping the session's data.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from services.blobstore.base import BlobWriter
from services.blobstore.sessions import ResumableWriter
from services.common.futures import resolve

T = TypeVar("T")

# check(size, sha256) raises to refuse the content before it is committed; sha256 is None
# when the sink hashes nothing.
ContentCheck = Callable[[int, str | None], None]


def run_blocking(func: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Runs `func` in the event loop's default executor (shared by all calls)."""
    return asyncio.get_running_loop().run_in_executor(None, func, *args)


# A small upload completing: its sink, its last bytes, its content check, and the future of
# its sha256.
_Job = tuple["HashingBlobSink", list[bytes], ContentCheck, "asyncio.Future[str | None]"]


class GroupCommitter:
    """Completes small uploads that finish together in one I/O thread call instead of one
    each: every file is written, checked, fsynced and renamed, then the store makes the
    renames durable together (one folder fsync for the group; see commit_many). Each file
    still succeeds or fails alone, and none returns before its blob is durable.

    Uploads that finish in the same turn of the event loop form a group (at most
    `max_group`, so that groups still run in parallel threads: their fsyncs overlap)."""

    def __init__(self, commit_many: Callable[[list[BlobWriter]], list[Exception | None]],
                 max_group: int = 8) -> None:
        self._commit_many, self._max_group = commit_many, max_group
        self._jobs: list[_Job] = []
        self._scheduled = False

    def complete(self, sink: HashingBlobSink, batch: list[bytes],
                 check: ContentCheck) -> asyncio.Future[str | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()
        self._jobs.append((sink, batch, check, future))
        if len(self._jobs) >= self._max_group:
            self._dispatch()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return future

    def _dispatch(self) -> None:
        self._scheduled = False
        jobs, self._jobs = self._jobs, []
        if not jobs:
            return
        group = run_blocking(self._run, [(sink, batch, check) for sink, batch, check, _ in jobs])
        group.add_done_callback(lambda done: _deliver(jobs, done))

    def _run(self, jobs: list[tuple[HashingBlobSink, list[bytes], ContentCheck]],
             ) -> list[str | None | Exception]:
        outcomes: list[str | None | Exception] = []
        writers: list[BlobWriter] = []
        owners: list[int] = []
        for index, (sink, batch, check) in enumerate(jobs):
            try:
                outcomes.append(sink._write_checked(batch, check))
            except Exception as exc:  # noqa: BLE001 - that upload's failure alone
                outcomes.append(exc)
            else:
                writers.append(sink._open_writer())
                owners.append(index)
        for index, error in zip(owners, self._commit_many(writers), strict=True):
            if error is None:
                jobs[index][0]._committed = True
            else:
                outcomes[index] = error
        return outcomes


def _deliver(jobs: list[_Job], done: asyncio.Future[list[str | None | Exception]]) -> None:
    failure = done.exception() if not done.cancelled() else asyncio.CancelledError()
    outcomes = done.result() if failure is None else [failure] * len(jobs)
    for (_, _, _, future), outcome in zip(jobs, outcomes, strict=True):
        resolve(future, outcome)


class HashingBlobSink:
    """Writes an object through the writer `open_writer()` returns, opened in the first I/O
    thread call, as creating a temp file is blocking I/O too. `delete_committed()` removes the
    object if the sink is aborted after its commit finished. `hasher` holds the hash of the
    `start_size` bytes before (None: hash nothing)."""

    def __init__(self, open_writer: Callable[[], BlobWriter],
                 delete_committed: Callable[[], None], batch_bytes: int, *,
                 hasher: hashlib._Hash | None = None, start_size: int = 0,
                 hash_content: bool = True, committer: GroupCommitter | None = None) -> None:
        self._open, self._delete_committed = open_writer, delete_committed
        self._committer = committer
        self._batch_bytes = batch_bytes
        self._writer: BlobWriter | None = None
        self._hash = hasher if hasher is not None or not hash_content else hashlib.sha256()
        self._batch: list[bytes] = []
        self._batched = 0
        self._in_flight: list[asyncio.Future[Any]] = []
        self._committed = False
        self.size = start_size

    async def write(self, data: bytes) -> None:
        self._batch.append(data)
        self._batched += len(data)
        self.size += len(data)
        if self._batched >= self._batch_bytes:
            await self._wait_in_flight()
            batch = self._take()
            self._in_flight = [run_blocking(self._write_batch, batch)]
            if self._hash is not None:
                self._in_flight.append(run_blocking(self._hash_batch, batch))

    def buffered_content(self, max_bytes: int) -> bytes | None:
        """Everything received so far, if it is still all in memory (nothing handed to the
        store yet) and at most `max_bytes`; else None."""
        if self._writer is not None or self._in_flight or self.size > max_bytes:
            return None
        return b"".join(self._batch)

    @property
    def hasher(self) -> hashlib._Hash | None:
        return self._hash

    async def pause(self) -> int:
        """For a resumable writer: writes what is left, persists what the store allows, and
        closes the writer keeping the session's data; returns the persisted size."""
        try:
            await self._wait_in_flight()
            done = run_blocking(self._pause, self._take())
            self._in_flight = [done]
            await self._wait_in_flight()
        except BaseException:
            await self.close()
            raise
        return done.result()

    async def close(self) -> None:
        """For a resumable writer after a failure: closes it without persisting more."""
        in_flight, self._in_flight = self._in_flight, []
        self._batch = []
        if in_flight:
            await asyncio.wait(in_flight)
        if isinstance(self._writer, ResumableWriter):
            await run_blocking(self._writer.close)

    def _pause(self, batch: list[bytes]) -> int:
        writer = self._open_writer()
        assert isinstance(writer, ResumableWriter)
        try:
            if self._hash is not None:
                self._hash_batch(batch)
            writer.write_many(batch)
            return writer.persist()
        finally:
            writer.close()

    async def complete(self, check: ContentCheck) -> str | None:
        """Writes what is left, runs check(size, sha256), then commits; returns the sha256."""
        await self._wait_in_flight()
        if self._committer is not None and self._writer is None:
            # Nothing handed to the store yet: a small upload, completed with others.
            done = self._committer.complete(self, self._take(), check)
        else:
            done = run_blocking(self._complete, self._take(), check)
        self._in_flight = [done]
        await self._wait_in_flight()
        return done.result()

    async def abort(self) -> None:
        """Removes everything written, even a commit that finished after a cancellation. Waits
        for thread calls still running so the writer is never used from two threads at once."""
        in_flight, self._in_flight = self._in_flight, []
        self._batch = []
        if in_flight:
            await asyncio.wait(in_flight)
        if self._committed:
            await run_blocking(self._delete_committed)
        elif self._writer is not None:
            await run_blocking(self._writer.abort)

    def _take(self) -> list[bytes]:
        batch, self._batch, self._batched = self._batch, [], 0
        return batch

    async def _wait_in_flight(self) -> None:
        # asyncio.wait never cancels what it waits for, and the calls are cleared only once
        # they all succeeded: if this task is cancelled meanwhile, abort() still waits for them.
        in_flight = self._in_flight
        if not in_flight:
            return
        await asyncio.wait(in_flight)
        for future in in_flight:
            future.result()  # the first failure, if any
        self._in_flight = []

    def _open_writer(self) -> BlobWriter:
        if self._writer is None:
            self._writer = self._open()
        return self._writer

    def _hash_batch(self, batch: list[bytes]) -> None:
        update = self._hash.update
        for data in batch:
            update(data)

    def _write_batch(self, batch: list[bytes]) -> None:
        self._open_writer().write_many(batch)

    def _complete(self, batch: list[bytes], check: ContentCheck) -> str | None:
        sha256 = self._write_checked(batch, check)
        self._open_writer().commit()
        self._committed = True
        return sha256

    def _write_checked(self, batch: list[bytes], check: ContentCheck) -> str | None:
        """Writes the last batch and runs the content check: all of complete() but commit."""
        if self._hash is not None:
            self._hash_batch(batch)
        self._write_batch(batch)
        sha256 = self._hash.hexdigest() if self._hash is not None else None
        check(self.size, sha256)
        return sha256
