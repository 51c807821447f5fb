"""Concurrent hot writes share transactions (group commit); each call still succeeds or fails
on its own, and nothing of a failed call is written."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from corral.structs import dict_to_struct
from tests.catalog.conftest import create_item, new_dataset


def _outcome(call):
    try:
        return call()
    except grpc.RpcError as exc:
        return exc.code()


def test_concurrent_creates_fail_alone(catalog, stub):
    dataset = new_dataset(stub)
    create_item(stub, dataset.id, "/d", "taken.jpg")
    create_item(stub, dataset.id, "/", "file")  # a file where the next calls want a folder

    def call(i: int):
        if i % 10 == 3:  # the name exists and the policy says fail
            return _outcome(lambda: create_item(
                stub, dataset.id, "/d", "taken.jpg", duplicate_policy=res.DUPLICATE_POLICY_FAIL))
        if i % 10 == 7:  # its folder would be a file
            return _outcome(lambda: create_item(stub, dataset.id, "/file", f"x{i}.jpg"))
        return _outcome(lambda: create_item(stub, dataset.id, "/d/e", f"f{i}.jpg"))

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(80)))
    assert [r for i, r in enumerate(results) if i % 10 == 3] == \
        [grpc.StatusCode.ALREADY_EXISTS] * 8
    assert [r for i, r in enumerate(results) if i % 10 == 7] == \
        [grpc.StatusCode.FAILED_PRECONDITION] * 8
    created = [r for i, r in enumerate(results) if i % 10 not in (3, 7)]
    assert all(r.outcome == res.CREATE_OUTCOME_CREATED for r in created)
    # 2 + 64 files, folders /d and /d/e; one event per file, none for the failed calls.
    assert catalog.count_rows(dataset.id) == (2 + 64 + 2, 2 + 64)


def test_concurrent_system_metadata_updates_fail_alone(stub):
    dataset = new_dataset(stub)
    created = [create_item(stub, dataset.id, "/", f"i{i}.jpg").item for i in range(40)]

    def update(i: int):
        item = created[i]
        expected = "items/other" if i % 4 == 1 else item.blob_key
        return _outcome(lambda: stub.UpdateSystemMetadata(api.UpdateSystemMetadataRequest(
            item_id=item.id, system=dict_to_struct({"width": i}), expected_blob_key=expected),
            timeout=10))

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(update, range(40)))
    for i, result in enumerate(results):
        stored = stub.GetItem(api.GetItemRequest(item_id=created[i].id)).item.metadata.system
        if i % 4 == 1:
            assert result == grpc.StatusCode.FAILED_PRECONDITION
            assert "width" not in stored
        else:
            assert result.item.metadata.system["width"] == i
            assert stored["width"] == i
