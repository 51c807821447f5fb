"""Projects own datasets (issue 7), on SQLite and PostgreSQL over real gRPC with real keys made
through AdminService: every catalog RPC acts only in the caller's project. Another project's
dataset, item, trigger or consumer group answers exactly like a missing one and stays
unchanged; readers cannot write; events never cross projects; instance admins see every
project and act in one with x-corral-project; keys never reach the catalog's logs."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import testkeys
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import text

from corral.catalog.v1 import admin_service_pb2 as apb
from corral.catalog.v1 import admin_service_pb2_grpc as admin_grpc
from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import catalog_service_pb2_grpc as api_grpc
from corral.catalog.v1 import resources_pb2 as res
from corral.catalog.v1 import triggers_pb2 as tpb
from corral.client import Client
from corral.client.filters import field as item_field
from corral.credentials import Credentials
from corral.rpc import open_channel
from corral.structs import dict_to_struct, struct_to_dict
from corral.worker import TriggerWorker
from services.catalog import leases, migrate, triggers
from services.catalog.db import Database
from services.catalog.repository import Store
from services.catalog.scope import Scope
from services.catalog.servicer import NEEDS
from services.common.auth import Need
from tests.catalog.conftest import InProcessCatalog, expect_error, sha256_of

NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED


class Caller:
    """One key's (and project header's) view of the catalog."""

    def __init__(self, addr: str, key: str, project: str = "") -> None:
        self.key = key
        self.channel = open_channel(addr, Credentials(api_key=key, project=project))
        self.catalog = api_grpc.CatalogServiceStub(self.channel)
        self.admin = admin_grpc.AdminServiceStub(self.channel)

    # Shorthands for the calls most tests make.

    def dataset(self, prefix: str = "ds") -> res.Dataset:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        created = self.catalog.CreateDataset(api.CreateDatasetRequest(name=name), timeout=10)
        return created.dataset

    def item(self, dataset_id: str, name: str, dir: str = "/", **fields: Any) -> res.Item:
        return self.catalog.CreateItem(api.CreateItemRequest(
            dataset_id=dataset_id, dir=dir, name=name, size=3, sha256=sha256_of(name),
            blob_key=f"items/{dataset_id}/{uuid.uuid4().hex}", **fields), timeout=10).item

    def trigger(self, name: str, dataset_id: str = "") -> tpb.Trigger:
        return self.catalog.CreateTrigger(tpb.CreateTriggerRequest(trigger=tpb.Trigger(
            name=name, dataset_id=dataset_id, actions=[res.EVENT_TYPE_CREATED])),
            timeout=10).trigger


@dataclass
class World:
    a: str
    b: str
    keys: dict[str, str]
    a_reader: Caller
    a_writer: Caller
    a_admin: Caller
    b_writer: Caller
    admin: Caller  # the test session's instance admin, naming no project
    admin_in_b: Caller  # the same key with x-corral-project: B
    a_dataset: res.Dataset
    a_item: res.Item
    a_trigger: tpb.Trigger
    b_dataset: res.Dataset
    b_item: res.Item
    b_trigger: tpb.Trigger
    # Every dataset the tests made -> its project (deleted ones too), to check event streams.
    projects: dict[str, str] = field(default_factory=dict)

    def dataset(self, caller: Caller, prefix: str = "ds") -> res.Dataset:
        made = caller.dataset(prefix)
        self.projects[made.id] = made.project
        return made


@pytest.fixture(scope="module")
def world(catalog: InProcessCatalog) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:6]
    a, b = f"alpha-{suffix}", f"beta-{suffix}"
    admin = Caller(catalog.addr, testkeys.ADMIN_KEY)
    for project in (a, b):
        admin.admin.CreateProject(apb.CreateProjectRequest(name=project), timeout=10)

    def key(project: str, role: int) -> str:
        return admin.admin.CreateApiKey(apb.CreateApiKeyRequest(project=project, role=role),
                                        timeout=10).key

    keys = {"a_reader": key(a, apb.ROLE_READER), "a_writer": key(a, apb.ROLE_WRITER),
            "a_admin": key(a, apb.ROLE_ADMIN), "b_writer": key(b, apb.ROLE_WRITER)}
    callers = {name: Caller(catalog.addr, value) for name, value in keys.items()}
    a_writer, b_writer = callers["a_writer"], callers["b_writer"]
    a_dataset, b_dataset = a_writer.dataset("a"), b_writer.dataset("b")
    world = World(
        a=a, b=b, keys=keys, **callers, admin=admin,
        admin_in_b=Caller(catalog.addr, testkeys.ADMIN_KEY, project=b),
        a_dataset=a_dataset, b_dataset=b_dataset,
        a_item=a_writer.item(a_dataset.id, "a.jpg", dir="/in", request_id="req-1",
                             user_metadata=dict_to_struct({"camera": 1})),
        b_item=b_writer.item(b_dataset.id, "b.jpg", request_id="req-1"),
        a_trigger=a_writer.trigger("a_trig", a_dataset.id),
        b_trigger=b_writer.trigger("b_trig", b_dataset.id),
        projects={a_dataset.id: a, b_dataset.id: b})
    yield world
    for caller in (*callers.values(), admin, world.admin_in_b):
        caller.channel.close()


def same_as_missing(call: Callable[[str], Any], real: str, missing: str) -> None:
    """`call` on another project's `real` id or name fails exactly like on a `missing` one:
    NOT_FOUND with the same message, up to the id."""
    seen = expect_error(NOT_FOUND, lambda: call(real))
    absent = expect_error(NOT_FOUND, lambda: call(missing))
    assert seen.replace(real, "<x>") == absent.replace(missing, "<x>")


def drain(call: Any) -> list[Any]:
    return list(call)


def snapshot(world: World) -> tuple[Any, ...]:
    """A's rows as A's writer sees them."""
    stub = world.a_writer.catalog
    return (stub.GetDataset(api.GetDatasetRequest(dataset_id=world.a_dataset.id)).dataset,
            stub.GetItem(api.GetItemRequest(item_id=world.a_item.id)).item,
            list(stub.ListItems(api.ListItemsRequest(dataset_id=world.a_dataset.id,
                                                     recursive=True)).items),
            stub.GetTrigger(tpb.GetTriggerRequest(name=world.a_trigger.name)).trigger)


# -- another project's rows: NOT_FOUND like missing ones, and nothing changes ---------------

def test_another_projects_datasets_items_and_triggers_answer_like_missing_ones(world):
    before = snapshot(world)
    for caller in (world.b_writer, world.admin_in_b):
        _probe_project_a(world, caller)
    assert snapshot(world) == before  # nothing of A's changed


def _probe_project_a(world: World, caller: Caller) -> None:
    """Every RPC of `caller` (acting in B) naming A's dataset, item or trigger."""
    dataset, item, trigger = world.a_dataset.id, world.a_item.id, world.a_trigger.name
    stub, own_item = caller.catalog, world.b_item.id
    by_dataset: list[Callable[[str], Any]] = [
        lambda d: stub.GetDataset(api.GetDatasetRequest(dataset_id=d)),
        lambda d: stub.DeleteDataset(api.DeleteDatasetRequest(dataset_id=d)),
        lambda d: stub.SetDatasetPreprocessing(api.SetDatasetPreprocessingRequest(
            dataset_id=d, mode=res.PREPROCESSING_MODE_OFF)),
        lambda d: stub.CreateItem(api.CreateItemRequest(
            dataset_id=d, dir="/", name="x.jpg", size=1, sha256=sha256_of("x"),
            blob_key="items/x")),
        lambda d: stub.CreateItem(api.CreateItemRequest(  # a replay would answer A's item
            dataset_id=d, dir="/in", name="a.jpg", size=3, sha256=sha256_of("a.jpg"),
            blob_key="items/y", request_id="req-1")),
        lambda d: stub.CloneItem(api.CloneItemRequest(item_id=own_item, dataset_id=d)),
        lambda d: stub.GetItem(api.GetItemRequest(dataset_id=d, filename="/in/a.jpg")),
        lambda d: stub.GetItem(api.GetItemRequest(dataset_id=d, request_id="req-1")),
        lambda d: stub.ListItems(api.ListItemsRequest(dataset_id=d)),
        lambda d: stub.UpdateMatchingItems(api.UpdateMatchingItemsRequest(
            dataset_id=d, filter=(item_field("name") == "a.jpg").to_proto(),
            user_metadata=dict_to_struct({"hacked": True}),
            update_mask=FieldMask(paths=["metadata.user.*"]))),
        lambda d: drain(stub.Subscribe(api.SubscribeRequest(dataset_id=d), timeout=10)),
        lambda d: drain(stub.Subscribe(api.SubscribeRequest(
            dataset_id=d, consumer_group=f"g-{d}", lease_seconds=30), timeout=10)),
        lambda d: stub.CreateTrigger(tpb.CreateTriggerRequest(trigger=tpb.Trigger(
            name=f"t_{uuid.uuid4().hex[:8]}", dataset_id=d,
            actions=[res.EVENT_TYPE_CREATED]))),
        lambda d: stub.UpdateTrigger(tpb.UpdateTriggerRequest(
            trigger=tpb.Trigger(name=world.b_trigger.name, dataset_id=d),
            update_mask=FieldMask(paths=["dataset_id"]))),
    ]
    by_item: list[Callable[[str], Any]] = [
        lambda i: stub.GetItem(api.GetItemRequest(item_id=i)),
        lambda i: stub.UpdateItem(api.UpdateItemRequest(
            item=res.Item(id=i, description="mine now"),
            update_mask=FieldMask(paths=["description"]))),
        lambda i: stub.DeleteItem(api.DeleteItemRequest(item_id=i)),
        lambda i: stub.UpdateSystemMetadata(api.UpdateSystemMetadataRequest(
            item_id=i, system=dict_to_struct({"width": 1}))),
        lambda i: stub.CloneItem(api.CloneItemRequest(item_id=i)),
        lambda i: stub.CloneItem(api.CloneItemRequest(item_id=i,
                                                      dataset_id=world.b_dataset.id)),
    ]
    by_trigger: list[Callable[[str], Any]] = [
        lambda t: stub.GetTrigger(tpb.GetTriggerRequest(name=t)),
        lambda t: stub.UpdateTrigger(tpb.UpdateTriggerRequest(
            trigger=tpb.Trigger(name=t, paused=True), update_mask=FieldMask(
                paths=["paused"]))),
        lambda t: stub.DeleteTrigger(tpb.DeleteTriggerRequest(name=t)),
        lambda t: stub.StartTriggerRun(tpb.StartTriggerRunRequest(
            trigger=t, item_id=own_item, event_cursor="1")),
        lambda t: stub.CompleteTriggerRun(tpb.CompleteTriggerRunRequest(
            trigger=t, item_id=own_item, run=tpb.TriggerRun(status="success",
                                                             attempts=1))),
    ]
    for call in by_dataset:
        same_as_missing(call, dataset, uuid.uuid4().hex)
    for call in by_item:
        same_as_missing(call, item, uuid.uuid4().hex)
    for call in by_trigger:
        same_as_missing(call, trigger, "t_missing")
    same_as_missing(lambda n: stub.GetDataset(api.GetDatasetRequest(name=n)),
                    world.a_dataset.name, "no-such-dataset")

    # BatchCreateItems: each entry fails on its own, like one naming a missing dataset.
    missing = uuid.uuid4().hex
    results = stub.BatchCreateItems(api.BatchCreateItemsRequest(requests=[
        api.CreateItemRequest(dataset_id=d, dir="/", name="z.jpg", size=1,
                              sha256=sha256_of("z"), blob_key="items/z")
        for d in (dataset, missing)])).results
    assert [(r.WhichOneof("result"), r.error.code) for r in results] == [
        ("error", "NOT_FOUND")] * 2
    assert results[0].error.message.replace(f"[0]: dataset {dataset}", "") == \
        results[1].error.message.replace(f"[1]: dataset {missing}", "")


def test_batch_system_metadata_updates_only_the_callers_items(world):
    """A's writer naming B's item in a batch: that entry fails like a missing item; A's own
    entry applies; B's item is unchanged."""
    stub = world.a_writer.catalog
    before = world.b_writer.catalog.GetItem(api.GetItemRequest(item_id=world.b_item.id)).item
    missing = uuid.uuid4().hex
    mine = world.a_writer.item(world.a_dataset.id, f"batch-{uuid.uuid4().hex[:6]}.jpg")
    reply = stub.BatchUpdateSystemMetadata(api.BatchUpdateSystemMetadataRequest(requests=[
        api.UpdateSystemMetadataRequest(item_id=item_id, system=dict_to_struct({"w": 1}))
        for item_id in (mine.id, world.b_item.id, missing)]))
    assert [(r.WhichOneof("result"), r.error.code) for r in reply.results] == [
        ("updated", ""), ("error", "NOT_FOUND"), ("error", "NOT_FOUND")]
    assert reply.results[1].error.message.replace(f"[1]: item {world.b_item.id}", "") == \
        reply.results[2].error.message.replace(f"[2]: item {missing}", "")
    assert reply.results[0].updated.item.metadata.system["w"] == 1
    after = world.b_writer.catalog.GetItem(api.GetItemRequest(item_id=world.b_item.id)).item
    assert after == before


def test_a_trigger_writes_only_to_items_of_its_project(world):
    """B's trigger named on A's item: answered like a deleted item, and A's item unchanged."""
    before = world.a_writer.catalog.GetItem(api.GetItemRequest(item_id=world.a_item.id)).item
    done = world.b_writer.catalog.CompleteTriggerRun(tpb.CompleteTriggerRunRequest(
        trigger=world.b_trigger.name, item_id=world.a_item.id,
        run=tpb.TriggerRun(status="success", attempts=1), system=dict_to_struct({"x": 1})))
    assert not done.found
    after = world.a_writer.catalog.GetItem(api.GetItemRequest(item_id=world.a_item.id)).item
    assert after == before


def test_consumer_groups_of_a_project_key_are_its_projects_own(world):
    a, b = world.a_writer.catalog, world.b_writer.catalog
    dataset = world.dataset(world.a_writer, "groups")
    item = world.a_writer.item(dataset.id, "g.jpg")
    event = next(e for e in events_until(a, api.SubscribeRequest(dataset_id=dataset.id),
                                         item.id))
    a.AckEvents(api.AckEventsRequest(consumer_group="g", cursor=event.cursor))
    mine = a.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group="g"))
    assert (mine.consumer_group, mine.committed_cursor) == ("g", event.cursor)

    # B's "g" is another group; B can neither read nor move A's, not even by its stored name.
    for name in ("g", f"{world.a}/g"):
        theirs = b.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group=name))
        assert (theirs.consumer_group, theirs.committed_cursor) == (name, "")
    head = world.admin.catalog.GetConsumerGroup(api.GetConsumerGroupRequest(
        consumer_group="x")).head_cursor
    b.AckEvents(api.AckEventsRequest(consumer_group="g", cursor=head))
    b.AckEvents(api.AckEventsRequest(consumer_group=f"{world.a}/g", cursor=head))
    assert a.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group="g")) == mine
    # The instance admin names groups as stored.
    stored = world.admin.catalog.GetConsumerGroup(api.GetConsumerGroupRequest(
        consumer_group=f"{world.a}/g"))
    assert stored.committed_cursor == event.cursor

    # Leases: B cannot extend or give back A's leased events.
    leased = a.Subscribe(api.SubscribeRequest(consumer_group="work", lease_seconds=60,
                                              subscriber_id="a-1"), timeout=20)
    first = next(leased).event
    leased.cancel()
    extended = b.ExtendEventLeases(api.ExtendEventLeasesRequest(
        consumer_group="work", subscriber_id="a-1", event_cursors=[first.cursor],
        lease_seconds=0))
    assert list(extended.extended_cursors) == []
    state = a.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group="work"))
    assert state.leased_events >= 1
    a.AckEvents(api.AckEventsRequest(consumer_group="work", event_cursors=[first.cursor]))


# -- roles ----------------------------------------------------------------------------------

def _request_class(method: str) -> Any:
    service = api.DESCRIPTOR.services_by_name["CatalogService"]
    name = service.methods_by_name[method].input_type.name
    return getattr(api, name, None) or getattr(tpb, name)


def test_a_reader_reads_but_every_write_rpc_is_denied(world):
    stub = world.a_reader.catalog
    writes = [full.rsplit("/", 1)[1] for full, need in NEEDS.items() if need is Need.WRITE]
    assert {"CreateDataset", "CreateItem", "UpdateTrigger", "UpdateMatchingItems"} <= set(writes)
    before = snapshot(world)
    for method in writes:
        expect_error(DENIED, lambda method=method: getattr(stub, method)(
            _request_class(method)(), timeout=10), "writer")
    assert snapshot(world) == before

    assert stub.GetDataset(api.GetDatasetRequest(dataset_id=world.a_dataset.id)).dataset \
        .project == world.a
    assert stub.GetItem(api.GetItemRequest(item_id=world.a_item.id)).item == world.a_item
    assert world.a_trigger.name in [
        t.name for t in stub.ListTriggers(tpb.ListTriggersRequest()).triggers]
    got = next(iter(stub.Subscribe(api.SubscribeRequest(dataset_id=world.a_dataset.id),
                                   timeout=10)))
    assert got.event.dataset_id == world.a_dataset.id
    # A's reader cannot reach B's rows either.
    expect_error(NOT_FOUND, lambda: stub.GetItem(api.GetItemRequest(item_id=world.b_item.id)))


def test_a_project_admin_works_in_its_project_only(world):
    stub = world.a_admin.catalog
    mine = world.dataset(world.a_admin, "by-admin")
    assert mine.project == world.a
    stub.DeleteDataset(api.DeleteDatasetRequest(dataset_id=mine.id))
    expect_error(NOT_FOUND, lambda: stub.DeleteDataset(api.DeleteDatasetRequest(
        dataset_id=world.b_dataset.id)))


# -- a writer within its project ------------------------------------------------------------

def test_a_writer_works_within_its_project(world):
    w, stub = world.a_writer, world.a_writer.catalog
    # Names and request ids are per project: B's name and request id are free in A.
    same_name = stub.CreateDataset(api.CreateDatasetRequest(
        name=world.b_dataset.name, request_id="ds-req")).dataset
    world.projects[same_name.id] = same_name.project
    assert same_name.project == world.a and same_name.id != world.b_dataset.id
    in_b = world.b_writer.catalog.CreateDataset(api.CreateDatasetRequest(
        name=f"other-{uuid.uuid4().hex[:6]}", request_id="ds-req")).dataset
    world.projects[in_b.id] = in_b.project
    assert in_b.id != same_name.id and in_b.project == world.b
    assert stub.GetDataset(api.GetDatasetRequest(name=world.b_dataset.name)).dataset == \
        stub.GetDataset(api.GetDatasetRequest(dataset_id=same_name.id)).dataset

    item = w.item(same_name.id, "one.jpg", dir="/x")
    assert stub.GetItem(api.GetItemRequest(dataset_id=same_name.id,
                                           filename="/x/one.jpg")).item == item
    moved = stub.UpdateItem(api.UpdateItemRequest(
        item=res.Item(id=item.id, description="d", metadata=res.ItemMetadata(
            user=dict_to_struct({"k": 1}))),
        update_mask=FieldMask(paths=["description", "metadata.user"]))).item
    assert moved.description == "d"
    clone = stub.CloneItem(api.CloneItemRequest(item_id=item.id,
                                                dataset_id=world.a_dataset.id,
                                                dir="/clones")).item
    assert clone.dataset_id == world.a_dataset.id
    updated = stub.UpdateMatchingItems(api.UpdateMatchingItemsRequest(
        dataset_id=same_name.id, filter=(item_field("name") == "one.jpg").to_proto(),
        user_metadata=dict_to_struct({"k": 2}),
        update_mask=FieldMask(paths=["metadata.user.*"]))).updated_items
    assert updated == 1
    assert stub.UpdateSystemMetadata(api.UpdateSystemMetadataRequest(
        item_id=item.id, system=dict_to_struct({"width": 3}))).item.metadata.system["width"] == 3
    assert stub.SetDatasetPreprocessing(api.SetDatasetPreprocessingRequest(
        dataset_id=same_name.id, mode=res.PREPROCESSING_MODE_OFF)).dataset.preprocessing == \
        res.PREPROCESSING_MODE_OFF
    batch = stub.BatchCreateItems(api.BatchCreateItemsRequest(requests=[
        api.CreateItemRequest(dataset_id=same_name.id, dir="/", name=f"{n}.jpg", size=1,
                              sha256=sha256_of(str(n)), blob_key=f"items/{n}")
        for n in range(2)])).results
    assert [r.WhichOneof("result") for r in batch] == ["created", "created"]
    stub.DeleteItem(api.DeleteItemRequest(item_id=clone.id))
    assert stub.DeleteDataset(api.DeleteDatasetRequest(dataset_id=same_name.id)) \
        .deleted_items == 3

    # Triggers: in A, over A's datasets, its group named "trigger:<name>" by A's keys.
    name = f"t_{uuid.uuid4().hex[:8]}"
    trigger = w.trigger(name)
    assert (trigger.project, trigger.consumer_group) == (world.a, f"trigger:{name}")
    group = stub.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group=f"trigger:{name}"))
    assert group.consumer_group == f"trigger:{name}"
    paused = stub.UpdateTrigger(tpb.UpdateTriggerRequest(
        trigger=tpb.Trigger(name=name, paused=True), update_mask=FieldMask(paths=["paused"])))
    assert paused.trigger.paused
    stub.DeleteTrigger(tpb.DeleteTriggerRequest(name=name))
    expect_error(NOT_FOUND, lambda: stub.GetTrigger(tpb.GetTriggerRequest(name=name)))


def test_datasets_need_an_existing_project(world, catalog):
    nowhere = Caller(catalog.addr, testkeys.ADMIN_KEY, project=f"nowhere-{uuid.uuid4().hex[:6]}")
    try:
        expect_error(NOT_FOUND, lambda: nowhere.catalog.CreateDataset(
            api.CreateDatasetRequest(name="x")), "project")
        expect_error(NOT_FOUND, lambda: nowhere.catalog.CreateTrigger(tpb.CreateTriggerRequest(
            trigger=tpb.Trigger(name="t_x", actions=[res.EVENT_TYPE_CREATED]))), "project")
        assert list(nowhere.catalog.ListDatasets(api.ListDatasetsRequest()).datasets) == []
    finally:
        nowhere.channel.close()


# -- lists ----------------------------------------------------------------------------------

def _all_pages(call: Callable[[str], Any], entries: str) -> list[Any]:
    found, token = [], ""
    while True:
        page = call(token)
        found += list(getattr(page, entries))
        token = page.next_page_token
        if not token:
            return found


def test_lists_show_only_the_callers_project(world):
    def datasets(caller: Caller) -> list[res.Dataset]:
        return _all_pages(lambda token: caller.catalog.ListDatasets(api.ListDatasetsRequest(
            page_size=1, page_token=token)), "datasets")

    def triggers(caller: Caller) -> list[tpb.Trigger]:
        return _all_pages(lambda token: caller.catalog.ListTriggers(tpb.ListTriggersRequest(
            page_size=1, page_token=token)), "triggers")

    for caller, project in ((world.a_reader, world.a), (world.b_writer, world.b),
                            (world.admin_in_b, world.b)):
        assert {d.project for d in datasets(caller)} == {project}
        assert {t.project for t in triggers(caller)} == {project}
    assert world.a_dataset.id in {d.id for d in datasets(world.a_reader)}
    assert world.b_dataset.id not in {d.id for d in datasets(world.a_reader)}

    # The instance admin naming no project: every project, ordered by project then name.
    everything = datasets(world.admin)
    assert {world.a, world.b} <= {d.project for d in everything}
    assert [(d.project, d.name) for d in everything] == sorted(
        (d.project, d.name) for d in everything)
    shown = {(t.project, t.name): t.consumer_group for t in triggers(world.admin)}
    assert shown[(world.a, "a_trig")] == f"{world.a}/trigger:a_trig"
    assert shown[(world.b, "b_trig")] == f"{world.b}/trigger:b_trig"


def test_an_instance_admin_sees_every_project_and_acts_in_the_one_it_names(world):
    admin, in_b = world.admin.catalog, world.admin_in_b.catalog
    for item in (world.a_item, world.b_item):
        assert admin.GetItem(api.GetItemRequest(item_id=item.id)).item == item
    assert in_b.GetItem(api.GetItemRequest(item_id=world.b_item.id)).item == world.b_item
    expect_error(NOT_FOUND, lambda: in_b.GetItem(api.GetItemRequest(item_id=world.a_item.id)))
    made = world.dataset(world.admin_in_b, "by-admin")
    assert made.project == world.b
    # Names are unique per project: without a project, a name is looked up in "default".
    expect_error(NOT_FOUND, lambda: admin.GetDataset(api.GetDatasetRequest(name=made.name)))
    assert in_b.GetDataset(api.GetDatasetRequest(name=made.name)).dataset.id == made.id
    assert world.dataset(world.admin, "default").project == "default"
    trigger = in_b.GetTrigger(tpb.GetTriggerRequest(name="b_trig")).trigger
    assert (trigger.project, trigger.consumer_group) == (world.b, f"{world.b}/trigger:b_trig")
    expect_error(NOT_FOUND, lambda: admin.GetTrigger(tpb.GetTriggerRequest(name="b_trig")))


# -- events ---------------------------------------------------------------------------------

def events_until(stub: api_grpc.CatalogServiceStub, request: api.SubscribeRequest,
                 last_item_id: str, timeout: float = 30) -> list[res.ItemEvent]:
    """The subscription's events up to the first one of `last_item_id`."""
    call = stub.Subscribe(request, timeout=timeout)
    got: list[res.ItemEvent] = []
    try:
        for response in call:
            got.append(response.event)
            if response.event.item_id == last_item_id:
                return got
    finally:
        call.cancel()
    raise AssertionError(f"the stream ended before the event of {last_item_id}")


def test_subscribers_get_only_their_projects_events(world):
    a_ds, b_ds = world.dataset(world.a_writer, "ev"), world.dataset(world.b_writer, "ev")
    doomed = world.dataset(world.b_writer, "doomed")
    world.b_writer.item(doomed.id, "gone.jpg")
    world.b_writer.catalog.DeleteDataset(api.DeleteDatasetRequest(dataset_id=doomed.id))
    world.b_writer.item(b_ds.id, "b1.jpg")
    a_last = world.a_writer.item(a_ds.id, "a1.jpg")
    b_last = world.b_writer.item(b_ds.id, "b2.jpg")

    def projects(events: list[res.ItemEvent]) -> set[str]:
        return {world.projects[e.dataset_id] for e in events}

    plain = api.SubscribeRequest(start_position=api.START_POSITION_EARLIEST)
    assert projects(events_until(world.a_reader.catalog, plain, a_last.id)) == {world.a}
    b_events = events_until(world.b_writer.catalog, plain, b_last.id)
    assert projects(b_events) == {world.b}
    # The deleted dataset's events stay its project's.
    assert (doomed.id, res.EVENT_TYPE_DELETED) in {(e.dataset_id, e.type) for e in b_events}
    assert projects(events_until(world.admin_in_b.catalog, plain, b_last.id)) == {world.b}
    everything = events_until(world.admin.catalog, plain, b_last.id)
    assert {world.a, world.b} <= projects(everything)

    # A leased group of A's: only A's events, and its lag counts only A's events.
    leased = events_until(world.a_writer.catalog, api.SubscribeRequest(
        consumer_group="scan", lease_seconds=60, max_in_flight=1000), a_last.id)
    assert projects(leased) == {world.a}
    world.a_writer.catalog.AckEvents(api.AckEventsRequest(
        consumer_group="scan", event_cursors=[e.cursor for e in leased]))
    world.b_writer.item(b_ds.id, "b3.jpg")  # after the ack: not A's lag
    state = world.a_writer.catalog.GetConsumerGroup(api.GetConsumerGroupRequest(
        consumer_group="scan"))
    assert (state.pending_events, state.leased_events) == (0, 0)
    assert world.admin.catalog.GetConsumerGroup(api.GetConsumerGroupRequest(
        consumer_group="scan")).pending_events > 0  # the admin's own "scan" counts all


def test_a_triggers_group_leases_only_its_projects_events(world):
    name = f"t_{uuid.uuid4().hex[:8]}"
    a_trigger, b_trigger = world.a_writer.trigger(name), world.b_writer.trigger(name)
    assert a_trigger.consumer_group == b_trigger.consumer_group == f"trigger:{name}"
    a_ds, b_ds = world.dataset(world.a_writer, "trig"), world.dataset(world.b_writer, "trig")
    world.b_writer.item(b_ds.id, "b.jpg")
    a_last = world.a_writer.item(a_ds.id, "a.jpg")
    b_last = world.b_writer.item(b_ds.id, "b-last.jpg")

    def leased(caller: Caller, group: str, last: str) -> list[res.ItemEvent]:
        return events_until(caller.catalog, api.SubscribeRequest(
            consumer_group=group, lease_seconds=60, event_types=[res.EVENT_TYPE_CREATED]),
            last)

    got = leased(world.a_writer, a_trigger.consumer_group, a_last.id)
    assert {world.projects[e.dataset_id] for e in got} == {world.a}
    world.a_writer.catalog.AckEvents(api.AckEventsRequest(
        consumer_group=a_trigger.consumer_group, event_cursors=[e.cursor for e in got]))
    got = leased(world.b_writer, b_trigger.consumer_group, b_last.id)
    assert {world.projects[e.dataset_id] for e in got} == {world.b}

    # An instance admin (a worker run with the `corral up` key) joins by the stored name;
    # one acting in B cannot lease A's trigger's events.
    late = world.a_writer.item(a_ds.id, "late.jpg")
    got = leased(world.admin, f"{world.a}/trigger:{name}", late.id)
    assert [e.item_id for e in got] == [late.id]
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, lambda: drain(
        world.admin_in_b.catalog.Subscribe(api.SubscribeRequest(
            consumer_group=f"{world.a}/trigger:{name}", lease_seconds=60,
            event_types=[res.EVENT_TYPE_CREATED]), timeout=10)), world.a)


def test_a_trigger_worker_with_a_project_key(world, catalog):
    """corral.worker with A's writer key: follows A's trigger, writes results on A's items,
    never sees B's same-named trigger's items."""
    name = f"t_{uuid.uuid4().hex[:8]}"
    a_ds, b_ds = world.dataset(world.a_writer, "work"), world.dataset(world.b_writer, "work")
    world.a_writer.trigger(name, a_ds.id)
    world.b_writer.trigger(name, b_ds.id)
    client = Client(catalog_addr=catalog.addr, upload_addr=catalog.addr,
                    preprocess_addr=catalog.addr, api_key=world.keys["a_writer"])
    worker = TriggerWorker(client, name, lambda item, ctx: ctx.set_system({"ok": True}),
                           refresh_seconds=0.5, lease_seconds=10)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        b_item = world.b_writer.item(b_ds.id, "b.jpg")
        a_item = world.a_writer.item(a_ds.id, "a.jpg")
        deadline = time.monotonic() + 60
        while True:
            system = struct_to_dict(world.a_writer.catalog.GetItem(api.GetItemRequest(
                item_id=a_item.id)).item.metadata.system)
            if system.get(name) == {"ok": True}:
                break
            assert time.monotonic() < deadline, "the worker never ran A's item"
            time.sleep(0.1)
        assert system["executionLogs"][name]["status"] == "success"
        b_system = struct_to_dict(world.b_writer.catalog.GetItem(api.GetItemRequest(
            item_id=b_item.id)).item.metadata.system)
        assert name not in b_system and name not in b_system.get("executionLogs", {})
    finally:
        worker.stop()
        thread.join(30)
        client.close()
    assert not thread.is_alive()


# -- keys in logs ---------------------------------------------------------------------------

def test_keys_never_reach_the_catalogs_logs(service_factory):
    """The catalog as its own process with debug logs: keys made, used, refused and revoked
    appear nowhere in its output (neither whole nor their secret part)."""
    service = service_factory("catalog", env={"CORRAL_GRACE_SECONDS": "1",
                                              "CORRAL_LOG_LEVEL": "debug"})
    admin = Caller(service.addr, testkeys.ADMIN_KEY)
    admin.admin.CreateProject(apb.CreateProjectRequest(name="logs"))
    made = {role: admin.admin.CreateApiKey(apb.CreateApiKeyRequest(project="logs", role=role))
            for role in (apb.ROLE_READER, apb.ROLE_WRITER)}
    instance = admin.admin.CreateApiKey(apb.CreateApiKeyRequest(
        role=apb.ROLE_ADMIN, instance_wide=True)).key
    reader = Caller(service.addr, made[apb.ROLE_READER].key)
    writer = Caller(service.addr, made[apb.ROLE_WRITER].key)
    unknown = "corral_0123456789abcdef_" + "A" * 43
    garbage = f"not-a-key-{uuid.uuid4().hex}"
    callers = [reader, writer, Caller(service.addr, instance, project="logs"),
               Caller(service.addr, unknown), Caller(service.addr, garbage),
               Caller(service.addr, testkeys.SERVICE_KEY)]
    try:
        dataset = writer.dataset("logs")
        writer.item(dataset.id, "a.jpg")
        expect_error(DENIED, lambda: reader.catalog.CreateDataset(
            api.CreateDatasetRequest(name="no")))
        expect_error(NOT_FOUND, lambda: writer.catalog.GetItem(api.GetItemRequest(
            item_id=uuid.uuid4().hex)))
        assert callers[2].catalog.GetDataset(api.GetDatasetRequest(name=dataset.name)) \
            .dataset.id == dataset.id
        for stranger in callers[3:5]:
            expect_error(grpc.StatusCode.UNAUTHENTICATED, lambda stranger=stranger:
                         stranger.catalog.ListDatasets(api.ListDatasetsRequest()))
        assert callers[5].admin.Authenticate(apb.AuthenticateRequest(
            api_key=writer.key)).valid
        admin.admin.RevokeApiKey(apb.RevokeApiKeyRequest(
            key_id=made[apb.ROLE_READER].api_key.key_id))
        expect_error(grpc.StatusCode.UNAUTHENTICATED, lambda: reader.catalog.ListDatasets(
            api.ListDatasetsRequest()))
    finally:
        for caller in (admin, *callers):
            caller.channel.close()
    assert service.stop() == 0
    assert service.log_path is not None
    output = service.log_path.read_text()
    assert "CreateApiKey" in output and "Authenticate" in output  # debug logs were on
    for key in (testkeys.ADMIN_KEY, testkeys.SERVICE_KEY, instance, unknown, garbage,
                *(created.key for created in made.values())):
        # corral_<key id>_<secret>: the secret may itself hold "_"
        secret = key.split("_", 2)[2] if key.startswith("corral_") else key
        assert key not in output and secret not in output


# -- migration ------------------------------------------------------------------------------

def test_the_migration_puts_existing_rows_in_project_default(database_url):
    """Before 0008 every row was of project default and trigger groups were
    "trigger:<name>": events get project default, trigger groups move under it."""
    db = Database(database_url)
    try:
        migrate.upgrade(db, "0007_projects_keys")
        now = datetime.now(UTC)
        dataset = uuid.uuid4().hex
        statements = [
            ("INSERT INTO datasets (id, project, name, description, create_time, "
             "preprocessing) VALUES (:id, 'default', 'old', '', :now, 'global')", {"id": dataset}),
            ("INSERT INTO events (type, item_id, dataset_id, payload, create_time) "
             "VALUES ('created', :item, :id, '{}', :now)", {"item": uuid.uuid4().hex,
                                                            "id": dataset}),
            ("INSERT INTO triggers (id, project, name, description, dataset_id, actions, mode, "
             "paused, create_time, update_time) VALUES (:tid, 'default', 'old', '', '', "
             "'created', 'once', :no, :now, :now)", {"tid": uuid.uuid4().hex, "no": False}),
            ("INSERT INTO leased_groups (name, event_types, dataset_id, dataset_modes, "
             "frontier_txid, frontier_seq, create_time) VALUES ('trigger:old', 'created', '', "
             "'', 0, 0, :now)", {}),
            ("INSERT INTO event_leases (group_name, seq, txid, owner, lease_expire_ms, "
             "attempts) VALUES ('trigger:old', 1, 0, '', 0, 0)", {}),
        ] + [("INSERT INTO consumer_groups (name, committed_seq, committed_txid, update_time) "
              "VALUES (:name, 1, 0, :now)", {"name": name})
             for name in ("trigger:old", "preprocess")]
        with db.begin_write() as conn:
            for sql, params in statements:
                conn.execute(text(sql), {**params, "now": now})
        migrate.upgrade(db)

        with db.read() as conn:
            assert conn.execute(text("SELECT project FROM events")).scalars().all() == \
                ["default"]
            assert conn.execute(text("SELECT name, project FROM leased_groups")).all() == [
                ("default/trigger:old", "default")]
            assert conn.execute(text("SELECT group_name FROM event_leases")).scalars() \
                .all() == ["default/trigger:old"]
            assert sorted(conn.execute(text("SELECT name FROM consumer_groups")).scalars()) \
                == ["default/trigger:old", "preprocess"]
        store = Store(db)
        trigger = triggers.get_trigger(store, "old")
        assert trigger.consumer_group == "default/trigger:old"
        # A key of project default names it "trigger:old" and finds the old cursor.
        state, _ = leases.consumer_group_state(store, "trigger:old",
                                               Scope("default", bound=True))
        assert state.committed is not None and state.committed.seq == 1
    finally:
        db.dispose()
