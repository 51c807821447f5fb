"""User metadata updates over gRPC on both databases: RFC 7386 merge patch or full replace by
update_mask, metadata.system read-only, and bulk updates of every item matching a filter."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from corral.client.filters import field, to_filter
from corral.structs import dict_to_struct, struct_to_dict
from services.catalog.metadata import merge_patch
from tests.catalog.conftest import create_item, expect_error, new_dataset, take_events

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def update_user(stub, item_id: str, metadata: dict, *paths: str) -> res.Item:
    change = res.Item(id=item_id, metadata=res.ItemMetadata(user=dict_to_struct(metadata)))
    return stub.UpdateItem(api.UpdateItemRequest(item=change,
                                                 update_mask=FieldMask(paths=list(paths)))).item


def user_of(item: res.Item) -> dict:
    return struct_to_dict(item.metadata.user)


@pytest.mark.parametrize(("target", "patch", "result"), [
    # The examples of RFC 7386, appendix A.
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_merge_patch_follows_rfc_7386(target, patch, result):
    assert merge_patch(target, patch) == result


def test_update_item_merges_or_replaces_by_mask(catalog, stub):
    dataset = new_dataset(stub)
    item = create_item(stub, dataset.id, "/", "x.jpg", user_metadata={
        "camera": 3, "area": {"zone": "n", "row": 2}, "drop": True}).item
    merged = update_user(stub, item.id, {"area": {"row": 5, "lane": "b"}, "drop": None,
                                         "lot": "L-1"}, "metadata.user.*")
    assert user_of(merged) == {"camera": 3, "area": {"zone": "n", "row": 5, "lane": "b"},
                               "lot": "L-1"}
    replaced = update_user(stub, item.id, {"only": 1}, "metadata.user")
    assert user_of(replaced) == {"only": 1}
    assert struct_to_dict(replaced.metadata.system) == {}
    events = take_events(stub, api.SubscribeRequest(
        dataset_id=dataset.id, event_types=[res.EVENT_TYPE_UPDATED]), 2)
    assert [user_of(e.item) for e in events] == [user_of(merged), {"only": 1}]


@pytest.mark.parametrize("paths", [
    ["metadata.system"], ["metadata.system.mimetype"], ["metadata"], ["metadata.*"],
    ["metadata.user", "metadata.system"],
])
def test_system_metadata_is_read_only(stub, paths):
    dataset = new_dataset(stub)
    item = create_item(stub, dataset.id, "/", "x.jpg").item
    stub.UpdateSystemMetadata(api.UpdateSystemMetadataRequest(
        item_id=item.id, system=dict_to_struct({"mimetype": "image/jpeg"})))
    expect_error(INVALID, lambda: update_user(stub, item.id, {"a": 1}, *paths),
                 "metadata.system is read-only")
    bulk = api.UpdateMatchingItemsRequest(
        dataset_id=dataset.id, filter=to_filter("size>=0").to_proto(),
        user_metadata=dict_to_struct({"a": 1}), update_mask=FieldMask(paths=paths))
    expect_error(INVALID, lambda: stub.UpdateMatchingItems(bulk), "metadata.system is read-only")
    after = stub.GetItem(api.GetItemRequest(item_id=item.id)).item
    assert struct_to_dict(after.metadata.system) == {"mimetype": "image/jpeg"}
    assert user_of(after) == {}


def test_update_mask_errors(stub):
    dataset = new_dataset(stub)
    item = create_item(stub, dataset.id, "/", "x.jpg").item
    expect_error(INVALID, lambda: update_user(stub, item.id, {}, "metadata.user",
                                              "metadata.user.*"), "not both")
    expect_error(INVALID, lambda: update_user(stub, item.id, {}, "metadata.user.camera"),
                 "'metadata.user.camera' is not one of")
    huge = {"blob": "x" * (1024 * 1024)}
    expect_error(INVALID, lambda: update_user(stub, item.id, huge, "metadata.user.*"),
                 "larger than")


def bulk_update(stub, dataset_id: str, spec, metadata: dict, mask: str = "metadata.user.*"
                ) -> int:
    return stub.UpdateMatchingItems(api.UpdateMatchingItemsRequest(
        dataset_id=dataset_id, filter=to_filter(spec).to_proto(),
        user_metadata=dict_to_struct(metadata), update_mask=FieldMask(paths=[mask]))
    ).updated_items


def test_update_matching_items_counts_patches_and_events(catalog, stub):
    dataset = new_dataset(stub)
    for i in range(12):
        create_item(stub, dataset.id, f"/d{i % 2}", f"f{i:02d}.jpg", size=i,
                    user_metadata={"camera": i % 3, "keep": i, "nested": {"a": 1}})
    updated = bulk_update(stub, dataset.id, "metadata.user.camera=1",
                          {"camera": 9, "nested": {"b": 2}, "keep": None})
    assert updated == 4
    changed = [i for i in _items(stub, dataset.id) if i.type == res.ITEM_TYPE_FILE
               and user_of(i).get("camera") == 9]
    assert sorted(i.name for i in changed) == ["f01.jpg", "f04.jpg", "f07.jpg", "f10.jpg"]
    assert all(user_of(i) == {"camera": 9, "nested": {"a": 1, "b": 2}} for i in changed)
    events = take_events(stub, api.SubscribeRequest(
        dataset_id=dataset.id, event_types=[res.EVENT_TYPE_UPDATED]), 4)
    assert sorted(e.item.name for e in events) == ["f01.jpg", "f04.jpg", "f07.jpg", "f10.jpg"]
    assert {e.item.update_time.ToNanoseconds() for e in events} == {
        i.update_time.ToNanoseconds() for i in changed}
    assert catalog.count_rows(dataset.id) == (14, 16)  # 12 files + 2 folders; 12 + 4 events

    assert bulk_update(stub, dataset.id, "dir=/d0", {"folder": "zero"},
                       mask="metadata.user") == 6
    zero = [i for i in _items(stub, dataset.id) if i.dir == "/d0"]
    assert all(user_of(i) == {"folder": "zero"} for i in zero)
    assert bulk_update(stub, dataset.id, "metadata.user.camera=12345", {"x": 1}) == 0


def test_update_matching_items_visits_each_match_once(stub, monkeypatch):
    """The update changes whether items match; batches walk ids, so each is done once."""
    from services.catalog import queries

    dataset = new_dataset(stub)
    for i in range(7):
        create_item(stub, dataset.id, "/", f"f{i}", user_metadata={"n": 0})
    monkeypatch.setattr(queries, "UPDATE_BATCH", 2)  # the in-process server shares the module
    request = api.UpdateMatchingItemsRequest(
        dataset_id=dataset.id, filter=(field("metadata.user.n") < 5).to_proto(),
        user_metadata=dict_to_struct({"n": 1}), update_mask=FieldMask(paths=["metadata.user"]))
    assert stub.UpdateMatchingItems(request).updated_items == 7
    assert {user_of(i)["n"] for i in _items(stub, dataset.id)} == {1}


def test_update_matching_items_errors(stub):
    dataset = new_dataset(stub)
    create_item(stub, dataset.id, "/", "x.jpg")
    no_filter = api.UpdateMatchingItemsRequest(
        dataset_id=dataset.id, user_metadata=dict_to_struct({"a": 1}),
        update_mask=FieldMask(paths=["metadata.user.*"]))
    expect_error(INVALID, lambda: stub.UpdateMatchingItems(no_filter), "filter is required")
    for paths in ([], ["description"], ["metadata.user.*", "name"]):
        request = api.UpdateMatchingItemsRequest(
            dataset_id=dataset.id, filter=to_filter("size>=0").to_proto(),
            update_mask=FieldMask(paths=paths))
        expect_error(INVALID, lambda r=request: stub.UpdateMatchingItems(r), "update_mask")
    bad = api.UpdateMatchingItemsRequest(
        dataset_id=dataset.id, filter=to_filter("colour=red").to_proto(),
        update_mask=FieldMask(paths=["metadata.user.*"]))
    expect_error(INVALID, lambda: stub.UpdateMatchingItems(bad), "unknown field 'colour'")
    missing = api.UpdateMatchingItemsRequest(
        dataset_id="0" * 32, filter=to_filter("size>=0").to_proto(),
        update_mask=FieldMask(paths=["metadata.user.*"]))
    expect_error(grpc.StatusCode.NOT_FOUND, lambda: stub.UpdateMatchingItems(missing))


def _items(stub, dataset_id: str) -> list[res.Item]:
    return list(stub.ListItems(api.ListItemsRequest(dataset_id=dataset_id, recursive=True,
                                                    page_size=1000)).items)
