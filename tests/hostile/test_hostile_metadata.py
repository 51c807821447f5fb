"""Hostile metadata through the catalog (in process, SQLite and PostgreSQL): deep nesting,
huge values, many keys, odd keys (empty, dots, "$", NUL, very long), NaN and infinities in
google.protobuf.Struct; as CreateItem's user metadata, UpdateItem's replace and merge patch,
UpdateMatchingItems and UpdateSystemMetadata. And requests no well-behaved client sends:
invalid UTF-8 in string fields, nesting past protobuf's decoding limit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import field_mask_pb2
from hypothesis import example, given
from hypothesis import strategies as st

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import filters_pb2, resources_pb2
from corral.catalog.v1 import triggers_pb2 as tpb
from corral.structs import struct_to_dict
from services.catalog.metadata import merge_patch
from tests.catalog.conftest import InProcessCatalog, new_dataset, sha256_of, take_events

from .checks import (
    Answer,
    assert_clean_row_error,
    assert_serving,
    attempt,
    raw_unary,
    with_invalid_utf8,
)
from .conftest import hostile
from .strategies import JSON, OBJECTS, ODD_KEYS, fill_struct, nested

pytestmark = pytest.mark.timeout(240)
CATALOG = "/corral.catalog.v1.CatalogService/"


@pytest.fixture(scope="module")
def dataset_id(catalog: InProcessCatalog) -> Iterator[str]:
    yield new_dataset(catalog.stub, "metadata").id


def _probe(catalog: InProcessCatalog, dataset_id: str) -> None:
    catalog.stub.ListItems(api.ListItemsRequest(dataset_id=dataset_id, page_size=1), timeout=30)


def _new_item(catalog: InProcessCatalog, dataset_id: str,
              user: dict[str, Any] | None = None) -> resources_pb2.Item:
    name = uuid.uuid4().hex
    request = api.CreateItemRequest(dataset_id=dataset_id, dir="/m", name=name, size=3,
                                    sha256=sha256_of(name),
                                    blob_key=f"items/{dataset_id}/{uuid.uuid4().hex}")
    if user is not None:
        fill_struct(request.user_metadata, user)
    return catalog.stub.CreateItem(request, timeout=30).item


def _read(catalog: InProcessCatalog, item_id: str) -> resources_pb2.Item:
    return catalog.stub.GetItem(api.GetItemRequest(item_id=item_id), timeout=30).item


def _readable_everywhere(catalog: InProcessCatalog, dataset_id: str,
                         item: resources_pb2.Item) -> None:
    """An accepted item reads back by id and in its folder's listing, as it was answered."""
    assert _read(catalog, item.id) == item
    request = api.ListItemsRequest(dataset_id=dataset_id, dir=item.dir)
    request.filter.condition.field = "name"
    request.filter.condition.operator = filters_pb2.FILTER_OPERATOR_EQ
    request.filter.condition.value.string_value = item.name
    assert list(catalog.stub.ListItems(request, timeout=30).items) == [item]


@given(user=OBJECTS)
@hostile(max_examples=80)
def test_create_item_with_hostile_user_metadata(catalog: InProcessCatalog, dataset_id: str,
                                                user: dict[str, Any]) -> None:
    name = uuid.uuid4().hex
    request = api.CreateItemRequest(dataset_id=dataset_id, dir="/m", name=name, size=3,
                                    sha256=sha256_of(name),
                                    blob_key=f"items/{dataset_id}/{uuid.uuid4().hex}")
    fill_struct(request.user_metadata, user)
    before = catalog.count_rows(dataset_id)
    answer = attempt(lambda: catalog.stub.CreateItem(request, timeout=30))
    if not answer.ok:
        assert catalog.count_rows(dataset_id) == before, "a refused CreateItem wrote rows"
    else:
        item = answer.response.item
        assert struct_to_dict(item.metadata.user) == struct_to_dict(request.user_metadata)
        _readable_everywhere(catalog, dataset_id, item)
    assert_serving(catalog.channel, lambda: _probe(catalog, dataset_id))


@given(depth=st.integers(1, 60), lists=st.booleans(), batch=st.booleans())
@example(depth=20, lists=False, batch=False).via("the catalog's limit")
@example(depth=21, lists=False, batch=True).via("one past it")
@example(depth=32, lists=False, batch=False).via("the deepest CreateItemRequest decodes")
@example(depth=33, lists=False, batch=True).via("one past it")
@example(depth=48, lists=True, batch=False).via("lists nest cheaper on the wire")
@hostile(max_examples=30)
def test_deep_metadata_is_refused_or_readable_everywhere(
        catalog: InProcessCatalog, dataset_id: str, depth: int, lists: bool,
        batch: bool) -> None:
    """Metadata the catalog stores must come back in every message that carries the item
    (the CreateItem and BatchCreateItems replies, GetItem, ListItems, events): protobuf
    decoders give up past 100 nested messages, so stored-but-unreadable metadata would break
    the listing of its folder and every subscriber of the event stream."""
    user = nested(depth, "leaf", "k", lists)
    if not isinstance(user, dict):
        user = {"top": user}
    name = uuid.uuid4().hex
    batch_request = api.BatchCreateItemsRequest()
    request = batch_request.requests.add()  # filled in place: copies refuse deep messages
    request.MergeFrom(api.CreateItemRequest(
        dataset_id=dataset_id, dir="/deep", name=name, size=3, sha256=sha256_of(name),
        blob_key=f"items/{dataset_id}/{uuid.uuid4().hex}"))
    fill_struct(request.user_metadata, user)
    before = catalog.count_rows(dataset_id)
    if batch:
        answer = attempt(lambda: catalog.stub.BatchCreateItems(batch_request, timeout=30))
        result = answer.response.results[0] if answer.ok else None
        if result is not None and result.HasField("error"):
            assert_clean_row_error(result.error.code, result.error.message)
            answer = Answer(error=result.error)  # type: ignore[arg-type]
        elif result is not None:
            answer = Answer(response=result.created)
    else:
        answer = attempt(lambda: catalog.stub.CreateItem(request, timeout=30))
    if not answer.ok:
        assert catalog.count_rows(dataset_id) == before
    else:
        item = answer.response.item
        assert struct_to_dict(item.metadata.user) == user
        _readable_everywhere(catalog, dataset_id, item)
        _items, count = catalog.count_rows(dataset_id)
        events = take_events(catalog.stub, api.SubscribeRequest(dataset_id=dataset_id), count,
                             timeout=30)
        assert len(events) == count and events[-1].item == item
    assert_serving(catalog.channel, lambda: _probe(catalog, dataset_id))


@given(base=st.dictionaries(ODD_KEYS, JSON, max_size=5), patch=OBJECTS,
       merge=st.booleans())
@hostile(max_examples=50)
def test_update_item_with_hostile_metadata(catalog: InProcessCatalog, dataset_id: str,
                                           base: dict[str, Any], patch: dict[str, Any],
                                           merge: bool) -> None:
    stub = catalog.stub
    created = attempt(lambda: _new_item(catalog, dataset_id, base))
    if not created.ok:  # NaN, NUL, ... in the base: refused like any other hostile value
        return
    original = created.response
    request = api.UpdateItemRequest(update_mask=field_mask_pb2.FieldMask(
        paths=["metadata.user.*" if merge else "metadata.user"]))
    request.item.id = original.id
    fill_struct(request.item.metadata.user, patch)
    before = catalog.count_rows(dataset_id)
    answer = attempt(lambda: stub.UpdateItem(request, timeout=30))
    now = _read(catalog, original.id)
    if not answer.ok:
        assert now == original, "a refused UpdateItem changed the item"
        assert catalog.count_rows(dataset_id) == before, "a refused UpdateItem wrote rows"
    else:
        sent = struct_to_dict(request.item.metadata.user)
        old = struct_to_dict(original.metadata.user)
        expected = merge_patch(old, sent) if merge else sent
        assert struct_to_dict(now.metadata.user) == expected
        assert now == answer.response.item
        _readable_everywhere(catalog, dataset_id, now)
    assert_serving(catalog.channel, lambda: _probe(catalog, dataset_id))


@given(patch=OBJECTS, merge=st.booleans())
@hostile(max_examples=30)
def test_update_matching_items_with_hostile_metadata(
        catalog: InProcessCatalog, dataset_id: str, patch: dict[str, Any],
        merge: bool) -> None:
    original = _new_item(catalog, dataset_id, {"keep": 1})
    request = api.UpdateMatchingItemsRequest(dataset_id=dataset_id, update_mask=(
        field_mask_pb2.FieldMask(paths=["metadata.user.*" if merge else "metadata.user"])))
    request.filter.condition.field = "name"
    request.filter.condition.operator = filters_pb2.FILTER_OPERATOR_EQ
    request.filter.condition.value.string_value = original.name
    fill_struct(request.user_metadata, patch)
    before = catalog.count_rows(dataset_id)
    answer = attempt(lambda: catalog.stub.UpdateMatchingItems(request, timeout=30))
    now = _read(catalog, original.id)
    if not answer.ok:
        assert now == original
        assert catalog.count_rows(dataset_id) == before
    else:
        assert answer.response.updated_items == 1
        sent = struct_to_dict(request.user_metadata)
        assert struct_to_dict(now.metadata.user) == (merge_patch({"keep": 1}, sent) if merge
                                                     else sent)
        _readable_everywhere(catalog, dataset_id, now)
    assert_serving(catalog.channel, lambda: _probe(catalog, dataset_id))


@given(system=OBJECTS)
@hostile(max_examples=30)
def test_update_system_metadata_with_hostile_values(catalog: InProcessCatalog,
                                                    dataset_id: str,
                                                    system: dict[str, Any]) -> None:
    original = _new_item(catalog, dataset_id)
    request = api.UpdateSystemMetadataRequest(item_id=original.id)
    fill_struct(request.system, system)
    answer = attempt(lambda: catalog.stub.UpdateSystemMetadata(request, timeout=30))
    now = _read(catalog, original.id)
    if not answer.ok:
        assert now == original
    else:
        assert struct_to_dict(now.metadata.system) == {
            **struct_to_dict(original.metadata.system), **struct_to_dict(request.system)}
        _readable_everywhere(catalog, dataset_id, now)
    assert_serving(catalog.channel, lambda: _probe(catalog, dataset_id))


BAD_UTF8 = [b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0", b"\x80\x80"]  # stray, overlong, surrogate


@given(bad=st.sampled_from(BAD_UTF8), where=st.sampled_from(
    ["dataset.name", "item.name", "item.dir", "item.metadata.key", "item.metadata.value",
     "get.filename", "list.dir", "update.name", "deep.struct"]))
@hostile(max_examples=30)
def test_requests_that_do_not_decode(catalog: InProcessCatalog, dataset_id: str, bad: bytes,
                                     where: str) -> None:
    """Invalid UTF-8 in a string field and nesting past protobuf's limit: INVALID_ARGUMENT,
    never UNKNOWN, and nothing written."""
    mark = "\x01\x02"  # two bytes of UTF-8, swapped for two bytes that are not UTF-8
    name = uuid.uuid4().hex
    item = api.CreateItemRequest(dataset_id=dataset_id, dir="/raw", name=name, size=3,
                                 sha256=sha256_of(name),
                                 blob_key=f"items/{dataset_id}/{uuid.uuid4().hex}")
    existing = _new_item(catalog, dataset_id)
    method, message, response = "CreateItem", item, api.CreateItemResponse
    if where == "dataset.name":
        method, message = "CreateDataset", api.CreateDatasetRequest(name=f"ds{mark}")
        response = api.CreateDatasetResponse
    elif where == "item.name":
        item.name = f"x{mark}"
    elif where == "item.dir":
        item.dir = f"/d{mark}"
    elif where == "item.metadata.key":
        item.user_metadata.fields[f"k{mark}"].number_value = 1
    elif where == "item.metadata.value":
        item.user_metadata.fields["k"].string_value = f"v{mark}"
    elif where == "get.filename":
        method, response = "GetItem", api.GetItemResponse
        message = api.GetItemRequest(dataset_id=dataset_id, filename=f"/a{mark}")
    elif where == "list.dir":
        method, response = "ListItems", api.ListItemsResponse
        message = api.ListItemsRequest(dataset_id=dataset_id, dir=f"/a{mark}")
    elif where == "update.name":
        method, response = "UpdateItem", api.UpdateItemResponse
        message = api.UpdateItemRequest(
            item=resources_pb2.Item(id=existing.id, name=f"n{mark}"),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]))
    if where == "deep.struct":
        fill_struct(item.user_metadata, nested(60))
        payload = item.SerializeToString()
    else:
        payload = with_invalid_utf8(message, mark, bad)
    before = catalog.count_rows(dataset_id)
    answer = attempt(raw_unary(catalog.channel, CATALOG + method, payload, response))
    assert answer.code.name == "INVALID_ARGUMENT"
    assert catalog.count_rows(dataset_id) == before
    assert _read(catalog, existing.id) == existing
    assert_serving(catalog.channel, lambda: _probe(catalog, dataset_id))


def test_every_event_of_the_module_still_decodes(catalog: InProcessCatalog,
                                                 dataset_id: str) -> None:
    """Nothing the examples stored can poison the event stream: every item event of the
    dataset reaches a subscriber (one undecodable event would stop every subscriber)."""
    _items, events = catalog.count_rows(dataset_id)
    received = take_events(catalog.stub, api.SubscribeRequest(dataset_id=dataset_id), events,
                           timeout=60)
    assert len(received) == events


@pytest.fixture(scope="module")
def trigger(catalog: InProcessCatalog) -> str:
    name = f"hostile_{uuid.uuid4().hex[:8]}"
    catalog.stub.CreateTrigger(tpb.CreateTriggerRequest(trigger=tpb.Trigger(
        name=name, actions=[resources_pb2.EVENT_TYPE_CREATED])), timeout=30)
    return name


@given(status=st.sampled_from(["success", "failed", "", "SUCCESS", "\x00"]),
       attempts=st.sampled_from([1, 0, -1, 2**31 - 1]),
       duration=st.sampled_from([0, -1, 2**63 - 1]),
       error=st.one_of(st.sampled_from(["", "boom\x00", "\x00" * 10, "x" * 100_000,
                                        "\u202e\ud7ff"]), JSON.map(str)),
       seconds=st.sampled_from([None, 0, -62135596800, 253402300799, 253402300800, 2**62,
                                -(2**62)]),
       system=st.one_of(st.none(), OBJECTS))
@example(status="success", attempts=1, duration=0, error="", seconds=None,
         system=nested(32)).via("results sit one level below metadata.system")
@hostile(max_examples=40)
def test_complete_trigger_run_with_hostile_records(
        catalog: InProcessCatalog, dataset_id: str, trigger: str, status: str, attempts: int,
        duration: int, error: str, seconds: int | None, system: dict[str, Any] | None) -> None:
    """A worker's run record and results (metadata.system.<trigger>) are hostile input too:
    the exception text of a user's function can hold anything."""
    original = _new_item(catalog, dataset_id)
    request = tpb.CompleteTriggerRunRequest(trigger=trigger, item_id=original.id)
    request.run.status, request.run.attempts = status, attempts
    request.run.duration_ms, request.run.error = duration, error
    if seconds is not None:
        request.run.finish_time.seconds = seconds
    if system is not None:
        fill_struct(request.system, system)
    answer = attempt(lambda: catalog.stub.CompleteTriggerRun(request, timeout=30))
    now = _read(catalog, original.id)
    if not answer.ok:
        assert now == original
    else:
        logs = struct_to_dict(now.metadata.system)["executionLogs"][trigger]
        assert logs["status"] == status and "\x00" not in logs["error"]
        _readable_everywhere(catalog, dataset_id, now)
    assert_serving(catalog.channel, lambda: _probe(catalog, dataset_id))
