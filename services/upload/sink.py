"""Feeds received bytes to a new blob off the event loop while hashing them.

Chunks are batched (fewer thread hops for small chunks) and one batch is written while the
next is being received, so receiving, hashing and disk/S3 I/O overlap with about two batches
in memory. A small upload costs a single thread hop: open, write, verify and commit at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from services.blobstore.base import BlobStore, BlobWriter

T = TypeVar("T")

# check(size, sha256) raises to refuse the content before it is committed.
ContentCheck = Callable[[int, str], None]


async def run_blocking(func: Callable[..., T], *args: Any) -> T:
    """Runs `func` in the event loop's default executor (shared by all calls)."""
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


class HashingBlobSink:
    """Writes a new object at `key`. The writer is opened in the first I/O thread call, as
    creating a temp file is blocking I/O too."""

    def __init__(self, store: BlobStore, key: str, batch_bytes: int) -> None:
        self._store, self._key = store, key
        self._batch_bytes = batch_bytes
        self._writer: BlobWriter | None = None
        self._hash = hashlib.sha256()
        self._batch: list[bytes] = []
        self._batched = 0
        self._in_flight: asyncio.Future[Any] | None = None
        self._committed = False
        self.size = 0

    async def write(self, data: bytes) -> None:
        self._batch.append(data)
        self._batched += len(data)
        self.size += len(data)
        if self._batched >= self._batch_bytes:
            await self._wait_in_flight()
            self._in_flight = asyncio.ensure_future(run_blocking(self._consume, self._take()))

    async def complete(self, check: ContentCheck) -> str:
        """Writes what is left, runs check(size, sha256), then commits; returns the sha256."""
        await self._wait_in_flight()
        self._in_flight = asyncio.ensure_future(
            run_blocking(self._complete, self._take(), check))
        return await self._wait_in_flight()

    async def abort(self) -> None:
        """Removes everything written, even a commit that finished after a cancellation. Waits
        for a write still running so the writer is never used from two threads at once."""
        in_flight, self._in_flight = self._in_flight, None
        self._batch = []
        if in_flight is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(in_flight)
        if self._committed:
            await run_blocking(self._store.delete, self._key)
        elif self._writer is not None:
            await run_blocking(self._writer.abort)

    def _take(self) -> list[bytes]:
        batch, self._batch, self._batched = self._batch, [], 0
        return batch

    async def _wait_in_flight(self) -> Any:
        # Shielded and cleared only on success: if this task is cancelled meanwhile, abort()
        # still finds the thread call and waits for it.
        in_flight = self._in_flight
        if in_flight is None:
            return None
        result = await asyncio.shield(in_flight)
        self._in_flight = None
        return result

    def _open_writer(self) -> BlobWriter:
        if self._writer is None:
            self._writer = self._store.open_writer(self._key)
        return self._writer

    def _consume(self, batch: list[bytes]) -> None:
        writer = self._open_writer()
        for data in batch:
            self._hash.update(data)
            writer.write(data)

    def _complete(self, batch: list[bytes], check: ContentCheck) -> str:
        self._consume(batch)
        sha256 = self._hash.hexdigest()
        check(self.size, sha256)
        self._open_writer().commit()
        self._committed = True
        return sha256
