"""Trigger RPCs on SQLite and PostgreSQL: CRUD, validation naming the field, the trigger's
consumer group (starts at the head, follows updates, goes with the trigger), once claims and
run records."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from corral.catalog.v1 import triggers_pb2 as tpb
from corral.client.filters import field
from corral.structs import dict_to_struct, struct_to_dict
from tests.catalog.conftest import create_item, expect_error, new_dataset, take_responses

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def _create(stub, **fields) -> tpb.Trigger:
    fields.setdefault("name", _name())
    fields.setdefault("actions", [res.EVENT_TYPE_CREATED])
    return stub.CreateTrigger(tpb.CreateTriggerRequest(trigger=tpb.Trigger(**fields)),
                              timeout=10).trigger


def test_create_get_list_update_delete(stub):
    dataset = new_dataset(stub, "trig")
    jpegs = (field("name").glob("*.jpg") & (field("metadata.user.camera") == 3)).to_proto()
    created = _create(stub, dataset_id=dataset.id, filter=jpegs,
                      actions=[res.EVENT_TYPE_UPDATED, res.EVENT_TYPE_CREATED],
                      mode=tpb.TRIGGER_MODE_ALWAYS, description="hash")
    # An instance admin names groups as stored: the trigger's project, then trigger:<name>.
    assert created.consumer_group == f"default/trigger:{created.name}"
    assert list(created.actions) == [res.EVENT_TYPE_CREATED, res.EVENT_TYPE_UPDATED]
    assert (created.mode, created.paused, created.project) == (tpb.TRIGGER_MODE_ALWAYS, False,
                                                               "default")
    got = stub.GetTrigger(tpb.GetTriggerRequest(name=created.name)).trigger
    assert got.filter == jpegs and got.dataset_id == dataset.id
    names = [t.name for t in stub.ListTriggers(tpb.ListTriggersRequest(page_size=1000)).triggers]
    assert created.name in names

    # The group exists at once and starts at the head: only later events reach it.
    group = stub.GetConsumerGroup(api.GetConsumerGroupRequest(
        consumer_group=created.consumer_group))
    assert group.pending_events == 0

    paused = stub.UpdateTrigger(tpb.UpdateTriggerRequest(
        trigger=tpb.Trigger(name=created.name, paused=True,
                            actions=[res.EVENT_TYPE_DELETED]),
        update_mask=FieldMask(paths=["paused", "actions"]))).trigger
    assert paused.paused and list(paused.actions) == [res.EVENT_TYPE_DELETED]
    assert paused.filter == jpegs  # not in the mask: kept
    # Subscribers now join with the new actions.
    request = api.SubscribeRequest(consumer_group=created.consumer_group, lease_seconds=30,
                                   event_types=[res.EVENT_TYPE_DELETED],
                                   dataset_id=dataset.id)
    assert take_responses(stub, request, 1, timeout=0.5) == []

    stub.DeleteTrigger(tpb.DeleteTriggerRequest(name=created.name))
    expect_error(grpc.StatusCode.NOT_FOUND,
                 lambda: stub.GetTrigger(tpb.GetTriggerRequest(name=created.name)),
                 created.name)
    expect_error(grpc.StatusCode.NOT_FOUND,
                 lambda: stub.DeleteTrigger(tpb.DeleteTriggerRequest(name=created.name)))


def test_events_after_creation_reach_the_group_even_without_a_worker(stub):
    dataset = new_dataset(stub, "trig")
    create_item(stub, dataset.id, "/", "before.jpg")
    trigger = _create(stub, dataset_id=dataset.id)
    create_item(stub, dataset.id, "/", "after.jpg")
    responses = take_responses(stub, api.SubscribeRequest(
        consumer_group=trigger.consumer_group, lease_seconds=30,
        event_types=[res.EVENT_TYPE_CREATED], dataset_id=dataset.id), 2, timeout=2)
    assert [r.event.item.name for r in responses] == ["after.jpg"]


def test_duplicate_names_and_validation(stub):
    trigger = _create(stub)
    expect_error(grpc.StatusCode.ALREADY_EXISTS, lambda: _create(stub, name=trigger.name),
                 trigger.name)
    cases = [
        ({"name": ""}, "trigger.name is required"),
        ({"name": "1abc"}, "trigger.name"),
        ({"name": "a.b"}, "trigger.name"),
        ({"name": "thumbnail"}, "trigger.name 'thumbnail'"),
        ({"actions": []}, "trigger.actions"),
        ({"actions": [res.EVENT_TYPE_UNSPECIFIED]}, "trigger.actions"),
        ({"mode": 7}, "trigger.mode"),
        ({"dataset_id": "nope"}, "trigger.dataset_id"),
        ({"filter": (field("size") > "big").to_proto()}, "trigger.filter: size gt"),
        ({"filter": (field("colour") == 1).to_proto()}, "trigger.filter: unknown field"),
    ]
    for fields, message in cases:
        expect_error(INVALID, lambda fields=fields: _create(stub, **fields), message)
    expect_error(grpc.StatusCode.NOT_FOUND,
                 lambda: _create(stub, dataset_id=uuid.uuid4().hex), "trigger.dataset_id")
    expect_error(INVALID, lambda: stub.UpdateTrigger(tpb.UpdateTriggerRequest(
        trigger=tpb.Trigger(name=trigger.name), update_mask=FieldMask(paths=["name"]))),
        "update_mask")
    expect_error(INVALID, lambda: stub.UpdateTrigger(tpb.UpdateTriggerRequest(
        trigger=tpb.Trigger(name=trigger.name), update_mask=FieldMask(paths=["actions"]))),
        "trigger.actions")


def test_once_claims_an_item_for_one_event_only(stub):
    dataset = new_dataset(stub, "trig")
    item = create_item(stub, dataset.id, "/", "a.jpg").item
    once = _create(stub)
    always = _create(stub, mode=tpb.TRIGGER_MODE_ALWAYS)

    def start(trigger, cursor):
        return stub.StartTriggerRun(tpb.StartTriggerRunRequest(
            trigger=trigger.name, item_id=item.id, event_cursor=cursor)).proceed

    assert start(once, "0.5") and start(once, "0.5")  # a re-delivery of the claiming event
    assert not start(once, "0.6")  # any later event of the same item
    assert start(always, "0.5") and start(always, "0.6")
    expect_error(INVALID, lambda: start(once, "junk"), "event_cursor")


def _set_logs(stub, item_id: str, logs: dict) -> None:
    stub.UpdateSystemMetadata(api.UpdateSystemMetadataRequest(
        item_id=item_id, system=dict_to_struct({"executionLogs": logs})))


def test_complete_run_merges_logs_and_writes_the_namespace(stub):
    dataset = new_dataset(stub, "trig")
    item = create_item(stub, dataset.id, "/", "a.jpg").item
    _set_logs(stub, item.id, {"preprocess": {"status": "success"}})
    trigger = _create(stub)
    reply = stub.CompleteTriggerRun(tpb.CompleteTriggerRunRequest(
        trigger=trigger.name, item_id=item.id, event_cursor="0.1",
        run=tpb.TriggerRun(status="success", attempts=2, duration_ms=12),
        system=dict_to_struct({"phash": "00ff"})))
    system = struct_to_dict(reply.item.metadata.system)
    assert system[trigger.name] == {"phash": "00ff"}
    assert system["executionLogs"]["preprocess"] == {"status": "success"}
    log = system["executionLogs"][trigger.name]
    assert (log["status"], log["attempts"], log["durationMs"], log["error"]) == (
        "success", 2, 12, "")
    assert log["finishedAt"].endswith("Z")
    # preprocess rewriting its own log keeps the trigger's.
    _set_logs(stub, item.id, {"preprocess": {"status": "failed"}})
    logs = struct_to_dict(stub.GetItem(api.GetItemRequest(item_id=item.id)).item.metadata.system)[
        "executionLogs"]
    assert set(logs) == {"preprocess", trigger.name}
    gone = stub.CompleteTriggerRun(tpb.CompleteTriggerRunRequest(
        trigger=trigger.name, item_id=uuid.uuid4().hex, event_cursor="0.1",
        run=tpb.TriggerRun(status="failed", attempts=1)))
    assert not gone.found
    expect_error(INVALID, lambda: stub.CompleteTriggerRun(tpb.CompleteTriggerRunRequest(
        trigger=trigger.name, item_id=item.id, run=tpb.TriggerRun(status="ok", attempts=1))),
        "run.status")


@pytest.mark.parametrize("paused", [True])
def test_paused_flag_round_trips(stub, paused):
    trigger = _create(stub, paused=paused)
    assert stub.GetTrigger(tpb.GetTriggerRequest(name=trigger.name)).trigger.paused is paused
