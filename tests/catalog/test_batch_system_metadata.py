"""BatchUpdateSystemMetadata and Subscribe's max_events_per_response over gRPC, on SQLite and
PostgreSQL: many write-backs in one call, each entry succeeding or failing on its own, with
the acknowledgement of leased events in the same transaction."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable

import grpc
from google.protobuf import struct_pb2

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from corral.structs import dict_to_struct, struct_to_dict
from services.catalog.config import CatalogLimits
from services.catalog.events import parse_cursor
from tests.catalog.conftest import InProcessCatalog, create_item, expect_error, new_dataset
from tests.catalog.conftest import take_responses as take

CREATED = res.EVENT_TYPE_CREATED
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def entry(item: res.Item, system: dict, expected: str | None = None
          ) -> api.UpdateSystemMetadataRequest:
    return api.UpdateSystemMetadataRequest(
        item_id=item.id, system=dict_to_struct(system),
        expected_blob_key=item.blob_key if expected is None else expected)


def system_of(stub, item_id: str) -> dict:
    return struct_to_dict(stub.GetItem(api.GetItemRequest(item_id=item_id)).item.metadata.system)


def leased(group: str, dataset_id: str, max_in_flight: int = 0,
           per_response: int = 0) -> api.SubscribeRequest:
    return api.SubscribeRequest(consumer_group=group, dataset_id=dataset_id,
                                event_types=[CREATED], lease_seconds=60,
                                max_in_flight=max_in_flight,
                                subscriber_id=uuid.uuid4().hex[:12],
                                max_events_per_response=per_response)


def test_many_items_updated_in_one_call_without_events(catalog, stub):
    dataset = new_dataset(stub, "batch")
    items = [create_item(stub, dataset.id, "/", f"{n}.jpg").item for n in range(5)]
    first = stub.UpdateSystemMetadata(entry(items[0], {"thumbnail": {"key": "thumbs/old"}}))
    catalog.blobs.deleted.clear()

    reply = stub.BatchUpdateSystemMetadata(api.BatchUpdateSystemMetadataRequest(requests=[
        *(entry(item, {"width": n, "executionLogs": {"preprocess": {"n": n}}})
          for n, item in enumerate(items)),
        # A second entry for one item builds on the first.
        entry(items[1], {"height": 7, "thumbnail": {"key": "thumbs/new-1"}}),
        entry(items[0], {"thumbnail": {"key": "thumbs/new-0"}}),
    ]))
    assert [r.WhichOneof("result") for r in reply.results] == ["updated"] * 7
    assert [r.updated.item.id for r in reply.results] == \
        [item.id for item in items] + [items[1].id, items[0].id]
    assert struct_to_dict(reply.results[5].updated.item.metadata.system) == {
        "width": 1, "height": 7, "thumbnail": {"key": "thumbs/new-1"},
        "executionLogs": {"preprocess": {"n": 1}}}
    assert system_of(stub, items[1].id) == struct_to_dict(
        reply.results[5].updated.item.metadata.system)
    assert system_of(stub, items[0].id)["thumbnail"] == {"key": "thumbs/new-0"}
    assert system_of(stub, items[4].id)["width"] == 4
    assert first.item.metadata.system["thumbnail"]["key"] == "thumbs/old"
    assert catalog.blobs.deleted == ["thumbs/old"]  # replaced, and nothing else uses it
    assert catalog.count_rows(dataset.id) == (5, 5)  # only the CREATED events

    # omit_items: the same outcome, without the items.
    quiet = stub.BatchUpdateSystemMetadata(api.BatchUpdateSystemMetadataRequest(
        requests=[entry(items[2], {"width": 20})], omit_items=True))
    assert quiet.results[0].HasField("updated")
    assert not quiet.results[0].updated.HasField("item")
    assert system_of(stub, items[2].id)["width"] == 20


def test_a_thumbnail_a_clone_still_shows_is_kept(catalog, stub):
    dataset = new_dataset(stub, "batch")
    item = create_item(stub, dataset.id, "/", "a.jpg").item
    stub.UpdateSystemMetadata(entry(item, {"thumbnail": {"key": "thumbs/shared"}}))
    stub.CloneItem(api.CloneItemRequest(item_id=item.id, name="clone.jpg"))
    catalog.blobs.deleted.clear()
    stub.BatchUpdateSystemMetadata(api.BatchUpdateSystemMetadataRequest(
        requests=[entry(item, {"thumbnail": {"key": "thumbs/mine"}})]))
    assert catalog.blobs.deleted == []


def test_each_entry_fails_on_its_own(catalog, stub):
    dataset = new_dataset(stub, "batch")
    good, moved, other = (create_item(stub, dataset.id, "/", f"{n}.jpg").item
                          for n in ("good", "moved", "other"))
    nan = struct_pb2.Struct()
    nan.fields["width"].number_value = math.nan
    reply = stub.BatchUpdateSystemMetadata(api.BatchUpdateSystemMetadataRequest(requests=[
        entry(good, {"width": 1}),
        api.UpdateSystemMetadataRequest(item_id="not-an-id", system=dict_to_struct({"a": 1})),
        api.UpdateSystemMetadataRequest(item_id=uuid.uuid4().hex,
                                        system=dict_to_struct({"a": 1})),
        entry(moved, {"width": 2}, expected="items/someone-else"),
        api.UpdateSystemMetadataRequest(item_id=other.id, system=nan),
        entry(other, {"width": 3}),
    ]))
    outcomes = [(r.WhichOneof("result"), r.error.code) for r in reply.results]
    assert outcomes == [("updated", ""), ("error", "INVALID_ARGUMENT"), ("error", "NOT_FOUND"),
                        ("error", "FAILED_PRECONDITION"), ("error", "INVALID_ARGUMENT"),
                        ("updated", "")]
    assert reply.results[1].error.message.startswith("requests[1].item_id")
    assert "requests[3]" in reply.results[3].error.message
    assert "requests[4].system" in reply.results[4].error.message
    assert system_of(stub, good.id) == {"width": 1}
    assert system_of(stub, moved.id) == {}  # nothing of a failed entry is written
    assert system_of(stub, other.id) == {"width": 3}

    expect_error(INVALID, lambda: stub.BatchUpdateSystemMetadata(
        api.BatchUpdateSystemMetadataRequest(requests=[entry(good, {"x": 1})] * 1001)),
        "at most 1000")
    assert stub.BatchUpdateSystemMetadata(api.BatchUpdateSystemMetadataRequest()).results == []


def test_acknowledges_leased_events_in_the_same_call(catalog, stub):
    dataset = new_dataset(stub, "batch")
    items = [create_item(stub, dataset.id, "/", f"{n}.jpg").item for n in range(4)]
    group = f"bg-{uuid.uuid4().hex[:8]}"
    got = take(stub, leased(group, dataset.id), 4)
    assert [r.event.item_id for r in got] == [item.id for item in items]

    # Results of the first two, and the acknowledgement of the first two events.
    reply = stub.BatchUpdateSystemMetadata(api.BatchUpdateSystemMetadataRequest(
        requests=[entry(items[0], {"width": 1}), entry(items[1], {"width": 2})],
        omit_items=True, consumer_group=group,
        ack_event_cursors=[got[0].event.cursor, got[1].event.cursor]))
    assert not reply.HasField("ack_error")
    # The low-watermark moved to just before the oldest unacknowledged event.
    committed = parse_cursor(reply.committed_cursor)
    assert parse_cursor(got[1].event.cursor) <= committed < parse_cursor(got[2].event.cursor)
    state = stub.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group=group))
    assert state.leased_events == 2

    # A failing entry does not keep its event from being acknowledged.
    reply = stub.BatchUpdateSystemMetadata(api.BatchUpdateSystemMetadataRequest(
        requests=[entry(items[2], {"width": 3}, expected="items/gone")],
        consumer_group=group, ack_event_cursors=[got[2].event.cursor, got[3].event.cursor]))
    assert reply.results[0].error.code == "FAILED_PRECONDITION"
    assert reply.committed_cursor == got[3].event.cursor
    state = stub.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group=group))
    assert (state.leased_events, state.pending_events) == (0, 0)


def test_a_refused_acknowledgement_leaves_the_updates(catalog, stub):
    dataset = new_dataset(stub, "batch")
    item = create_item(stub, dataset.id, "/", "a.jpg").item
    cursor = take(stub, api.SubscribeRequest(dataset_id=dataset.id), 1)[0].event.cursor
    # A group nobody subscribed to with leases: AckEvents would answer FAILED_PRECONDITION.
    reply = stub.BatchUpdateSystemMetadata(api.BatchUpdateSystemMetadataRequest(
        requests=[entry(item, {"width": 5})], consumer_group=f"none-{uuid.uuid4().hex[:6]}",
        ack_event_cursors=[cursor]))
    assert reply.ack_error.code == "FAILED_PRECONDITION" and reply.committed_cursor == ""
    assert reply.results[0].HasField("updated")
    assert system_of(stub, item.id) == {"width": 5}

    # A malformed acknowledgement fails the whole call: nothing is written.
    expect_error(INVALID, lambda: stub.BatchUpdateSystemMetadata(
        api.BatchUpdateSystemMetadataRequest(requests=[entry(item, {"width": 6})],
                                             consumer_group="g", ack_event_cursors=["x"])),
        "event_cursors")
    expect_error(INVALID, lambda: stub.BatchUpdateSystemMetadata(
        api.BatchUpdateSystemMetadataRequest(requests=[entry(item, {"width": 6})],
                                             ack_event_cursors=[cursor])), "consumer_group")
    expect_error(INVALID, lambda: stub.BatchUpdateSystemMetadata(
        api.BatchUpdateSystemMetadataRequest(requests=[entry(item, {"width": 6})],
                                             consumer_group="g")), "ack_event_cursors")
    assert system_of(stub, item.id) == {"width": 5}


def test_several_events_per_subscribe_response(catalog, stub):
    dataset = new_dataset(stub, "batch")
    items = [create_item(stub, dataset.id, "/", f"{n}.jpg").item for n in range(7)]
    group = f"bg-{uuid.uuid4().hex[:8]}"
    responses = take(stub, leased(group, dataset.id, max_in_flight=5, per_response=3), 2)
    assert [len(r.events) for r in responses] == [3, 2]  # the room was 5
    assert all(not r.HasField("event") and not r.HasField("lease") for r in responses)
    events = [e for r in responses for e in r.events]
    assert [e.event.item_id for e in events] == [item.id for item in items[:5]]
    assert all(e.lease.delivery_attempt == 1 and e.lease.expire_time.seconds for e in events)
    cursors = [parse_cursor(e.event.cursor) for e in events]
    assert cursors == sorted(cursors)

    # Without leases: every event, in order, several per response.
    plain = take(stub, api.SubscribeRequest(dataset_id=dataset.id, max_events_per_response=4), 2)
    assert [len(r.events) for r in plain] == [4, 3]
    assert [e.event.item_id for r in plain for e in r.events] == [item.id for item in items]
    assert not plain[0].events[0].HasField("lease")

    # 0 and 1 keep one event per response, in `event`.
    single = take(stub, api.SubscribeRequest(dataset_id=dataset.id, max_events_per_response=1), 2)
    assert [r.event.item_id for r in single] == [items[0].id, items[1].id]
    assert all(not r.events for r in single)
    for wrong in (-1, 257):
        expect_error(INVALID, lambda wrong=wrong: take(stub, api.SubscribeRequest(
            dataset_id=dataset.id, max_events_per_response=wrong), 1),
            "max_events_per_response")


def test_an_answer_that_could_not_be_delivered_is_refused_and_nothing_written(
        limited_catalog: Callable[[CatalogLimits], InProcessCatalog]) -> None:
    # Each updated item comes back whole: 10 items with 5 KB of user metadata each answer
    # more than the 40 KB budget, so the call fails before it commits, while omit_items
    # (what preprocessing sends) and a smaller batch apply.
    server = limited_catalog(CatalogLimits(max_batch_bytes=40_000))
    stub = server.stub
    dataset = new_dataset(stub)
    made = [create_item(stub, dataset.id, "/", f"{n}.jpg", user_metadata={"note": "x" * 5_000}
                        ).item for n in range(10)]
    request = api.BatchUpdateSystemMetadataRequest(
        requests=[entry(item, {"width": 1}) for item in made])

    expect_error(INVALID, lambda: stub.BatchUpdateSystemMetadata(request, timeout=30),
                 "requests:", "at most 40000", "omit_items")
    assert all("width" not in system_of(stub, item.id) for item in made)

    smaller = api.BatchUpdateSystemMetadataRequest(requests=request.requests[:3])
    reply = stub.BatchUpdateSystemMetadata(smaller, timeout=30)
    assert [r.updated.item.id for r in reply.results] == [item.id for item in made[:3]]
    omitted = api.BatchUpdateSystemMetadataRequest(requests=request.requests, omit_items=True)
    reply = stub.BatchUpdateSystemMetadata(omitted, timeout=30)
    assert all(r.HasField("updated") for r in reply.results)
    assert all(system_of(stub, item.id)["width"] == 1 for item in made)
