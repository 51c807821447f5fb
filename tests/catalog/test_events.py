"""Subscribe, AckEvents and GetConsumerGroup over gRPC: order, cursors, filters, groups,
and wake-up both by this process's commits and by polling for other replicas' commits."""

from __future__ import annotations

import threading
import uuid

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from tests.catalog.conftest import (
    InProcessCatalog,
    create_item,
    expect_error,
    new_dataset,
    take_events,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
CREATED, UPDATED, DELETED = res.EVENT_TYPE_CREATED, res.EVENT_TYPE_UPDATED, res.EVENT_TYPE_DELETED


def lifecycle(stub, dataset_id: str) -> res.Item:
    """created x2, updated, deleted (one file), in that order."""
    item = create_item(stub, dataset_id, "/e", "one.jpg").item
    create_item(stub, dataset_id, "/e", "two.jpg")
    stub.UpdateItem(api.UpdateItemRequest(item=res.Item(id=item.id, description="d"),
                                          update_mask=FieldMask(paths=["description"])))
    stub.DeleteItem(api.DeleteItemRequest(item_id=item.id))
    return item


def test_events_in_order_with_cursors_and_resume(stub):
    dataset = new_dataset(stub)
    item = lifecycle(stub, dataset.id)
    got = take_events(stub, api.SubscribeRequest(dataset_id=dataset.id), 4)
    assert [e.type for e in got] == [CREATED, CREATED, UPDATED, DELETED]
    assert [e.item.name for e in got] == ["one.jpg", "two.jpg", "one.jpg", "one.jpg"]
    assert got[0].item_id == got[2].item_id == got[3].item_id == item.id
    assert got[2].item.description == "d" and got[0].item.description == ""
    assert all(e.dataset_id == dataset.id and e.cursor for e in got)
    assert len({e.cursor for e in got}) == 4

    resumed = take_events(stub, api.SubscribeRequest(dataset_id=dataset.id,
                                                     start_cursor=got[1].cursor), 2)
    assert [e.cursor for e in resumed] == [got[2].cursor, got[3].cursor]
    assert take_events(stub, api.SubscribeRequest(dataset_id=dataset.id,
                                                  start_cursor=got[3].cursor), 1,
                       timeout=0.5) == []


def test_filters_by_type_and_dataset(stub):
    dataset, other = new_dataset(stub), new_dataset(stub)
    lifecycle(stub, dataset.id)
    create_item(stub, other.id, "/", "noise.jpg")
    deletes = take_events(stub, api.SubscribeRequest(dataset_id=dataset.id,
                                                     event_types=[DELETED]), 1)
    assert [e.type for e in deletes] == [DELETED]
    mixed = take_events(stub, api.SubscribeRequest(dataset_id=dataset.id,
                                                   event_types=[CREATED, UPDATED]), 3)
    assert [e.type for e in mixed] == [CREATED, CREATED, UPDATED]
    everything = take_events(stub, api.SubscribeRequest(
        start_cursor=mixed[0].cursor), 100, timeout=1.0)
    assert {e.dataset_id for e in everything} == {dataset.id, other.id}


def test_latest_skips_history_and_streams_new_events(stub):
    dataset = new_dataset(stub)
    create_item(stub, dataset.id, "/", "old.jpg")
    call = stub.Subscribe(api.SubscribeRequest(dataset_id=dataset.id,
                                               start_position=api.START_POSITION_LATEST),
                          timeout=15)
    received = threading.Event()

    def keep_writing() -> None:
        # The stream's start position is taken asynchronously: write until something arrives.
        for n in range(100):
            create_item(stub, dataset.id, "/", f"new-{n}.jpg")
            if received.wait(0.1):
                return

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        first = next(call).event
        received.set()
        assert first.item.name.startswith("new-")
    finally:
        received.set()
        call.cancel()
        writer.join()


def test_invalid_subscribe_arguments(stub):
    for request, words in [
        (api.SubscribeRequest(start_cursor="abc"), "start_cursor"),
        (api.SubscribeRequest(start_cursor="-1"), "start_cursor"),
        (api.SubscribeRequest(dataset_id="nope"), "dataset_id"),
        (api.SubscribeRequest(consumer_group="bad\nname"), "consumer_group"),
        (api.SubscribeRequest(event_types=[42]), "event_types"),
    ]:
        expect_error(INVALID, lambda request=request: list(stub.Subscribe(request, timeout=5)),
                     words)


def test_consumer_group_ack_resume_and_lag(stub):
    group = f"g-{uuid.uuid4().hex[:8]}"
    state = stub.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group=group))
    assert state.consumer_group == group and state.committed_cursor == ""
    if state.head_cursor:  # other tests' events: start this group at the head
        stub.AckEvents(api.AckEventsRequest(consumer_group=group, cursor=state.head_cursor))
    dataset = new_dataset(stub)
    lifecycle(stub, dataset.id)
    state = stub.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group=group))
    assert state.pending_events == 4

    got = take_events(stub, api.SubscribeRequest(consumer_group=group), 4)
    assert [e.dataset_id for e in got] == [dataset.id] * 4
    assert state.head_cursor == got[3].cursor
    acked = stub.AckEvents(api.AckEventsRequest(consumer_group=group, cursor=got[1].cursor))
    assert acked.committed_cursor == got[1].cursor
    state = stub.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group=group))
    assert (state.committed_cursor, state.pending_events) == (got[1].cursor, 2)

    resumed = take_events(stub, api.SubscribeRequest(consumer_group=group), 2)
    assert [e.cursor for e in resumed] == [got[2].cursor, got[3].cursor]
    # An explicit start cursor wins over the group's.
    explicit = take_events(stub, api.SubscribeRequest(consumer_group=group,
                                                      start_cursor=got[0].cursor), 1)
    assert explicit[0].cursor == got[1].cursor

    backwards = stub.AckEvents(api.AckEventsRequest(consumer_group=group, cursor=got[0].cursor))
    assert backwards.committed_cursor == got[1].cursor  # never moves backwards
    stub.AckEvents(api.AckEventsRequest(consumer_group=group, cursor=got[3].cursor))
    state = stub.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group=group))
    assert (state.committed_cursor, state.pending_events) == (got[3].cursor, 0)


def test_ack_errors(stub):
    def ack(group: str, cursor: str):
        return lambda: stub.AckEvents(api.AckEventsRequest(consumer_group=group, cursor=cursor))

    expect_error(INVALID, ack("", "1"), "consumer_group")
    expect_error(INVALID, ack("g", ""), "cursor")
    expect_error(INVALID, ack("g", "x1"), "cursor")
    expect_error(INVALID, ack("g", f"{2**62}.{2**62}"), "ahead")
    expect_error(INVALID, lambda: stub.GetConsumerGroup(api.GetConsumerGroupRequest()),
                 "consumer_group")


@pytest.fixture(scope="module")
def slow_polling_catalog(module_database_url: str):
    """A second replica on the same database that polls only every 60 s."""
    server = InProcessCatalog(module_database_url, poll_seconds=60.0)
    yield server
    server.stop()


def next_event_after_write(subscriber, writer, dataset_id: str, seconds: float) -> res.ItemEvent:
    """Subscribes through `subscriber`, waits for an existing event (so the stream is idle and
    waiting), then writes through `writer` and returns the next event."""
    create_item(writer, dataset_id, "/", "before.jpg")
    call = subscriber.Subscribe(api.SubscribeRequest(dataset_id=dataset_id), timeout=seconds)
    try:
        assert next(call).event.item.name == "before.jpg"
        create_item(writer, dataset_id, "/", "after.jpg")
        return next(call).event
    finally:
        call.cancel()


def test_own_commits_wake_subscribers_at_once(stub, slow_polling_catalog):
    # Subscribed and written through the 60 s poller: only the in-process wake-up can deliver
    # within the 10 s deadline.
    replica = slow_polling_catalog.stub
    dataset = new_dataset(replica)
    event = next_event_after_write(replica, replica, dataset.id, seconds=10)
    assert event.item.name == "after.jpg"


def test_other_replicas_commits_are_found_by_polling(stub, slow_polling_catalog):
    # Subscribed on the 0.2 s poller, written through the other replica.
    dataset = new_dataset(stub)
    event = next_event_after_write(stub, slow_polling_catalog.stub, dataset.id, seconds=10)
    assert event.item.name == "after.jpg"
