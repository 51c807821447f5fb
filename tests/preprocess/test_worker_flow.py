"""The worker's and the processor's decisions with fakes, no processes: which events are
checked with the catalog first, how often progress is committed, and that a result lands
only on the blob it was computed from."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

from corral.errors import FailedPrecondition, NotFound
from services.preprocess.catalog import (
    CatalogItem,
    ConsumerGroupState,
    ItemEvent,
    LeaseSettings,
)
from services.preprocess.decoding import DecodeJob, DecodeResult
from services.preprocess.processor import ItemProcessor, Outcome
from services.preprocess.worker import Worker


class FakeCatalog:
    def __init__(self, events: list[ItemEvent] = (), items: dict[str, CatalogItem] | None = None,
                 current_blob: dict[str, str] | None = None) -> None:
        self.events, self.items = list(events), items or {}
        self.current_blob = current_blob or {}
        self.acks: list[list[str]] = []
        self.given_back: list[str] = []
        self.leases: list[LeaseSettings] = []
        self.fetched: list[str] = []
        self.updates: list[tuple[str, dict, str]] = []

    async def subscribe_leased(self, lease: LeaseSettings,
                               on_connected: Callable[[], None]) -> AsyncIterator[ItemEvent]:
        self.leases.append(lease)
        on_connected()
        for event in self.events:
            yield event
        await asyncio.Event().wait()  # the stream stays open

    async def get_item(self, item_id: str) -> CatalogItem:
        self.fetched.append(item_id)
        if item_id not in self.items:
            raise NotFound(f"item {item_id} not found")
        return self.items[item_id]

    async def update_system_metadata(self, item_id: str, system: dict[str, Any],
                                     expected_blob_key: str) -> None:
        if self.current_blob.get(item_id, expected_blob_key) != expected_blob_key:
            raise FailedPrecondition("content changed")
        self.updates.append((item_id, system, expected_blob_key))

    async def ack_event_cursors(self, consumer_group: str, cursors: list[str]) -> str:
        self.acks.append(list(cursors))
        return max(cursor for batch in self.acks for cursor in batch)

    async def extend_leases(self, lease: LeaseSettings, cursors: list[str],
                            lease_seconds: int) -> list[str]:
        if lease_seconds == 0:
            self.given_back.extend(cursors)
        return cursors

    async def get_consumer_group(self, consumer_group: str) -> ConsumerGroupState:
        return ConsumerGroupState("", "", 0)


class FakeProcessor:
    pool = SimpleNamespace(processes=2)

    def __init__(self) -> None:
        self.calls: dict[str, CatalogItem | None] = {}

    async def process(self, item_id: str, snapshot: CatalogItem | None = None) -> Outcome:
        await asyncio.sleep(random.uniform(0, 0.004))  # finish out of order
        self.calls[item_id] = snapshot
        return Outcome.PROCESSED


def item(item_id: str, blob_key: str = "", system: dict | None = None) -> CatalogItem:
    return CatalogItem(id=item_id, name=f"{item_id}.jpg", size=10,
                       blob_key=blob_key or f"items/d/{item_id}", system=system or {})


def event(n: int, created: float, snapshot: bool = True, attempt: int = 1) -> ItemEvent:
    item_id = f"i{n}"
    return ItemEvent(cursor=f"{n:06d}", item_id=item_id,
                     item=item(item_id) if snapshot else None, create_time=created,
                     delivery_attempt=attempt)


async def run_worker(catalog: FakeCatalog, processor: FakeProcessor, count: int) -> Worker:
    worker = Worker(catalog, processor, "preprocess", max_in_flight=8)  # type: ignore[arg-type]
    worker.start()
    deadline = time.monotonic() + 10
    while len(processor.calls) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await worker.stop(grace=1)
    return worker


def test_only_events_from_before_the_start_are_checked_with_the_catalog() -> None:
    now = time.time()
    catalog = FakeCatalog([
        event(1, now - 3600),  # an earlier run may have done it
        event(2, 0.0),  # no timestamp: treated as old
        event(3, now + 60),
        event(4, now + 60, snapshot=False),  # no snapshot to work from
        event(5, now + 60, attempt=2),  # re-delivered: another worker may have done it
    ])
    processor = FakeProcessor()
    asyncio.run(run_worker(catalog, processor, 5))

    assert processor.calls["i1"] is None and processor.calls["i2"] is None
    assert processor.calls["i3"] == item("i3")
    assert processor.calls["i4"] is None and processor.calls["i5"] is None


def test_every_event_is_acknowledged_once_in_batches() -> None:
    created = time.time() + 60
    catalog = FakeCatalog([event(n, created) for n in range(1, 301)])
    processor = FakeProcessor()
    worker = asyncio.run(run_worker(catalog, processor, 300))

    assert len(processor.calls) == 300
    acked = [cursor for batch in catalog.acks for cursor in batch]
    assert sorted(acked) == [f"{n:06d}" for n in range(1, 301)]
    assert len(catalog.acks) < 300  # not one call per item
    assert worker.committed_cursor == "000300"
    # Leased with room for more than it works on, under one subscriber id per worker.
    [lease] = catalog.leases
    assert lease.consumer_group == "preprocess" and lease.max_in_flight > 8


def test_on_stop_unfinished_items_are_given_back() -> None:
    class SlowProcessor(FakeProcessor):
        async def process(self, item_id: str, snapshot: CatalogItem | None = None) -> Outcome:
            if item_id == "i2":
                await asyncio.Event().wait()  # never finishes
            return await super().process(item_id, snapshot)

    async def scenario() -> FakeCatalog:
        catalog = FakeCatalog([event(1, 0.0), event(2, 0.0)])
        processor = SlowProcessor()
        worker = Worker(catalog, processor, "preprocess", max_in_flight=4)  # type: ignore[arg-type]
        worker.start()
        deadline = time.monotonic() + 10
        while "i1" not in processor.calls and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await worker.stop(grace=0.2)
        return catalog

    catalog = asyncio.run(scenario())
    assert catalog.given_back == ["000002"]
    assert [cursor for batch in catalog.acks for cursor in batch] == ["000001"]


class FakePool:
    def __init__(self) -> None:
        self.jobs: list[DecodeJob] = []

    async def decode(self, job: DecodeJob) -> DecodeResult:
        self.jobs.append(job)
        key = f"{job.thumbnail_key_stem}.jpg"
        return DecodeResult({"name": job.name, "thumbnail": {"key": key}}, key, None)


class FakeStore:
    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete(self, key: str) -> None:
        self.deleted.append(key)


def processor_with(catalog: FakeCatalog) -> tuple[ItemProcessor, FakePool, FakeStore]:
    pool, store = FakePool(), FakeStore()
    return ItemProcessor(catalog, pool, store), pool, store  # type: ignore[arg-type]


def test_a_snapshot_is_processed_without_asking_the_catalog() -> None:
    catalog = FakeCatalog()
    processor, pool, _ = processor_with(catalog)
    assert asyncio.run(processor.process("a", item("a"))) == Outcome.PROCESSED
    assert catalog.fetched == []
    assert [job.blob_key for job in pool.jobs] == ["items/d/a"]
    (item_id, system, expected), = catalog.updates
    assert (item_id, expected) == ("a", "items/d/a")
    assert system["executionLogs"]["preprocess"]["blobKey"] == "items/d/a"


def test_without_a_snapshot_done_and_deleted_items_are_skipped() -> None:
    done = item("done", system={"executionLogs": {"preprocess": {"blobKey": "items/d/done"}}})
    catalog = FakeCatalog(items={"done": done, "new": item("new")})
    processor, pool, _ = processor_with(catalog)

    assert asyncio.run(processor.process("done")) == Outcome.SKIPPED
    assert asyncio.run(processor.process("gone")) == Outcome.SKIPPED
    assert asyncio.run(processor.process("new")) == Outcome.PROCESSED
    assert catalog.fetched == ["done", "gone", "new"]
    assert [job.blob_key for job in pool.jobs] == ["items/d/new"]


def test_a_stale_snapshot_lands_nowhere() -> None:
    # Overwritten after its event: the write-back names the old blob and is refused.
    catalog = FakeCatalog(current_blob={"a": "items/d/newer"})
    processor, _, store = processor_with(catalog)
    assert asyncio.run(processor.process("a", item("a"))) == Outcome.SKIPPED
    assert catalog.updates == []
    assert len(store.deleted) == 1 and store.deleted[0].startswith("thumbnails/a/")
