"""Batched write-back (write_back.BatchingCatalog) with a fake catalog: results and
acknowledgements finishing together share one call, each caller still gets its own outcome,
a failed call fails every caller it carried, and a catalog without the batch call is served
one call per item. The real catalog's side: tests/catalog/test_batch_system_metadata.py; the
whole path with real services: test_worker.py and tests/events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from corral.errors import CorralError, FailedPrecondition, Unavailable
from services.preprocess.catalog import BatchOutcome, SystemUpdate
from services.preprocess.processor import Outcome
from services.preprocess.worker import Worker
from services.preprocess.write_back import BatchingCatalog
from tests.preprocess.test_worker_flow import FakeCatalog, event, processor_with


class FakeBatchCatalog(FakeCatalog):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[list[SystemUpdate], str, list[str]]] = []
        self.fail_with: Exception | None = None
        self.ack_error: CorralError | None = None
        self.closed = False

    async def batch_update_system_metadata(
            self, updates: Sequence[SystemUpdate], consumer_group: str = "",
            ack_cursors: Sequence[str] = ()) -> BatchOutcome:
        self.calls.append((list(updates), consumer_group, list(ack_cursors)))
        await asyncio.sleep(0.001)
        if self.fail_with is not None:
            raise self.fail_with
        errors: list[CorralError | None] = []
        for update in updates:
            try:
                await self.update_system_metadata(update.item_id, update.system,
                                                  update.expected_blob_key)
                errors.append(None)
            except CorralError as exc:
                errors.append(exc)
        if ack_cursors and self.ack_error is None:
            committed = await self.ack_event_cursors(consumer_group, list(ack_cursors))
            return BatchOutcome(errors, committed)
        return BatchOutcome(errors, "", self.ack_error)

    async def close(self) -> None:
        self.closed = True


class OldCatalog(FakeBatchCatalog):
    async def batch_update_system_metadata(self, *args: Any, **kwargs: Any) -> BatchOutcome:
        self.calls.append(([], "", []))
        raise NotImplementedError("BatchUpdateSystemMetadata")


def test_results_finishing_together_share_one_call() -> None:
    async def scenario() -> tuple[FakeBatchCatalog, list[Any], str]:
        fake = FakeBatchCatalog(current_blob={"i3": "items/new"})
        batching = BatchingCatalog(fake, linger_seconds=0.05, max_batch=100)
        batching.start()
        writes = [batching.update_system_metadata(f"i{n}", {"n": n}, "items/old")
                  for n in range(10)]
        ack = asyncio.ensure_future(
            batching.ack_event_cursors("preprocess", ["000001", "000002"]))
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        committed = await ack
        await batching.close()
        return fake, outcomes, committed

    fake, outcomes, committed = asyncio.run(scenario())
    [(updates, group, cursors)] = fake.calls
    assert [u.item_id for u in updates] == [f"i{n}" for n in range(10)]
    assert (group, cursors) == ("preprocess", ["000001", "000002"])
    assert committed == "000002"
    # Each caller gets its own outcome: i3's content changed meanwhile.
    assert [type(o).__name__ for o in outcomes] == ["NoneType"] * 3 + ["FailedPrecondition"] + \
        ["NoneType"] * 6
    assert fake.closed


def test_a_full_batch_goes_without_lingering() -> None:
    async def scenario() -> tuple[FakeBatchCatalog, float]:
        fake = FakeBatchCatalog()
        batching = BatchingCatalog(fake, linger_seconds=5.0, max_batch=4)
        batching.start()
        started = time.monotonic()
        await asyncio.gather(*(batching.update_system_metadata(f"i{n}", {}, "")
                               for n in range(8)))
        took = time.monotonic() - started
        await batching.close()
        return fake, took

    fake, took = asyncio.run(scenario())
    assert took < 2.0
    assert [len(updates) for updates, _, _ in fake.calls] == [4, 4]


def test_after_a_busy_call_the_next_batch_lingers_longer() -> None:
    """Busy (the last call carried a quarter of max_batch or more): wait the busy linger for
    a larger batch; after a small call a lone result waits only the short linger."""
    async def scenario() -> tuple[FakeBatchCatalog, list[float]]:
        fake = FakeBatchCatalog()
        batching = BatchingCatalog(fake, linger_seconds=0.01, max_batch=8,
                                   busy_linger_seconds=0.5)
        batching.start()
        took: list[float] = []
        for count in (1, 3, 1, 1):  # quiet, then busy (3 >= 8 // 4), then lone ones
            started = time.monotonic()
            await asyncio.gather(*(batching.update_system_metadata(f"i{n}", {}, "")
                                   for n in range(count)))
            took.append(time.monotonic() - started)
        await batching.close()
        return fake, took

    fake, took = asyncio.run(scenario())
    assert [len(updates) for updates, _, _ in fake.calls] == [1, 3, 1, 1]
    assert took[0] < 0.3 and took[1] < 0.3  # the short linger
    assert took[2] >= 0.45  # lingered after the busy call
    assert took[3] < 0.3  # the lone call before was small: short again


def test_a_full_batch_goes_at_once_even_when_busy() -> None:
    async def scenario() -> float:
        fake = FakeBatchCatalog()
        batching = BatchingCatalog(fake, linger_seconds=0.01, max_batch=4,
                                   busy_linger_seconds=5.0)
        batching.start()
        await asyncio.gather(*(batching.update_system_metadata(f"i{n}", {}, "")
                               for n in range(4)))  # busy from now on
        started = time.monotonic()
        await asyncio.gather(*(batching.update_system_metadata(f"j{n}", {}, "")
                               for n in range(4)))
        took = time.monotonic() - started
        await batching.close()
        return took

    assert asyncio.run(scenario()) < 2.0


def test_a_failed_call_fails_everything_it_carried() -> None:
    async def scenario() -> tuple[list[Any], Any]:
        fake = FakeBatchCatalog()
        fake.fail_with = Unavailable("catalog restarting")
        batching = BatchingCatalog(fake, linger_seconds=0.01)
        batching.start()
        writes = [batching.update_system_metadata(f"i{n}", {}, "") for n in range(3)]
        ack = batching.ack_event_cursors("preprocess", ["000001"])
        outcomes = await asyncio.gather(*writes, ack, return_exceptions=True)
        # The next call works again: nothing stays stuck.
        fake.fail_with = None
        await batching.update_system_metadata("i9", {}, "")
        await batching.close()
        return outcomes, fake

    outcomes, fake = asyncio.run(scenario())
    assert all(isinstance(o, Unavailable) for o in outcomes)
    assert len({id(o) for o in outcomes}) == 4  # one exception object per caller
    assert [item_id for item_id, _, _ in fake.updates] == ["i9"]


def test_a_refused_acknowledgement_fails_only_the_acknowledgement() -> None:
    async def scenario() -> tuple[list[Any], FakeBatchCatalog]:
        fake = FakeBatchCatalog()
        fake.ack_error = FailedPrecondition("no leased subscribers")
        batching = BatchingCatalog(fake, linger_seconds=0.01)
        batching.start()
        outcomes = await asyncio.gather(
            batching.update_system_metadata("i1", {}, ""),
            batching.ack_event_cursors("preprocess", ["000001"]), return_exceptions=True)
        await batching.close()
        return outcomes, fake

    outcomes, fake = asyncio.run(scenario())
    assert outcomes[0] is None and isinstance(outcomes[1], FailedPrecondition)
    assert [item_id for item_id, _, _ in fake.updates] == ["i1"]


def test_a_catalog_without_the_batch_call_gets_one_call_per_item() -> None:
    async def scenario() -> tuple[list[Any], OldCatalog, BatchingCatalog]:
        fake = OldCatalog(current_blob={"i2": "items/new"})
        batching = BatchingCatalog(fake, linger_seconds=0.01)
        batching.start()
        first = await asyncio.gather(
            *(batching.update_system_metadata(f"i{n}", {}, "items/old") for n in range(3)),
            batching.ack_event_cursors("preprocess", ["000001"]), return_exceptions=True)
        later = await asyncio.gather(batching.update_system_metadata("i7", {}, "items/old"),
                                     batching.ack_event_cursors("preprocess", ["000002"]))
        await batching.close()
        return [*first, *later], fake, batching

    outcomes, fake, batching = asyncio.run(scenario())
    assert not batching.batched and len(fake.calls) == 1  # asked once, then never again
    assert [type(o).__name__ for o in outcomes] == [
        "NoneType", "NoneType", "FailedPrecondition", "str", "NoneType", "str"]
    assert sorted(item_id for item_id, _, _ in fake.updates) == ["i0", "i1", "i7"]
    assert fake.acks == [["000001"], ["000002"]]


def test_close_sends_what_is_queued() -> None:
    async def scenario() -> FakeBatchCatalog:
        fake = FakeBatchCatalog()
        batching = BatchingCatalog(fake, linger_seconds=60.0)
        batching.start()
        pending = asyncio.ensure_future(batching.ack_event_cursors("preprocess", ["000005"]))
        await asyncio.sleep(0.01)
        await batching.close()
        assert await pending == "000005"
        return fake

    assert asyncio.run(scenario()).acks == [["000005"]]


@pytest.mark.parametrize("linger", [0.0, 0.02])
def test_a_worker_writes_back_and_acknowledges_every_item_once(linger: float) -> None:
    created = time.time() + 60
    fake = FakeBatchCatalog([event(n, created) for n in range(1, 201)],
                            current_blob={"i7": "items/d/other"})

    async def scenario() -> Worker:
        batching = BatchingCatalog(fake, linger_seconds=linger, max_batch=8)
        batching.start()
        processor, _, _ = processor_with(batching)  # type: ignore[arg-type]
        worker = Worker(batching, processor, "preprocess", max_in_flight=16)
        worker.start()
        deadline = time.monotonic() + 10
        while (sum(worker.counts.values()) < 200 or worker._finished) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await worker.stop(grace=1)
        await batching.close()
        return worker

    worker = asyncio.run(scenario())
    assert worker.counts[Outcome.PROCESSED] == 199
    assert worker.counts[Outcome.SKIPPED] == 1  # i7's content changed: nothing written
    assert sorted(item_id for item_id, _, _ in fake.updates) == \
        sorted(f"i{n}" for n in range(1, 201) if n != 7)
    acked = [cursor for batch in fake.acks for cursor in batch]
    assert sorted(acked) == [f"{n:06d}" for n in range(1, 201)]
    assert len(fake.calls) < 100  # not one call per item
    # Acknowledgements ride with later results: each is sent only after its own result.
    written_before: set[str] = set()
    for updates, _, cursors in fake.calls:
        for cursor in cursors:
            assert f"i{int(cursor)}" in written_before or int(cursor) == 7
        written_before |= {u.item_id for u in updates}


def test_a_result_nobody_else_can_join_goes_at_once() -> None:
    # Every item in flight waits here: lingering would only delay them. With more items in
    # flight than results queued, the linger holds as before.
    async def scenario() -> tuple[float, float, FakeBatchCatalog]:
        fake = FakeBatchCatalog()
        batching = BatchingCatalog(fake, linger_seconds=2.0, max_batch=100)
        in_flight = 1
        batching.in_flight = lambda: in_flight
        batching.start()
        started = time.monotonic()
        await batching.update_system_metadata("i1", {"n": 1}, "items/old")
        alone = time.monotonic() - started

        in_flight = 3  # two more items are still decoding
        started = time.monotonic()
        first = asyncio.ensure_future(batching.update_system_metadata("i2", {}, "items/old"))
        second = asyncio.ensure_future(batching.update_system_metadata("i3", {}, "items/old"))
        await asyncio.sleep(0.2)
        assert not first.done() and not second.done()  # lingering for the third
        await batching.update_system_metadata("i4", {}, "items/old")
        await asyncio.gather(first, second)
        together = time.monotonic() - started
        await batching.close()
        return alone, together, fake

    alone, together, fake = asyncio.run(scenario())
    assert alone < 1.0, alone
    assert together < 1.0, together
    assert [[u.item_id for u in updates] for updates, _, _ in fake.calls] == [
        ["i1"], ["i2", "i3", "i4"]]
