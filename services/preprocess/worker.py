"""The subscribe loop: CREATED events leased from the catalog's consumer group, a bounded
number of items in flight, each acknowledged when done.

Several workers (processes, hosts) with the same consumer group share the events: each event
is leased to one of them, and delivered again to any of them if its lease expires before it is
acknowledged (the worker died or hung). Leases of items still being worked on are extended
every third of the lease; on stop, unfinished ones are given back at once.

An event delivered for the first time and written after this worker started cannot have been
handled by anyone, so it is processed straight from the item snapshot it carries (a stale
snapshot does no harm: the result names the blob it was computed from and the catalog refuses
it if the content changed). Any other event may have been processed already, so for those the
catalog is asked first and finished items are skipped. Finished events are acknowledged in
batches: one acknowledgement at a time carries everything finished meanwhile (the service's
catalog, write_back.BatchingCatalog, sends it along with the next results written back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

from corral.errors import CorralError
from services.preprocess.catalog import Catalog, CatalogItem, ItemEvent, LeaseSettings
from services.preprocess.processor import ItemProcessor, Outcome

log = logging.getLogger("corral.preprocess.worker")

RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
LAG_TIMEOUT_SECONDS = 2.0
# GetStats answers with a lag at most this old: a dashboard (or a benchmark) polling stats
# many times a second would otherwise cost the catalog a GetConsumerGroup call each time.
LAG_MAX_AGE_SECONDS = 0.25
# How far ahead of ours the catalog's clock may be: events it stamped less than this after
# the worker started are treated as possibly seen by an earlier run.
CLOCK_SKEW_SECONDS = 1.0
# Events leased to this worker beyond those it works on: the stream keeps the next ones ready
# while acknowledgements travel.
LEASE_HEADROOM = 2


def subscriber_id() -> str:
    """Unique per worker process, and telling where it runs."""
    return f"{socket.gethostname()[:64]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


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
                 max_in_flight: int, lease_seconds: int = 60, dataset_id: str = "") -> None:
        """`dataset_id`: a private worker, serving that dataset while it is in private
        preprocessing mode; empty: the shared pool (every dataset in global mode)."""
        self.catalog, self.processor, self.consumer_group = catalog, processor, consumer_group
        self.dataset_id = dataset_id
        max_in_flight = max(1, max_in_flight)
        self.lease = LeaseSettings(consumer_group, subscriber_id(), max(1, lease_seconds),
                                   LEASE_HEADROOM * max_in_flight, dataset_id)
        self.counts = {outcome: 0 for outcome in Outcome}
        self.subscribed = False
        self.committed_cursor = ""
        self._lag = -1
        self._lag_fetched = -LAG_MAX_AGE_SECONDS  # time.monotonic() of the last fetch
        self._lag_fetch: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(max_in_flight)
        self._items: dict[str, asyncio.Task[None]] = {}  # cursor -> its processing
        self._finished: list[str] = []
        self._ack_needed = asyncio.Event()
        self._stream_failures = 0
        self._started_at = time.time()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._started_at = time.time()
        self._tasks = [
            asyncio.create_task(self._subscribe_loop(), name="preprocess-subscribe"),
            asyncio.create_task(self._ack_loop(), name="preprocess-ack"),
            asyncio.create_task(self._extend_loop(), name="preprocess-extend"),
        ]

    async def stop(self, grace: float) -> None:
        """Stops taking events, lets in-flight items finish within `grace`, gives the rest
        back to the group (another worker takes them at once) and acknowledges what
        finished."""
        subscribe_loop, *helpers = self._tasks or [None]
        await _cancel(subscribe_loop)
        if self._items:
            _, unfinished = await asyncio.wait(list(self._items.values()), timeout=grace)
            abandoned = [cursor for cursor, task in self._items.items() if task in unfinished]
            for task in unfinished:
                task.cancel()
            if unfinished:
                log.info("abandoned in-flight items", extra={"count": len(unfinished)})
                await asyncio.wait(unfinished)
                await self._give_back(abandoned)
        for task in helpers:
            await _cancel(task)
        await self._acknowledge(final=True)

    def in_flight(self) -> int:
        """Items taken from the stream and not finished yet."""
        return len(self._items)

    async def stats(self) -> WorkerStats:
        if time.monotonic() - self._lag_fetched >= LAG_MAX_AGE_SECONDS:
            # Concurrent callers share one fetch.
            if self._lag_fetch is None or self._lag_fetch.done():
                self._lag_fetch = asyncio.create_task(self._fetch_lag())
            await asyncio.shield(self._lag_fetch)
        return WorkerStats(
            processed=self.counts[Outcome.PROCESSED], failed=self.counts[Outcome.FAILED],
            skipped=self.counts[Outcome.SKIPPED], in_flight=self.in_flight(), lag=self._lag,
            committed_cursor=self.committed_cursor, subscribed=self.subscribed,
            pool_processes=self.processor.pool.processes)

    async def _fetch_lag(self) -> None:
        try:
            group = await asyncio.wait_for(
                self.catalog.get_consumer_group(self.consumer_group), LAG_TIMEOUT_SECONDS)
            self._lag = group.pending_events
            self.committed_cursor = group.committed_cursor or self.committed_cursor
            self._lag_fetched = time.monotonic()
        except (CorralError, TimeoutError):
            pass  # report the last known lag

    async def _subscribe_loop(self) -> None:
        while True:
            try:
                # The same subscriber id after a reconnect: the leases of items still in
                # flight stay ours and keep counting against our room.
                events = self.catalog.subscribe_leased(self.lease, self._on_subscribed)
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
                                      "subscriber": self.lease.subscriber_id})

    async def _take(self, event: ItemEvent) -> None:
        await self._slots.acquire()  # back-pressure: the stream waits while we are full
        if event.cursor in self._items:  # our own lease expired and came back: still on it
            self._slots.release()
            return
        task = asyncio.create_task(self._handle(event))
        self._items[event.cursor] = task

    async def _handle(self, event: ItemEvent) -> None:
        try:
            try:
                outcome = await self.processor.process(event.item_id, self._snapshot(event))
            except Exception:
                # Not transient (those are retried inside): a poison event must not come back
                # forever, so it counts as failed and is acknowledged.
                log.exception("item could not be processed", extra={"item_id": event.item_id})
                outcome = Outcome.FAILED
            self.counts[outcome] += 1
            self._finished.append(event.cursor)
            self._ack_needed.set()
        finally:
            self._items.pop(event.cursor, None)
            self._slots.release()

    def _snapshot(self, event: ItemEvent) -> CatalogItem | None:
        """The event's item, if nobody can have processed it yet (see the module doc)."""
        if event.item is None or event.item.id != event.item_id:
            return None
        if event.delivery_attempt > 1:
            return None
        if event.create_time < self._started_at + CLOCK_SKEW_SECONDS:
            return None
        return event.item

    async def _ack_loop(self) -> None:
        failures = 0
        while True:
            await self._ack_needed.wait()
            self._ack_needed.clear()
            if await self._acknowledge():
                failures = 0
                continue
            self._ack_needed.set()  # try again after a pause
            await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])
            failures += 1

    async def _acknowledge(self, final: bool = False) -> bool:
        """Acknowledges every event finished so far; False (they stay queued) on failure."""
        cursors, self._finished = self._finished, []
        if not cursors:
            return True
        try:
            call = self.catalog.ack_event_cursors(self.consumer_group, cursors)
            self.committed_cursor = await (asyncio.wait_for(call, 2.0) if final else call)
            return True
        except (CorralError, TimeoutError) as exc:
            log.warning("cannot acknowledge events",
                        extra={"count": len(cursors), "error": str(exc)})
            self._finished = cursors + self._finished
            return False

    async def _extend_loop(self) -> None:
        """Keeps the leases of items in flight; one whose lease was lost meanwhile (the
        catalog was unreachable for a whole lease) may be processed twice, harmlessly."""
        interval = self.lease.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            cursors = list(self._items)
            if not cursors:
                continue
            try:
                held = await self.catalog.extend_leases(self.lease, cursors,
                                                        self.lease.lease_seconds)
            except CorralError as exc:
                log.warning("cannot extend leases", extra={"error": exc.message})
                continue
            if len(held) < len(cursors):
                log.warning("leases expired while in flight",
                            extra={"count": len(cursors) - len(held)})

    async def _give_back(self, cursors: list[str]) -> None:
        if not cursors:
            return
        try:
            await asyncio.wait_for(self.catalog.extend_leases(self.lease, cursors, 0), 2.0)
        except (CorralError, TimeoutError) as exc:
            log.warning("cannot give leases back; they expire instead",
                        extra={"count": len(cursors), "error": str(exc)})


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
