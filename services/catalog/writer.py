"""Group commit for the small, frequent writes (CreateItem, UpdateSystemMetadata, AckEvents).

Calls queue up from the event loop; one dedicated thread runs everything queued in a single
transaction, each call in its own savepoint, so a failing call is rolled back alone and gets
its own error while the others commit. One BEGIN/COMMIT (and on SQLite one WAL write) serves
the whole batch, and the results return to the loop in one wake-up, which also wakes the
subscribers."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from services.catalog.db import Call
from services.catalog.notify import CommitSignal
from services.catalog.repository import Repository, Store

log = logging.getLogger("corral.catalog.writer")

T = TypeVar("T")
MAX_BATCH = 128


class BatchWriter:
    def __init__(self, store: Store, signal: CommitSignal) -> None:
        self._store, self._signal = store, signal
        self._loop = asyncio.get_running_loop()
        self._queue: collections.deque[tuple[Call, asyncio.Future[Any]]] = collections.deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="catalog-writer", daemon=True)
        self._thread.start()

    async def write(self, work: Callable[[Repository], T]) -> T:
        """Runs `work` (no effects outside the database) in a shared write transaction."""
        future = self._loop.create_future()
        store = self._store
        with self._ready:
            self._queue.append((Call(lambda conn: work(Repository(conn, store.db))), future))
            self._ready.notify()
        return await future

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._stopping:
                    self._ready.wait()
                if not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
            calls = [call for call, _ in batch]
            try:
                self._store.db.run_batch(calls)
            except BaseException as exc:  # noqa: BLE001 - every caller must get an answer
                log.exception("batch write failed")
                for call in calls:
                    call.error = call.error or Exception(f"batch write failed: {exc}")
            try:
                self._loop.call_soon_threadsafe(self._deliver, batch)
            except RuntimeError:  # the loop has closed: nobody awaits these any more
                return

    def _deliver(self, batch: list[tuple[Call, asyncio.Future[Any]]]) -> None:
        for call, future in batch:
            if future.cancelled():
                continue
            if call.error is not None:
                future.set_exception(call.error)
            else:
                future.set_result(call.result)
        self._signal.notify()
