"""CreateItem, GetItem and ListItems over gRPC: folders, paging, duplicates, request ids, and
invalid input refused with nothing written."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from corral.structs import dict_to_struct, struct_to_dict
from tests.catalog.conftest import create_item, expect_error, new_dataset, sha256_of

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def list_all(stub, dataset_id: str, dir: str = "/", recursive: bool = False,
             page_size: int = 0) -> list[res.Item]:
    found, token = [], ""
    while True:
        reply = stub.ListItems(api.ListItemsRequest(dataset_id=dataset_id, dir=dir,
                                                    recursive=recursive, page_size=page_size,
                                                    page_token=token))
        found += reply.items
        token = reply.next_page_token
        if not token:
            return found


def test_create_returns_the_item_with_implicit_folders(stub):
    dataset = new_dataset(stub)
    reply = create_item(stub, dataset.id, "a//b/", "cat.jpg", size=10, description="a cat",
                        user_metadata={"camera": 3, "tags": ["x"]})
    item = reply.item
    assert reply.outcome == res.CREATE_OUTCOME_CREATED and not reply.released_blob_keys
    assert (item.dir, item.name, item.filename) == ("/a/b", "cat.jpg", "/a/b/cat.jpg")
    assert item.type == res.ITEM_TYPE_FILE and item.size == 10 and item.description == "a cat"
    assert struct_to_dict(item.metadata.user) == {"camera": 3, "tags": ["x"]}
    assert struct_to_dict(item.metadata.system) == {}
    assert item.create_time == item.update_time
    folders = [i for i in list_all(stub, dataset.id, recursive=True)
               if i.type == res.ITEM_TYPE_DIR]
    assert [(f.dir, f.name, f.filename) for f in folders] == [("/", "a", "/a"),
                                                              ("/a", "b", "/a/b")]
    assert stub.GetItem(api.GetItemRequest(item_id=item.id)).item == item
    by_name = stub.GetItem(api.GetItemRequest(dataset_id=dataset.id, filename="a/b/cat.jpg"))
    assert by_name.item == item


def test_list_non_recursive_shows_direct_children_only(stub):
    dataset = new_dataset(stub)
    create_item(stub, dataset.id, "/", "top.jpg")
    create_item(stub, dataset.id, "/a", "mid.jpg")
    create_item(stub, dataset.id, "/a/b", "deep.jpg")
    create_item(stub, dataset.id, "/a0", "sibling.jpg")  # sorts right after "/a/" prefix
    assert [i.filename for i in list_all(stub, dataset.id)] == ["/a", "/a0", "/top.jpg"]
    assert [i.filename for i in list_all(stub, dataset.id, "/a")] == ["/a/b", "/a/mid.jpg"]
    assert [i.filename for i in list_all(stub, dataset.id, "/a", recursive=True)] == [
        "/a/b", "/a/b/deep.jpg", "/a/mid.jpg"]
    assert [i.filename for i in list_all(stub, dataset.id, recursive=True)] == [
        "/a", "/a/b", "/a/b/deep.jpg", "/a/mid.jpg", "/a0", "/a0/sibling.jpg", "/top.jpg"]


def test_list_pagination_across_pages(stub):
    dataset = new_dataset(stub)
    names = [f"f{i:03d}.bin" for i in range(25)]
    for name in names:
        create_item(stub, dataset.id, "/many", name)
    first = stub.ListItems(api.ListItemsRequest(dataset_id=dataset.id, dir="/many", page_size=10))
    assert len(first.items) == 10 and first.next_page_token
    for recursive in (False, True):
        listed = list_all(stub, dataset.id, "/many", recursive=recursive, page_size=10)
        assert [i.name for i in listed] == names
    exact = stub.ListItems(api.ListItemsRequest(dataset_id=dataset.id, dir="/many",
                                                page_size=25))
    assert len(exact.items) == 25 and exact.next_page_token == ""


def test_list_errors(stub):
    dataset = new_dataset(stub)
    create_item(stub, dataset.id, "/a", "file.jpg")

    def listing(**fields):
        return lambda: stub.ListItems(api.ListItemsRequest(dataset_id=dataset.id, **fields))

    expect_error(INVALID, listing(page_size=-5), "page_size")
    expect_error(INVALID, listing(page_token="not a token!"), "page_token")
    expect_error(INVALID, listing(page_token="eHl6"), "page_token")  # base64 of "xyz"
    expect_error(INVALID, listing(dir="/a/../etc"), "dir")
    expect_error(INVALID, listing(dir="/a/file.jpg"), "not a folder")
    expect_error(grpc.StatusCode.NOT_FOUND, listing(dir="/missing"), "/missing")
    expect_error(grpc.StatusCode.NOT_FOUND,
                 lambda: stub.ListItems(api.ListItemsRequest(dataset_id="f" * 32)))


def test_page_size_is_capped(stub):
    dataset = new_dataset(stub)
    create_item(stub, dataset.id, "/", "only.jpg")
    reply = stub.ListItems(api.ListItemsRequest(dataset_id=dataset.id, page_size=5000))
    assert len(reply.items) == 1 and not reply.next_page_token


def test_duplicate_policies(catalog, stub):
    dataset = new_dataset(stub)
    first = create_item(stub, dataset.id, "/d", "x.jpg", user_metadata={"v": 1}).item
    catalog.blobs.deleted.clear()

    skipped = create_item(stub, dataset.id, "/d", "x.jpg", user_metadata={"v": 2})
    assert skipped.outcome == res.CREATE_OUTCOME_SKIPPED and skipped.item == first
    also_skipped = create_item(stub, dataset.id, "/d", "x.jpg",
                               duplicate_policy=res.DUPLICATE_POLICY_SKIP)
    assert also_skipped.outcome == res.CREATE_OUTCOME_SKIPPED

    expect_error(grpc.StatusCode.ALREADY_EXISTS, lambda: create_item(
        stub, dataset.id, "/d", "x.jpg", duplicate_policy=res.DUPLICATE_POLICY_FAIL), "/d/x.jpg")

    thumb = {"thumbnail": {"key": f"thumbnails/{first.id}/t.jpg"}, "width": 4}
    stub.UpdateSystemMetadata(api.UpdateSystemMetadataRequest(
        item_id=first.id, system=dict_to_struct(thumb)))

    new_key = f"items/{dataset.id}/{uuid.uuid4().hex}"
    overwritten = create_item(stub, dataset.id, "/d", "x.jpg", blob_key=new_key, size=99,
                              sha256=sha256_of("new"), description="v2", user_metadata={"v": 3},
                              duplicate_policy=res.DUPLICATE_POLICY_OVERWRITE)
    item = overwritten.item
    assert overwritten.outcome == res.CREATE_OUTCOME_OVERWRITTEN
    assert item.id == first.id and item.blob_key == new_key and item.size == 99
    assert item.description == "v2" and struct_to_dict(item.metadata.user) == {"v": 3}
    assert struct_to_dict(item.metadata.system) == {}
    assert item.create_time == first.create_time and item.update_time != first.update_time
    assert list(overwritten.released_blob_keys) == [first.blob_key, thumb["thumbnail"]["key"]]
    assert catalog.blobs.deleted == [first.blob_key, thumb["thumbnail"]["key"]]
    items_written, events_written = catalog.count_rows(dataset.id)
    assert (items_written, events_written) == (2, 2)  # folder + file; created twice


def test_folder_at_the_filename_or_a_file_as_folder_is_refused(catalog, stub):
    dataset = new_dataset(stub)
    create_item(stub, dataset.id, "/a/b", "x.jpg")
    for policy in (res.DUPLICATE_POLICY_SKIP, res.DUPLICATE_POLICY_OVERWRITE):
        expect_error(grpc.StatusCode.ALREADY_EXISTS, lambda policy=policy: create_item(
            stub, dataset.id, "/a", "b", duplicate_policy=policy), "folder")
    expect_error(grpc.StatusCode.FAILED_PRECONDITION,
                 lambda: create_item(stub, dataset.id, "/a/b/x.jpg/c", "y.jpg"), "/a/b/x.jpg")
    assert catalog.count_rows(dataset.id) == (3, 1)


def test_request_id_retry_returns_the_first_result(catalog, stub):
    dataset = new_dataset(stub)
    request_id = uuid.uuid4().hex
    first = create_item(stub, dataset.id, "/r", "a.jpg", request_id=request_id)
    retry = create_item(stub, dataset.id, "/r", "a.jpg", request_id=request_id,
                        duplicate_policy=res.DUPLICATE_POLICY_FAIL)
    assert retry.outcome == res.CREATE_OUTCOME_CREATED and retry.item == first.item
    # Even a retry carrying a different blob (re-uploaded) gets the first item, not a new one.
    other_path = create_item(stub, dataset.id, "/r", "b.jpg", request_id=request_id)
    assert other_path.item.id == first.item.id

    overwrite_id = uuid.uuid4().hex
    overwrite = create_item(stub, dataset.id, "/r", "a.jpg", request_id=overwrite_id,
                            duplicate_policy=res.DUPLICATE_POLICY_OVERWRITE)
    again = create_item(stub, dataset.id, "/r", "a.jpg", request_id=overwrite_id,
                        duplicate_policy=res.DUPLICATE_POLICY_OVERWRITE)
    assert overwrite.outcome == again.outcome == res.CREATE_OUTCOME_OVERWRITTEN
    assert again.item == overwrite.item
    assert catalog.count_rows(dataset.id) == (2, 2)


BAD_REQUESTS = [
    ({"name": ""}, INVALID, "name"),
    ({"name": "a/b"}, INVALID, "name"),
    ({"name": ".."}, INVALID, "name"),
    ({"dir": "/a/../b"}, INVALID, "dir"),
    ({"dir": "/a\\b"}, INVALID, "dir"),
    ({"size": -1}, INVALID, "size"),
    ({"sha256": "ABC"}, INVALID, "sha256"),
    ({"sha256": "A" * 64}, INVALID, "sha256"),
    ({"blob_key": ""}, INVALID, "blob_key"),
    ({"type": res.ITEM_TYPE_LINK}, INVALID, "must be empty for a link item"),
    ({"type": res.ITEM_TYPE_DIR}, INVALID, "folders are created from the paths"),
    ({"name": "x" * 256}, INVALID, "name"),
    ({"dir": "/" + "/".join(["é" * 200] * 2), "name": "é" * 120}, INVALID, "bytes"),
    ({"description": "nul\x00inside"}, INVALID, "description"),
    ({"user_metadata": {"x": float("nan")}}, INVALID, "user_metadata"),
    ({"user_metadata": {"x": ["nul\x00"]}}, INVALID, "user_metadata"),
    ({"request_id": "r" * 129}, INVALID, "request_id"),
]


@pytest.mark.parametrize(("fields", "code", "words"), BAD_REQUESTS)
def test_invalid_create_writes_nothing(catalog, stub, fields, code, words):
    dataset = new_dataset(stub)
    args = {"dir": "/x/y", "name": "ok.jpg", **fields}
    expect_error(code, lambda: create_item(stub, dataset.id, args.pop("dir"), args.pop("name"),
                                           **args), words)
    assert catalog.count_rows(dataset.id) == (0, 0)


def test_create_in_unknown_dataset(stub):
    expect_error(grpc.StatusCode.NOT_FOUND, lambda: create_item(stub, "e" * 32, "/", "x.jpg"),
                 "e" * 32)
    expect_error(INVALID, lambda: create_item(stub, "E" * 32, "/", "x.jpg"), "dataset_id")


def test_get_item_errors(stub):
    dataset = new_dataset(stub)
    expect_error(INVALID, lambda: stub.GetItem(api.GetItemRequest()), "item_id")
    expect_error(INVALID, lambda: stub.GetItem(api.GetItemRequest(item_id="x")), "item_id")
    expect_error(INVALID, lambda: stub.GetItem(api.GetItemRequest(dataset_id=dataset.id)),
                 "filename")
    expect_error(INVALID, lambda: stub.GetItem(api.GetItemRequest(
        dataset_id=dataset.id, filename="/")), "filename")
    expect_error(grpc.StatusCode.NOT_FOUND,
                 lambda: stub.GetItem(api.GetItemRequest(item_id="a" * 32)), "a" * 32)
    expect_error(grpc.StatusCode.NOT_FOUND, lambda: stub.GetItem(api.GetItemRequest(
        dataset_id=dataset.id, filename="/nope.jpg")), "/nope.jpg")


def test_concurrent_creates_race_safely(catalog, stub):
    dataset = new_dataset(stub)

    def same_file(n: int) -> api.CreateItemResponse:
        return create_item(stub, dataset.id, "/race/deep", "same.jpg")

    def new_files(n: int) -> api.CreateItemResponse:
        return create_item(stub, dataset.id, f"/tree/{n % 3}", f"{n}.jpg")

    with ThreadPoolExecutor(8) as pool:
        same = list(pool.map(same_file, range(8)))
        distinct = list(pool.map(new_files, range(24)))
    outcomes = sorted(r.outcome for r in same)
    assert outcomes == [res.CREATE_OUTCOME_CREATED] + [res.CREATE_OUTCOME_SKIPPED] * 7
    assert len({r.item.id for r in same}) == 1
    assert all(r.outcome == res.CREATE_OUTCOME_CREATED for r in distinct)
    listed = list_all(stub, dataset.id, recursive=True)
    assert len(listed) == 2 + 1 + 1 + 3 + 24  # race, race/deep, same.jpg, tree + 3, files
    assert catalog.count_rows(dataset.id)[1] == 25
