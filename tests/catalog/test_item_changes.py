"""UpdateItem (update_mask), DeleteItem (folders recursively) and UpdateSystemMetadata."""

from __future__ import annotations

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from corral.structs import dict_to_struct, struct_to_dict
from tests.catalog.conftest import create_item, expect_error, new_dataset

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def update(stub, item: res.Item, *paths: str) -> res.Item:
    return stub.UpdateItem(api.UpdateItemRequest(item=item, update_mask=FieldMask(
        paths=list(paths)))).item


def test_update_applies_only_masked_fields(catalog, stub):
    dataset = new_dataset(stub)
    item = create_item(stub, dataset.id, "/a", "x.jpg", description="old",
                       user_metadata={"k": 1}).item
    change = res.Item(id=item.id, name="ignored.jpg", description="new",
                      metadata=res.ItemMetadata(user=dict_to_struct({"k": 2, "z": [1]})))
    updated = update(stub, change, "description", "metadata.user")
    assert updated.name == "x.jpg" and updated.description == "new"
    assert struct_to_dict(updated.metadata.user) == {"k": 2, "z": [1]}
    assert updated.update_time != item.update_time and updated.create_time == item.create_time
    assert stub.GetItem(api.GetItemRequest(item_id=item.id)).item == updated
    assert catalog.count_rows(dataset.id) == (2, 2)


def test_rename_and_move_create_ancestors(stub):
    dataset = new_dataset(stub)
    item = create_item(stub, dataset.id, "/a", "x.jpg").item
    renamed = update(stub, res.Item(id=item.id, name="y.jpg"), "name")
    assert (renamed.dir, renamed.filename) == ("/a", "/a/y.jpg")
    moved = update(stub, res.Item(id=item.id, dir="new/deep"), "dir")
    assert (moved.dir, moved.name, moved.filename) == ("/new/deep", "y.jpg", "/new/deep/y.jpg")
    folder = stub.GetItem(api.GetItemRequest(dataset_id=dataset.id, filename="/new/deep")).item
    assert folder.type == res.ITEM_TYPE_DIR
    both = update(stub, res.Item(id=item.id, dir="/", name="z.jpg"), "dir", "name")
    assert both.filename == "/z.jpg" and both.id == item.id


def test_update_errors_write_nothing(catalog, stub):
    dataset = new_dataset(stub)
    item = create_item(stub, dataset.id, "/a", "x.jpg").item
    create_item(stub, dataset.id, "/a", "taken.jpg")
    folder = stub.GetItem(api.GetItemRequest(dataset_id=dataset.id, filename="/a")).item
    before = catalog.count_rows(dataset.id)

    expect_error(INVALID, lambda: update(stub, res.Item(id=item.id)), "update_mask")
    expect_error(INVALID, lambda: update(stub, res.Item(id=item.id), "size"), "'size'")
    expect_error(INVALID, lambda: update(stub, res.Item(id=item.id), "metadata.system"),
                 "metadata.system")
    expect_error(INVALID, lambda: update(stub, res.Item(id=item.id, name="a/b"), "name"),
                 "item.name")
    expect_error(INVALID, lambda: update(stub, res.Item(id=item.id, name=""), "name"),
                 "item.name")
    expect_error(INVALID, lambda: update(stub, res.Item(id=item.id, dir="/.."), "dir"),
                 "item.dir")
    expect_error(INVALID, lambda: update(stub, res.Item(name="x"), "name"), "item.id")
    expect_error(grpc.StatusCode.NOT_FOUND,
                 lambda: update(stub, res.Item(id="b" * 32, name="x"), "name"), "b" * 32)
    expect_error(grpc.StatusCode.ALREADY_EXISTS,
                 lambda: update(stub, res.Item(id=item.id, name="taken.jpg"), "name"),
                 "/a/taken.jpg")
    expect_error(grpc.StatusCode.ALREADY_EXISTS,
                 lambda: update(stub, res.Item(id=item.id, dir="/", name="a"), "dir", "name"),
                 "/a")
    expect_error(grpc.StatusCode.FAILED_PRECONDITION,
                 lambda: update(stub, res.Item(id=folder.id, name="b"), "name"),
                 "moving folders is not supported yet")
    expect_error(grpc.StatusCode.FAILED_PRECONDITION,
                 lambda: update(stub, res.Item(id=item.id, dir="/a/taken.jpg"), "dir"),
                 "/a/taken.jpg")
    assert catalog.count_rows(dataset.id) == before
    # A folder's description is not a move.
    described = update(stub, res.Item(id=folder.id, name="a", description="d"), "name",
                       "description")
    assert described.description == "d"


def test_delete_folder_deletes_everything_below(catalog, stub):
    dataset = new_dataset(stub)
    keep = create_item(stub, dataset.id, "/a0", "keep.jpg").item
    doomed = [create_item(stub, dataset.id, d, "f.jpg").item for d in ("/a", "/a/b", "/a/b/c")]
    folder = stub.GetItem(api.GetItemRequest(dataset_id=dataset.id, filename="/a")).item
    catalog.blobs.deleted.clear()

    reply = stub.DeleteItem(api.DeleteItemRequest(item_id=folder.id))
    assert reply.deleted_items == 3
    assert sorted(catalog.blobs.deleted) == sorted(i.blob_key for i in doomed)
    remaining = stub.ListItems(api.ListItemsRequest(dataset_id=dataset.id, recursive=True))
    assert [i.filename for i in remaining.items] == ["/a0", "/a0/keep.jpg"]
    assert stub.GetItem(api.GetItemRequest(item_id=keep.id)).item == keep
    expect_error(grpc.StatusCode.NOT_FOUND,
                 lambda: stub.DeleteItem(api.DeleteItemRequest(item_id=folder.id)))
    # 4 created + 3 deleted (folders have no events)
    assert catalog.count_rows(dataset.id) == (2, 7)


def test_delete_file_keeps_a_blob_another_item_still_uses(catalog, stub):
    dataset = new_dataset(stub)
    shared = f"items/{dataset.id}/shared"
    first = create_item(stub, dataset.id, "/", "one.jpg", blob_key=shared).item
    create_item(stub, dataset.id, "/", "two.jpg", blob_key=shared)
    catalog.blobs.deleted.clear()
    assert stub.DeleteItem(api.DeleteItemRequest(item_id=first.id)).deleted_items == 1
    assert catalog.blobs.deleted == []


def test_system_metadata_merges_top_level_keys_without_event(catalog, stub):
    dataset = new_dataset(stub)
    item = create_item(stub, dataset.id, "/", "p.jpg", user_metadata={"mine": True}).item

    def set_system(values: dict, expected: str = "") -> res.Item:
        return stub.UpdateSystemMetadata(api.UpdateSystemMetadataRequest(
            item_id=item.id, system=dict_to_struct(values), expected_blob_key=expected)).item

    set_system({"mimetype": "image/jpeg", "thumbnail": {"key": "thumbnails/t1.jpg"}})
    merged = set_system({"width": 640, "thumbnail": {"key": "thumbnails/t2.jpg"}},
                        expected=item.blob_key)
    assert struct_to_dict(merged.metadata.system) == {
        "mimetype": "image/jpeg", "width": 640, "thumbnail": {"key": "thumbnails/t2.jpg"}}
    assert struct_to_dict(merged.metadata.user) == {"mine": True}
    assert "thumbnails/t1.jpg" in catalog.blobs.deleted  # the replaced thumbnail
    assert catalog.count_rows(dataset.id) == (1, 1)  # only the CREATED event

    expect_error(grpc.StatusCode.FAILED_PRECONDITION,
                 lambda: set_system({"width": 1}, expected="items/other"), "items/other")
    assert struct_to_dict(stub.GetItem(api.GetItemRequest(
        item_id=item.id)).item.metadata.system)["width"] == 640
    expect_error(grpc.StatusCode.NOT_FOUND, lambda: stub.UpdateSystemMetadata(
        api.UpdateSystemMetadataRequest(item_id="c" * 32)))
    expect_error(INVALID, lambda: stub.UpdateSystemMetadata(
        api.UpdateSystemMetadataRequest(item_id="bad")), "item_id")
