"""Batched write-back: the results of items finishing close together, and the
acknowledgements of events finished before, go to the catalog in one BatchUpdateSystemMetadata
call (one transaction there) instead of an UpdateSystemMetadata call per item and AckEvents
calls besides. Per item, an RPC costs both processes more than the write itself.

Callers see the same Catalog as before: update_system_metadata returns once its own result is
committed (or raises its own error: NotFound, FailedPrecondition, ...), ack_event_cursors once
the acknowledgement is. An acknowledgement is queued only after the item's result was written
(the worker acknowledges finished items), so riding along with later results changes nothing
about at-least-once delivery. A call that fails as a whole fails every result and
acknowledgement it carried; the processor retries transient failures, the worker its acks.
Against a catalog without the batch call, everything goes one call per item as before."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from corral.errors import CorralError, Internal
from services.preprocess.catalog import (
    BatchOutcome,
    Catalog,
    CatalogItem,
    ConsumerGroupState,
    DatasetInfo,
    ItemEvent,
    LeaseSettings,
    SystemUpdate,
)

log = logging.getLogger("corral.preprocess.write_back")

# How long the first queued result waits for others: items finishing within this share a
# call. Short next to an item's time in flight (the decode pool, the thumbnail's fsync).
LINGER_SECONDS = 0.025
# ... and how long when the previous call was busy (carried at least a quarter of max_batch):
# every call costs both processes ~0.5 ms of CPU, and its acknowledgements wake a lease claim
# and a Subscribe message, so at hundreds of items a second fewer, larger calls save CPU in
# both (2,000 items: 127 calls and 177 claims at 25 ms, 79 and 125 at 60 ms). A full batch
# still goes at once, and after a quiet spell a lone result waits only LINGER_SECONDS.
BUSY_LINGER_SECONDS = 0.06
MAX_BATCH = 256


class BatchCatalog(Catalog, Protocol):
    async def batch_update_system_metadata(
            self, updates: Sequence[SystemUpdate], consumer_group: str = "",
            ack_cursors: Sequence[str] = ()) -> BatchOutcome:
        """Raises NotImplementedError when the catalog has no batch call."""
        ...


def _copy(exc: BaseException) -> BaseException:
    """One exception object per waiting task (each raise adds to its traceback)."""
    return type(exc)(exc.message) if isinstance(exc, CorralError) else exc


class BatchingCatalog:
    """The Catalog protocol over `catalog`, with update_system_metadata and ack_event_cursors
    batched; start() before use, close() after the worker stopped."""

    def __init__(self, catalog: BatchCatalog, linger_seconds: float = LINGER_SECONDS,
                 max_batch: int = MAX_BATCH,
                 busy_linger_seconds: float | None = BUSY_LINGER_SECONDS) -> None:
        """`max_batch`: results sent at once without lingering. Keep it well below the
        worker's max_in_flight: a result waiting here still holds its item's slot.
        `busy_linger_seconds`: the linger after a call that carried at least a quarter of
        max_batch (None: always `linger_seconds`)."""
        self._catalog = catalog
        self._linger, self._max_batch = linger_seconds, max(1, max_batch)
        self._busy_linger = max(linger_seconds, busy_linger_seconds or 0.0)
        self._busy_batch = max(2, self._max_batch // 4)
        self._busy = False  # the last call carried a busy batch
        self._updates: list[tuple[SystemUpdate, asyncio.Future[None]]] = []
        self._acks: list[tuple[str, list[str], asyncio.Future[str]]] = []
        self._queued = asyncio.Event()
        self._full = asyncio.Event()  # a full batch is queued: stop lingering
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Items being worked on, those waiting here included (Worker.in_flight). Once every
        # one of them waits here, no other result is coming to share the call: lingering
        # would only delay them (the last items of a burst, a lone upload).
        self.in_flight: Callable[[], int] | None = None
        # False once the catalog turned out not to know BatchUpdateSystemMetadata.
        self.batched = True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="preprocess-write-back")

    async def close(self) -> None:
        """Sends what is queued (and lets a call under way answer its callers), then closes
        the catalog; calls made after this go one by one."""
        if self._task is not None:
            self._closing = True
            self._queued.set()
            self._full.set()
            await self._task
        await self._catalog.close()

    # -- batched --------------------------------------------------------------------------

    async def update_system_metadata(self, item_id: str, system: dict[str, Any],
                                     expected_blob_key: str) -> None:
        if not self.batched or self._task is None or self._closing:
            return await self._catalog.update_system_metadata(item_id, system,
                                                              expected_blob_key)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._updates.append((SystemUpdate(item_id, system, expected_blob_key), future))
        self._queued.set()
        if len(self._updates) >= self._max_batch or self._nobody_else_coming():
            self._full.set()
        return await future

    async def ack_event_cursors(self, consumer_group: str, cursors: list[str]) -> str:
        if not self.batched or self._task is None or self._closing:
            return await self._catalog.ack_event_cursors(consumer_group, cursors)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._acks.append((consumer_group, list(cursors), future))
        self._queued.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._queued.wait()
            if not self._closing:
                await self._linger_while_small()
            await self._flush()
            if self._closing and not self._updates and not self._acks:
                return

    async def _linger_while_small(self) -> None:
        """Up to the linger time, until a full batch is queued."""
        self._full = asyncio.Event()
        if (len(self._updates) < self._max_batch and not self._closing
                and not self._nobody_else_coming()):
            linger = self._busy_linger if self._busy else self._linger
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), linger)

    def _nobody_else_coming(self) -> bool:
        return self.in_flight is not None and self.in_flight() <= len(self._updates)

    async def _flush(self) -> None:
        """Sends one call's worth of what is queued (one call at a time: the next batch
        gathers meanwhile)."""
        self._queued.clear()
        taken, self._updates = self._updates[:self._max_batch], self._updates[self._max_batch:]
        # A cancelled waiter's result is dropped: its item stays unacknowledged and comes
        # back. Acknowledgements go even so (one more is harmless, one fewer re-delivers).
        updates = [(update, future) for update, future in taken if not future.cancelled()]
        group = self._acks[0][0] if self._acks else ""
        acks = [ack for ack in self._acks if ack[0] == group]
        self._acks = [ack for ack in self._acks if ack[0] != group]
        if self._updates or self._acks:
            self._queued.set()
        if not updates and not acks:
            return
        self._busy = len(updates) >= self._busy_batch
        cursors = [cursor for _, ack_cursors, _ in acks for cursor in ack_cursors]
        try:
            outcome = await self._catalog.batch_update_system_metadata(
                [update for update, _ in updates], group, cursors)
        except NotImplementedError:
            log.info("the catalog has no BatchUpdateSystemMetadata; writing results one by one")
            self.batched = False
            await self._one_by_one(updates, acks)
            return
        except Exception as exc:  # noqa: BLE001 - handed to every waiter
            for _, future in updates:
                _fail(future, exc)
            for _, _, ack_future in acks:
                _fail(ack_future, exc)
            return
        errors = outcome.errors
        if len(errors) != len(updates):
            errors = [Internal(f"the catalog answered {len(outcome.errors)} results for "
                               f"{len(updates)} updates")] * len(updates)
        for (_, future), error in zip(updates, errors, strict=True):
            if error is None:
                _succeed(future, None)
            else:
                _fail(future, error)
        for _, _, ack_future in acks:
            if outcome.ack_error is not None:
                _fail(ack_future, outcome.ack_error)
            else:
                _succeed(ack_future, outcome.committed_cursor)

    async def _one_by_one(self, updates: list[tuple[SystemUpdate, asyncio.Future[None]]],
                          acks: list[tuple[str, list[str], asyncio.Future[str]]]) -> None:
        async def update(entry: SystemUpdate, future: asyncio.Future[None]) -> None:
            await _settle(future, lambda: self._catalog.update_system_metadata(
                entry.item_id, entry.system, entry.expected_blob_key))

        async def ack(group: str, cursors: list[str], future: asyncio.Future[str]) -> None:
            await _settle(future, lambda: self._catalog.ack_event_cursors(group, cursors))

        await asyncio.gather(*(update(u, f) for u, f in updates),
                             *(ack(g, c, f) for g, c, f in acks))

    # -- passed through -------------------------------------------------------------------

    def subscribe_leased(self, lease: LeaseSettings,
                         on_connected: Callable[[], None]) -> AsyncIterator[ItemEvent]:
        return self._catalog.subscribe_leased(lease, on_connected)

    async def get_item(self, item_id: str) -> CatalogItem:
        return await self._catalog.get_item(item_id)

    async def get_dataset(self, name_or_id: str) -> DatasetInfo:
        return await self._catalog.get_dataset(name_or_id)

    async def extend_leases(self, lease: LeaseSettings, cursors: list[str],
                            lease_seconds: int) -> list[str]:
        return await self._catalog.extend_leases(lease, cursors, lease_seconds)

    async def get_consumer_group(self, consumer_group: str) -> ConsumerGroupState:
        return await self._catalog.get_consumer_group(consumer_group)


async def _settle(future: asyncio.Future[Any], call: Callable[[], Any]) -> None:
    try:
        result = await call()
    except Exception as exc:  # noqa: BLE001 - handed to the waiter
        _fail(future, exc)
    else:
        _succeed(future, result)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(_copy(exc))
