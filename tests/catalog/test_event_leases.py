"""Leased consumer groups over gRPC, on SQLite and PostgreSQL: subscribers of one group share
its events, leases expire into re-delivery, acknowledgements move the low-watermark, leases
are extended or given back, and each subscriber's room is bounded."""

from __future__ import annotations

import asyncio
import uuid

import grpc

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from services.catalog import leases
from services.catalog.events import format_cursor, parse_cursor
from services.catalog.notify import CommitSignal
from services.catalog.records import EventFilter, EventType, StartPosition
from services.catalog.repository import Store
from tests.catalog.conftest import create_item, expect_error, new_dataset
from tests.catalog.conftest import take_responses as take

CREATED = res.EVENT_TYPE_CREATED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def leased(group: str, dataset_id: str, subscriber: str = "", lease_seconds: int = 60,
           max_in_flight: int = 0) -> api.SubscribeRequest:
    return api.SubscribeRequest(consumer_group=group, dataset_id=dataset_id,
                                event_types=[CREATED], lease_seconds=lease_seconds,
                                max_in_flight=max_in_flight,
                                subscriber_id=subscriber or uuid.uuid4().hex[:12])


def fill(stub, count: int) -> tuple[str, list[str]]:
    """A new dataset with `count` items; their ids in creation order."""
    dataset = new_dataset(stub, "lease")
    return dataset.id, [create_item(stub, dataset.id, "/", f"{n}.jpg").item.id
                        for n in range(count)]


def group_name() -> str:
    return f"lg-{uuid.uuid4().hex[:8]}"


def ack(stub, group: str, responses: list[api.SubscribeResponse]) -> str:
    reply = stub.AckEvents(api.AckEventsRequest(
        consumer_group=group, event_cursors=[r.event.cursor for r in responses]))
    return reply.committed_cursor


def state(stub, group: str) -> api.GetConsumerGroupResponse:
    return stub.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group=group))


def test_subscribers_of_one_group_share_its_events(stub):
    dataset_id, item_ids = fill(stub, 12)
    group = group_name()
    first = take(stub, leased(group, dataset_id, "a", max_in_flight=6), 6)
    second = take(stub, leased(group, dataset_id, "b", max_in_flight=6), 6)
    assert [r.event.item_id for r in first + second] == item_ids
    assert {r.lease.subscriber_id for r in first} == {"a"}
    assert all(r.lease.delivery_attempt == 1 and r.lease.expire_time.seconds for r in second)
    # Everything is leased: a third subscriber gets nothing.
    assert take(stub, leased(group, dataset_id, "c"), 1, timeout=0.5) == []
    assert state(stub, group).leased_events == 12

    ack(stub, group, first)
    committed = ack(stub, group, second)
    assert committed == second[-1].event.cursor
    after = state(stub, group)
    assert after.leased_events == 0 and after.committed_cursor == committed
    assert take(stub, leased(group, dataset_id, "c"), 1, timeout=0.5) == []


def test_an_expired_lease_is_delivered_again(stub):
    dataset_id, item_ids = fill(stub, 1)
    group = group_name()
    [lost] = take(stub, leased(group, dataset_id, "dies", lease_seconds=1), 1)
    [again] = take(stub, leased(group, dataset_id, "lives"), 1)
    assert again.event.cursor == lost.event.cursor
    assert (again.lease.delivery_attempt, again.lease.subscriber_id) == (2, "lives")
    # The first holder lost it: it can no longer extend it, but its late ack is harmless.
    extended = stub.ExtendEventLeases(api.ExtendEventLeasesRequest(
        consumer_group=group, subscriber_id="dies", event_cursors=[lost.event.cursor],
        lease_seconds=60))
    assert list(extended.extended_cursors) == []
    ack(stub, group, [lost])
    assert state(stub, group).leased_events == 0
    assert take(stub, leased(group, dataset_id, "third", lease_seconds=1), 1,
                timeout=0.5) == []


def test_extend_keeps_leases_and_zero_gives_them_back(stub):
    dataset_id, _ = fill(stub, 2)
    group = group_name()
    held = take(stub, leased(group, dataset_id, "a", lease_seconds=5), 2)
    cursors = [r.event.cursor for r in held]
    extended = stub.ExtendEventLeases(api.ExtendEventLeasesRequest(
        consumer_group=group, subscriber_id="a", event_cursors=cursors, lease_seconds=300))
    assert list(extended.extended_cursors) == cursors
    assert extended.expire_time.seconds > held[0].lease.expire_time.seconds
    given = stub.ExtendEventLeases(api.ExtendEventLeasesRequest(
        consumer_group=group, subscriber_id="a", event_cursors=cursors[1:], lease_seconds=0))
    assert list(given.extended_cursors) == cursors[1:]
    [moved] = take(stub, leased(group, dataset_id, "b"), 2, timeout=1.0)
    assert (moved.event.cursor, moved.lease.delivery_attempt) == (cursors[1], 2)


def test_max_in_flight_bounds_unacknowledged_events(stub):
    dataset_id, item_ids = fill(stub, 3)
    group = group_name()
    request = leased(group, dataset_id, "small", max_in_flight=2)
    first = take(stub, request, 3, timeout=1.0)
    assert [r.event.item_id for r in first] == item_ids[:2]
    # Reconnecting with the same subscriber id still counts the two it holds.
    assert take(stub, request, 1, timeout=0.5) == []
    ack(stub, group, first[:1])
    assert [r.event.item_id for r in take(stub, request, 2, timeout=1.0)] == item_ids[2:]


def test_committed_cursor_is_the_low_watermark(stub):
    dataset_id, _ = fill(stub, 3)
    group = group_name()
    got = take(stub, leased(group, dataset_id, "a"), 3)
    ack(stub, group, got[1:])
    open_first = state(stub, group)  # the first is still open: the mark stays before it
    assert parse_cursor(open_first.committed_cursor) < parse_cursor(got[0].event.cursor)
    assert open_first.pending_events == 3
    assert ack(stub, group, got[:1]) == got[2].event.cursor
    assert state(stub, group).pending_events == 0
    # Acknowledging by cursor covers everything up to it, delivered or not.
    for name in ("x.jpg", "y.jpg"):
        create_item(stub, dataset_id, "/", name)
    head = state(stub, group).head_cursor
    stub.AckEvents(api.AckEventsRequest(consumer_group=group, cursor=head))
    after = state(stub, group)
    assert (after.committed_cursor, after.pending_events, after.leased_events) == (head, 0, 0)
    assert take(stub, leased(group, dataset_id, "a"), 1, timeout=0.5) == []


def test_invalid_leased_requests(stub):
    dataset_id, _ = fill(stub, 1)
    group = group_name()
    take(stub, leased(group, dataset_id, "a"), 1)

    def subscribe(request):
        return lambda: take(stub, request, 1, timeout=5)

    other_filter = api.SubscribeRequest(consumer_group=group, lease_seconds=30)
    expect_error(PRECONDITION, subscribe(other_filter), group, "same")
    for request, words in [
        (api.SubscribeRequest(lease_seconds=30), "consumer_group"),
        (api.SubscribeRequest(consumer_group=group, lease_seconds=-1), "lease_seconds"),
        (api.SubscribeRequest(consumer_group=group, lease_seconds=99999), "lease_seconds"),
        (api.SubscribeRequest(consumer_group=group, lease_seconds=30, start_cursor="1"),
         "start_cursor"),
        (api.SubscribeRequest(consumer_group=group, lease_seconds=30, max_in_flight=-2),
         "max_in_flight"),
        (api.SubscribeRequest(consumer_group=group, lease_seconds=30,
                              subscriber_id="bad\nid"), "subscriber_id"),
    ]:
        expect_error(INVALID, subscribe(request), words)
    expect_error(PRECONDITION, lambda: stub.AckEvents(api.AckEventsRequest(
        consumer_group=group_name(), event_cursors=["1"])), "event_cursors")
    expect_error(INVALID, lambda: stub.AckEvents(api.AckEventsRequest(
        consumer_group=group, event_cursors=["x"])), "event_cursors")
    expect_error(INVALID, lambda: stub.ExtendEventLeases(api.ExtendEventLeasesRequest(
        consumer_group=group, subscriber_id="a", lease_seconds=5)), "event_cursors")
    expect_error(INVALID, lambda: stub.ExtendEventLeases(api.ExtendEventLeasesRequest(
        consumer_group=group, subscriber_id="a", event_cursors=["1"], lease_seconds=-1)),
        "lease_seconds")



def test_a_full_subscriber_claims_again_only_when_room_is_freed(catalog, monkeypatch):
    """Commits that free no room (new events while the backlog is long) do not wake a
    subscriber whose room is full into a claim that would find nothing; an acknowledgement
    (signal.notify_freed) does, at once."""
    stub = catalog.stub
    dataset_id, item_ids = fill(stub, 4)
    group = group_name()
    calls = 0
    real = leases.write_quietly

    def counting(store, work):
        nonlocal calls
        calls += 1
        return real(store, work)

    monkeypatch.setattr(leases, "write_quietly", counting)

    async def scenario() -> list[list[str]]:
        signal = CommitSignal(asyncio.get_running_loop())
        request = leases.lease_request(
            group, "full", 60, 2,
            EventFilter(types=frozenset({EventType.CREATED}), dataset_id=dataset_id))
        stream = leases.subscribe_batches(Store(catalog.db), signal, request,
                                          StartPosition.EARLIEST, poll_seconds=30)
        first = await anext(stream)

        async def following() -> list[leases.LeasedEvent]:
            return await anext(stream)

        pending = asyncio.create_task(following())  # the stream waits for claimable events
        await asyncio.sleep(0.05)
        after_first = calls  # the join and one claim
        for _ in range(5):  # commits that freed nothing
            signal.notify()
            await asyncio.sleep(0.02)
        assert calls == after_first
        await asyncio.to_thread(stub.AckEvents, api.AckEventsRequest(
            consumer_group=group, event_cursors=[format_cursor(e.event.position)
                                                 for e in first]))
        signal.notify_freed()
        second = await asyncio.wait_for(pending, 5)
        await stream.aclose()
        return [[e.event.item_id for e in first], [e.event.item_id for e in second]]

    assert asyncio.run(scenario()) == [item_ids[:2], item_ids[2:]]
