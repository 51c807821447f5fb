"""Link items, clones that share blobs, batches of creates, and lookups by request_id, over
gRPC on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import grpc

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from corral.structs import dict_to_struct, struct_to_dict
from tests.catalog.conftest import create_item, expect_error, new_dataset, sha256_of

INVALID = grpc.StatusCode.INVALID_ARGUMENT
URL = "https://images.example.com/cats/a.jpg"


def link_request(dataset_id: str, name: str, url: str = URL, mimetype: str = "image/jpeg",
                 **fields) -> api.CreateItemRequest:
    return api.CreateItemRequest(dataset_id=dataset_id, dir=fields.pop("dir", "/links"),
                                 name=name, type=res.ITEM_TYPE_LINK,
                                 link=res.LinkInfo(url=url, mimetype=mimetype), **fields)


def test_link_item_is_stored_without_a_binary_and_listed_with_its_reference(stub, catalog):
    dataset = new_dataset(stub)
    reply = stub.CreateItem(link_request(dataset.id, "a.jpg", mimetype="Image"))
    item = reply.item
    assert reply.outcome == res.CREATE_OUTCOME_CREATED
    assert item.type == res.ITEM_TYPE_LINK and item.filename == "/links/a.jpg"
    assert (item.link.url, item.link.mimetype) == (URL, "image")
    assert (item.size, item.sha256, item.blob_key) == (0, "", "")
    listed = stub.ListItems(api.ListItemsRequest(dataset_id=dataset.id, dir="/links")).items
    assert [(i.type, i.link.url) for i in listed] == [(res.ITEM_TYPE_LINK, URL)]
    event = next(iter(stub.Subscribe(api.SubscribeRequest(dataset_id=dataset.id),
                                     timeout=5))).event
    assert event.type == res.EVENT_TYPE_CREATED and event.item.link.url == URL
    # a file item never carries a link
    assert not create_item(stub, dataset.id, "/", "f.jpg").item.HasField("link")


def test_bad_links_are_refused_with_nothing_written(stub, catalog):
    dataset = new_dataset(stub)
    cases = [
        (link_request(dataset.id, "x", url="file:///etc/passwd"), "link.url"),
        (link_request(dataset.id, "x", url="http://user@example.com/a.jpg"), "link.url"),
        (link_request(dataset.id, "x", url=""), "link.url"),
        (link_request(dataset.id, "x", mimetype="not a type"), "link.mimetype"),
        (link_request(dataset.id, "x", size=5), "must be empty for a link"),
        (link_request(dataset.id, "../x"), "name"),
        (api.CreateItemRequest(dataset_id=dataset.id, name="f", size=1, sha256=sha256_of("f"),
                               blob_key="items/x", link=res.LinkInfo(url=URL)), "link"),
        (api.CreateItemRequest(dataset_id=dataset.id, name="d", type=res.ITEM_TYPE_DIR),
         "type"),
    ]
    for request, field in cases:
        expect_error(INVALID, lambda r=request: stub.CreateItem(r), field)
    assert catalog.count_rows(dataset.id) == (0, 0)


def test_clone_shares_the_blob_and_survives_deletion_of_the_original(stub, catalog):
    source_ds, target_ds = new_dataset(stub), new_dataset(stub)
    original = create_item(stub, source_ds.id, "/in", "cat.jpg",
                           user_metadata={"camera": 1}).item
    stub.UpdateSystemMetadata(api.UpdateSystemMetadataRequest(
        item_id=original.id, system=dict_to_struct(
            {"width": 4, "thumbnail": {"key": "thumbnails/ab/t1.jpg"},
             "executionLogs": {"preprocess": {"status": "success",
                                              "blobKey": original.blob_key}}})))
    clone = stub.CloneItem(api.CloneItemRequest(item_id=original.id, dataset_id=target_ds.id,
                                                dir="/copies")).item
    assert clone.id != original.id and clone.dataset_id == target_ds.id
    assert clone.filename == "/copies/cat.jpg"
    assert (clone.blob_key, clone.sha256, clone.size) == (
        original.blob_key, original.sha256, original.size)
    system = struct_to_dict(clone.metadata.system)
    assert system["width"] == 4 and system["thumbnail"]["key"] == "thumbnails/ab/t1.jpg"
    assert system["clonedFrom"] == {"itemId": original.id, "datasetId": source_ds.id}
    assert struct_to_dict(clone.metadata.user) == {"camera": 1}

    # the clone's user metadata is its own
    stub.UpdateItem(api.UpdateItemRequest(
        item=res.Item(id=clone.id, metadata=res.ItemMetadata(user=dict_to_struct({"c": 2}))),
        update_mask={"paths": ["metadata.user"]}))
    assert struct_to_dict(stub.GetItem(api.GetItemRequest(item_id=original.id))
                          .item.metadata.user) == {"camera": 1}

    before = len(catalog.blobs.deleted)
    stub.DeleteItem(api.DeleteItemRequest(item_id=original.id))
    assert catalog.blobs.deleted[before:] == []  # the clone still uses blob and thumbnail
    assert stub.GetItem(api.GetItemRequest(item_id=clone.id)).item.blob_key == clone.blob_key
    stub.DeleteItem(api.DeleteItemRequest(item_id=clone.id))
    assert sorted(catalog.blobs.deleted[before:]) == sorted(
        [clone.blob_key, "thumbnails/ab/t1.jpg"])


def test_clone_in_the_same_dataset_with_own_metadata_and_policies(stub, catalog):
    dataset = new_dataset(stub)
    original = create_item(stub, dataset.id, "/", "a.jpg", user_metadata={"k": 1}).item
    clone = stub.CloneItem(api.CloneItemRequest(
        item_id=original.id, dir="/b", name="a2.jpg", user_metadata=dict_to_struct({}),
        request_id="clone-1"))
    assert clone.outcome == res.CREATE_OUTCOME_CREATED
    assert clone.item.filename == "/b/a2.jpg" and struct_to_dict(clone.item.metadata.user) == {}
    again = stub.CloneItem(api.CloneItemRequest(item_id=original.id, dir="/b", name="a2.jpg",
                                                request_id="clone-1"))
    assert again.item.id == clone.item.id
    skipped = stub.CloneItem(api.CloneItemRequest(item_id=original.id, dir="/b",
                                                  name="a2.jpg"))
    assert skipped.outcome == res.CREATE_OUTCOME_SKIPPED and skipped.item.id == clone.item.id
    expect_error(grpc.StatusCode.ALREADY_EXISTS, lambda: stub.CloneItem(api.CloneItemRequest(
        item_id=original.id, dir="/b", name="a2.jpg",
        duplicate_policy=res.DUPLICATE_POLICY_FAIL)), "/b/a2.jpg")
    folder = stub.GetItem(api.GetItemRequest(dataset_id=dataset.id, filename="/b")).item
    expect_error(grpc.StatusCode.FAILED_PRECONDITION,
                 lambda: stub.CloneItem(api.CloneItemRequest(item_id=folder.id)), "folder")
    expect_error(grpc.StatusCode.NOT_FOUND,
                 lambda: stub.CloneItem(api.CloneItemRequest(item_id=uuid.uuid4().hex)))
    expect_error(grpc.StatusCode.NOT_FOUND, lambda: stub.CloneItem(api.CloneItemRequest(
        item_id=original.id, dataset_id=uuid.uuid4().hex)))
    expect_error(INVALID, lambda: stub.CloneItem(api.CloneItemRequest(
        item_id=original.id, name="../x")), "name")
    # overwriting the source with new content keeps the clone's binary alive
    before = len(catalog.blobs.deleted)
    create_item(stub, dataset.id, "/", "a.jpg", duplicate_policy=res.DUPLICATE_POLICY_OVERWRITE)
    assert catalog.blobs.deleted[before:] == []


def test_clone_of_a_link_is_a_link(stub):
    dataset = new_dataset(stub)
    link = stub.CreateItem(link_request(dataset.id, "l.jpg")).item
    clone = stub.CloneItem(api.CloneItemRequest(item_id=link.id, dir="/other")).item
    assert clone.type == res.ITEM_TYPE_LINK and clone.link == link.link


def test_batch_create_reports_each_entry_on_its_own(stub, catalog):
    dataset = new_dataset(stub)
    requests = [link_request(dataset.id, f"{i}.jpg", request_id=f"row-{i}") for i in range(50)]
    requests[7] = link_request(dataset.id, "bad", url="gopher://x/")
    requests[9] = link_request(uuid.uuid4().hex, "missing-dataset.jpg")
    reply = stub.BatchCreateItems(api.BatchCreateItemsRequest(requests=requests))
    assert len(reply.results) == 50
    errors = {i: r.error for i, r in enumerate(reply.results) if r.HasField("error")}
    assert sorted(errors) == [7, 9]
    assert errors[7].code == "INVALID_ARGUMENT" and "requests[7]: link.url" in errors[7].message
    assert errors[9].code == "NOT_FOUND"
    created = [r.created for r in reply.results if r.HasField("created")]
    assert all(c.outcome == res.CREATE_OUTCOME_CREATED and not c.replayed for c in created)
    assert catalog.count_rows(dataset.id) == (49, 48)  # + the /links folder; 48 events

    again = stub.BatchCreateItems(api.BatchCreateItemsRequest(requests=requests[:3]))
    assert all(r.created.replayed for r in again.results)
    assert [r.created.item.id for r in again.results] == [c.item.id for c in created[:3]]
    found = stub.GetItem(api.GetItemRequest(dataset_id=dataset.id, request_id="row-2")).item
    assert found.id == created[2].item.id
    expect_error(grpc.StatusCode.NOT_FOUND, lambda: stub.GetItem(api.GetItemRequest(
        dataset_id=dataset.id, request_id="row-7")), "row-7")
    too_many = [link_request(dataset.id, f"{i}") for i in range(1001)]
    expect_error(INVALID, lambda: stub.BatchCreateItems(
        api.BatchCreateItemsRequest(requests=too_many)), "1000")
