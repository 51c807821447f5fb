"""The subscribe loop: CREATED events in, a bounded number of items in flight, progress
committed with the low-watermark so a restart resumes exactly where the work stopped.

An event written after this worker started cannot have been handled by an earlier run, so it
is processed straight from the item snapshot it carries (a stale snapshot does no harm: the
result names the blob it was computed from and the catalog refuses it if the content changed).
An older event may have been processed by a run that stopped before committing it, so for those
the catalog is asked first and finished items are skipped. The cursor is committed a few times
a second while busy (and on stop), not once per item.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from corral.errors import CorralError
from services.preprocess.catalog import Catalog, CatalogItem, ItemEvent
from services.preprocess.processor import ItemProcessor, Outcome
from services.preprocess.progress import Progress

log = logging.getLogger("corral.preprocess.worker")

RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
LAG_TIMEOUT_SECONDS = 2.0
# While items keep finishing, one AckEvents per interval covers all of them.
ACK_INTERVAL_SECONDS = 0.3
# How far ahead of ours the catalog's clock may be: events it stamped less than this after
# the worker started are treated as possibly seen by an earlier run.
CLOCK_SKEW_SECONDS = 1.0


@dataclass(frozen=True)
class WorkerStats:
    processed: int
    failed: int
    skipped: int
    in_flight: int
    lag: int
    committed_cursor: str
    subscribed: bool
    pool_processes: int


class Worker:
    def __init__(self, catalog: Catalog, processor: ItemProcessor, consumer_group: str,
                 max_in_flight: int) -> None:
        self.catalog, self.processor, self.consumer_group = catalog, processor, consumer_group
        self.counts = {outcome: 0 for outcome in Outcome}
        self.subscribed = False
        self.committed_cursor = ""
        self._lag = -1
        self._progress = Progress()
        self._slots = asyncio.Semaphore(max(1, max_in_flight))
        self._items: set[asyncio.Task[None]] = set()
        self._resume_after = ""
        self._stream_failures = 0
        self._watermark_moved = asyncio.Event()
        self._started_at = time.time()
        self._loop_task: asyncio.Task[None] | None = None
        self._ack_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._started_at = time.time()
        self._loop_task = asyncio.create_task(self._subscribe_loop(), name="preprocess-subscribe")
        self._ack_task = asyncio.create_task(self._ack_loop(), name="preprocess-ack")

    async def stop(self, grace: float) -> None:
        """Stops taking events, lets in-flight items finish within `grace`, abandons the rest
        unacked (they are re-delivered after a restart) and commits what finished."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._items:
            _, unfinished = await asyncio.wait(self._items, timeout=grace)
            for task in unfinished:
                task.cancel()
            if unfinished:
                log.info("abandoned in-flight items", extra={"count": len(unfinished)})
                await asyncio.wait(unfinished)
        if self._ack_task is not None:
            self._ack_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ack_task
        await self._commit(final=True)

    async def stats(self) -> WorkerStats:
        try:
            group = await asyncio.wait_for(
                self.catalog.get_consumer_group(self.consumer_group), LAG_TIMEOUT_SECONDS)
            self._lag = group.pending_events
            self.committed_cursor = self.committed_cursor or group.committed_cursor
        except (CorralError, TimeoutError):
            pass  # report the last known lag
        return WorkerStats(
            processed=self.counts[Outcome.PROCESSED], failed=self.counts[Outcome.FAILED],
            skipped=self.counts[Outcome.SKIPPED], in_flight=len(self._items), lag=self._lag,
            committed_cursor=self.committed_cursor, subscribed=self.subscribed,
            pool_processes=self.processor.pool.processes)

    async def _subscribe_loop(self) -> None:
        while True:
            try:
                # After a dropped stream, continue after the last event received: the ones in
                # flight are still ours. After a restart: after the group's committed cursor.
                events = self.catalog.subscribe_created(
                    self.consumer_group, self._resume_after, self._on_subscribed)
                async with contextlib.aclosing(events):
                    async for event in events:
                        await self._take(event)
                log.info("event stream ended; reconnecting")
            except CorralError as exc:
                log.warning("event stream failed; reconnecting",
                            extra={"code": exc.code, "error": exc.message})
            finally:
                self.subscribed = False
            delay = RECONNECT_DELAYS[min(self._stream_failures, len(RECONNECT_DELAYS) - 1)]
            self._stream_failures += 1
            await asyncio.sleep(delay)

    def _on_subscribed(self) -> None:
        self.subscribed, self._stream_failures = True, 0
        log.info("subscribed", extra={"group": self.consumer_group,
                                      "after": self._resume_after or "committed cursor"})

    async def _take(self, event: ItemEvent) -> None:
        await self._slots.acquire()  # back-pressure: the stream waits while we are full
        if not self._progress.start(event.cursor):
            self._slots.release()
            return
        self._resume_after = event.cursor
        task = asyncio.create_task(self._handle(event))
        self._items.add(task)
        task.add_done_callback(self._items.discard)

    async def _handle(self, event: ItemEvent) -> None:
        try:
            try:
                outcome = await self.processor.process(event.item_id, self._snapshot(event))
            except Exception:
                # Not transient (those are retried inside): a poison event must not stall the
                # stream forever, so it counts as failed and is committed.
                log.exception("item could not be processed", extra={"item_id": event.item_id})
                outcome = Outcome.FAILED
            self.counts[outcome] += 1
            if self._progress.finish(event.cursor):
                self._watermark_moved.set()
        finally:
            self._slots.release()

    def _snapshot(self, event: ItemEvent) -> CatalogItem | None:
        """The event's item, if no earlier run can have processed it (see the module doc)."""
        if event.item is None or event.item.id != event.item_id:
            return None
        if event.create_time < self._started_at + CLOCK_SKEW_SECONDS:
            return None
        return event.item

    async def _ack_loop(self) -> None:
        """Commits the watermark when it moves, then lets it move for ACK_INTERVAL_SECONDS:
        a lone item is committed at once, a stream of them a few times a second."""
        failures = 0
        while True:
            await self._watermark_moved.wait()
            self._watermark_moved.clear()
            if await self._commit():
                failures = 0
                await asyncio.sleep(ACK_INTERVAL_SECONDS)
                continue
            self._watermark_moved.set()  # try again after a pause
            await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])
            failures += 1

    async def _commit(self, final: bool = False) -> bool:
        cursor = self._progress.watermark
        if not cursor or cursor == self.committed_cursor:
            return True
        try:
            call = self.catalog.ack_events(self.consumer_group, cursor)
            self.committed_cursor = await (asyncio.wait_for(call, 2.0) if final else call)
            return True
        except (CorralError, TimeoutError) as exc:
            log.warning("cannot commit progress", extra={"cursor": cursor, "error": str(exc)})
            return False
