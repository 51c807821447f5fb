"""Datasets over gRPC: create, get, list, delete, and their validation codes."""

from __future__ import annotations

import uuid

import grpc

from corral.catalog.v1 import catalog_service_pb2 as api
from tests.catalog.conftest import create_item, expect_error, new_dataset

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def test_create_and_get_by_id_and_name(stub):
    name = f"cats-{uuid.uuid4().hex[:8]}"
    created = stub.CreateDataset(api.CreateDatasetRequest(name=name, description="pets")).dataset
    assert len(created.id) == 32 and created.name == name and created.project == "default"
    assert created.description == "pets" and created.create_time.seconds > 0
    by_id = stub.GetDataset(api.GetDatasetRequest(dataset_id=created.id)).dataset
    by_name = stub.GetDataset(api.GetDatasetRequest(name=name)).dataset
    assert by_id == by_name == created


def test_item_count_counts_files_not_folders(stub):
    dataset = new_dataset(stub)
    create_item(stub, dataset.id, "/a/b", "one.jpg")
    create_item(stub, dataset.id, "/a", "two.jpg")
    got = stub.GetDataset(api.GetDatasetRequest(dataset_id=dataset.id)).dataset
    assert got.item_count == 2


def test_duplicate_name_is_already_exists(stub):
    dataset = new_dataset(stub)
    expect_error(grpc.StatusCode.ALREADY_EXISTS,
                 lambda: stub.CreateDataset(api.CreateDatasetRequest(name=dataset.name)),
                 dataset.name)


def test_request_id_returns_the_first_result(stub):
    name, request_id = f"idem-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    first = stub.CreateDataset(api.CreateDatasetRequest(name=name, request_id=request_id))
    again = stub.CreateDataset(api.CreateDatasetRequest(name=name, request_id=request_id))
    assert first.dataset == again.dataset


def test_invalid_names(stub):
    for bad, words in [("", "name"), ("a/b", "'/'"), ("x" * 129, "128"), ("tab\there", "control"),
                       ("   ", "name")]:
        expect_error(INVALID, lambda bad=bad: stub.CreateDataset(api.CreateDatasetRequest(
            name=bad)), words)


def test_get_needs_exactly_one_key(stub):
    expect_error(INVALID, lambda: stub.GetDataset(api.GetDatasetRequest()), "exactly one")
    expect_error(INVALID, lambda: stub.GetDataset(
        api.GetDatasetRequest(dataset_id="0" * 32, name="x")), "exactly one")
    expect_error(INVALID, lambda: stub.GetDataset(api.GetDatasetRequest(dataset_id="nope")),
                 "dataset_id")
    expect_error(grpc.StatusCode.NOT_FOUND,
                 lambda: stub.GetDataset(api.GetDatasetRequest(dataset_id="0" * 32)), "0" * 32)
    expect_error(grpc.StatusCode.NOT_FOUND,
                 lambda: stub.GetDataset(api.GetDatasetRequest(name="no-such-dataset")))


def test_list_pages_through_every_dataset_in_name_order(stub):
    prefix = f"list-{uuid.uuid4().hex[:6]}"
    names = sorted(new_dataset(stub, prefix).name for _ in range(5))
    seen, token, pages = [], "", 0
    while True:
        reply = stub.ListDatasets(api.ListDatasetsRequest(page_size=2, page_token=token))
        assert len(reply.datasets) <= 2
        seen += [d.name for d in reply.datasets]
        pages += 1
        token = reply.next_page_token
        if not token:
            break
    assert [n for n in seen if n.startswith(prefix)] == names
    assert seen == sorted(seen) and len(seen) == len(set(seen)) and pages >= 3


def test_list_validates_paging(stub):
    expect_error(INVALID, lambda: stub.ListDatasets(api.ListDatasetsRequest(page_size=-1)),
                 "page_size")
    expect_error(INVALID, lambda: stub.ListDatasets(api.ListDatasetsRequest(page_token="%%%")),
                 "page_token")


def test_delete_removes_items_writes_events_and_releases_blobs(catalog, stub):
    dataset = new_dataset(stub)
    first = create_item(stub, dataset.id, "/a", "one.jpg").item
    second = create_item(stub, dataset.id, "/a/b", "two.jpg").item
    reply = stub.DeleteDataset(api.DeleteDatasetRequest(dataset_id=dataset.id))
    assert reply.deleted_items == 2
    assert {first.blob_key, second.blob_key} <= set(catalog.blobs.deleted)
    expect_error(grpc.StatusCode.NOT_FOUND,
                 lambda: stub.GetDataset(api.GetDatasetRequest(dataset_id=dataset.id)))
    expect_error(grpc.StatusCode.NOT_FOUND,
                 lambda: stub.GetItem(api.GetItemRequest(item_id=first.id)))
    items_left, events_written = catalog.count_rows(dataset.id)
    assert items_left == 0 and events_written == 4  # two created, two deleted
    expect_error(grpc.StatusCode.NOT_FOUND,
                 lambda: stub.DeleteDataset(api.DeleteDatasetRequest(dataset_id=dataset.id)))
