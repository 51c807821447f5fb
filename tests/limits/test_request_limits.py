"""Limits on what a request may hold, enforced on every path that writes it: metadata size and
nesting depth, name and path length. INVALID_ARGUMENT names the field and the setting; the
upload service refuses before it stores a byte."""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from upload.conftest import Stack

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import resources_pb2
from corral.client.filters import to_filter
from corral.structs import dict_to_struct, struct_to_dict
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from limits.conftest import LimitedStack, held_open, stored_files

SETTINGS = {"CORRAL_CATALOG_MAX_METADATA_BYTES": "2048",
            "CORRAL_CATALOG_MAX_METADATA_DEPTH": "5",
            "CORRAL_MAX_NAME_LENGTH": "20",
            "CORRAL_MAX_PATH_LENGTH": "60"}
TOO_DEEP = "nested 6 levels deep; the limit is 5 (CORRAL_CATALOG_MAX_METADATA_DEPTH)"
TOO_BIG = "larger than the limit of 2048 bytes (CORRAL_CATALOG_MAX_METADATA_BYTES)"
NAME_TOO_LONG = "the limit is 20 characters per name (CORRAL_MAX_NAME_LENGTH)"
PATH_TOO_LONG = "the limit is 60 bytes (CORRAL_MAX_PATH_LENGTH)"


def nested(levels: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def blob_fields(name: str) -> dict[str, Any]:
    return {"size": 3, "sha256": hashlib.sha256(name.encode()).hexdigest(),
            "blob_key": f"items/x/{uuid.uuid4().hex}"}


def create_request(dataset_id: str, name: str, dir: str = "/",
                   metadata: dict[str, Any] | None = None) -> catalog_pb2.CreateItemRequest:
    return catalog_pb2.CreateItemRequest(
        dataset_id=dataset_id, dir=dir, name=name, user_metadata=dict_to_struct(metadata),
        **blob_fields(name))


def refused(call, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=30, **kwargs)
    return caught.value


def assert_invalid(error: grpc.RpcError, *words: str) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    for text in words:
        assert text in error.details(), error.details()


def update_user(stack: Stack, item_id: str, metadata: dict[str, Any], mask: str,
                timeout: float = 30) -> resources_pb2.Item:
    change = resources_pb2.Item(id=item_id,
                                metadata=resources_pb2.ItemMetadata(user=dict_to_struct(metadata)))
    return stack.catalogs.UpdateItem(catalog_pb2.UpdateItemRequest(
        item=change, update_mask=FieldMask(paths=[mask])), timeout=timeout).item


def get_user(stack: Stack, item_id: str) -> dict[str, Any]:
    reply = stack.catalogs.GetItem(catalog_pb2.GetItemRequest(item_id=item_id), timeout=30)
    return struct_to_dict(reply.item.metadata.user)


def upload_refused_at_spec(stack: Stack, spec: upload_pb2.UploadSpec) -> grpc.RpcError:
    """The upload's error while the client still holds the stream open after the first
    message: refused at the spec, with nothing stored."""
    release = threading.Event()
    first = upload_pb2.UploadItemRequest(spec=spec, data=b"some bytes")
    try:
        stack.uploads.UploadItem(held_open([first], release), timeout=60)
    except grpc.RpcError as exc:
        return exc
    finally:
        release.set()
    raise AssertionError("the upload succeeded")


@pytest.fixture
def stack(limited_stack: LimitedStack) -> Stack:
    return limited_stack(env=SETTINGS)


def test_metadata_limits_on_every_catalog_write(stack: Stack) -> None:
    catalogs = stack.catalogs
    dataset_id = stack.create_dataset()
    big = {"blob": "x" * 2100}
    deep = create_request(dataset_id, "a", metadata=nested(6))
    assert_invalid(refused(catalogs.CreateItem, deep), f"user_metadata is {TOO_DEEP}")
    assert_invalid(refused(catalogs.CreateItem, create_request(dataset_id, "a", metadata=big)),
                   "user_metadata is 2", TOO_BIG)

    batch = catalogs.BatchCreateItems(catalog_pb2.BatchCreateItemsRequest(requests=[
        create_request(dataset_id, "deep", metadata=nested(6)),
        create_request(dataset_id, "ok", metadata=nested(5))]), timeout=30).results
    assert batch[0].error.code == "INVALID_ARGUMENT" and TOO_DEEP in batch[0].error.message
    item = batch[1].created.item
    assert get_user(stack, item.id) == nested(5)

    # Replace, and a merge patch whose result is too large (each part alone fits).
    assert_invalid(refused(update_user, stack, item.id, nested(6), "metadata.user"),
                   f"item.metadata.user is {TOO_DEEP}")
    update_user(stack, item.id, {"one": "x" * 1000}, "metadata.user")
    assert_invalid(refused(update_user, stack, item.id, {"two": "y" * 1000, "three": "z" * 100},
                           "metadata.user.*"), TOO_BIG)
    assert get_user(stack, item.id) == {"one": "x" * 1000}

    matching = catalog_pb2.UpdateMatchingItemsRequest(
        dataset_id=dataset_id, filter=to_filter("name=ok").to_proto(),
        user_metadata=dict_to_struct({"two": "y" * 1100}), update_mask=FieldMask(
            paths=["metadata.user.*"]))
    assert_invalid(refused(catalogs.UpdateMatchingItems, matching), "metadata.user of /ok",
                   TOO_BIG)
    assert get_user(stack, item.id) == {"one": "x" * 1000}

    clone = catalog_pb2.CloneItemRequest(item_id=item.id, name="clone",
                                         user_metadata=dict_to_struct(nested(6)))
    assert_invalid(refused(catalogs.CloneItem, clone), f"user_metadata is {TOO_DEEP}")
    assert sorted(i.name for i in stack.items(dataset_id)) == ["ok"]


def test_the_upload_service_refuses_metadata_before_storing(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    deep = upload_pb2.UploadSpec(dataset_id=dataset_id, name="deep.bin",
                                 user_metadata=dict_to_struct(nested(6)))
    assert_invalid(upload_refused_at_spec(stack, deep), f"spec.user_metadata is {TOO_DEEP}")
    big = upload_pb2.UploadSpec(dataset_id=dataset_id, name="big.bin",
                                user_metadata=dict_to_struct({"blob": "x" * 2100}))
    assert_invalid(upload_refused_at_spec(stack, big), "spec.user_metadata is", TOO_BIG)
    with pytest.raises(grpc.RpcError) as caught:
        stack.uploads.StartResumableUpload(
            upload_pb2.StartResumableUploadRequest(spec=deep), timeout=30)
    assert_invalid(caught.value, TOO_DEEP)
    assert stack.items(dataset_id) == [] and stored_files(stack) == []

    csv = (b"ID,URL,item_metadata\n"
           b'deep.jpg,https://example.com/a.jpg,"{""a"": {""a"": {""a"": {""a"": {""a"": '
           b'{""a"": 1}}}}}}"\n'
           b'fine.jpg,https://example.com/b.jpg,"{""a"": 1}"\n')
    spec = upload_pb2.ImportCsvSpec(dataset_id=dataset_id, csv_name="batch.csv")
    responses = list(stack.uploads.ImportCsv(
        iter([upload_pb2.ImportCsvRequest(spec=spec, data=csv)]), timeout=60))
    rows = {r.row.id: r.row for r in responses if r.HasField("row")}
    assert rows["deep.jpg"].error.code == "INVALID_ARGUMENT"
    assert f"item_metadata is {TOO_DEEP}" in rows["deep.jpg"].error.message
    assert rows["fine.jpg"].item.name == "fine.jpg"


def test_name_and_path_limits_everywhere(stack: Stack) -> None:
    catalogs, uploads = stack.catalogs, stack.uploads
    assert_invalid(refused(catalogs.CreateDataset, catalog_pb2.CreateDatasetRequest(
        name="d" * 21)), "name is 21 characters long; the limit is 20 characters per dataset "
        "name (CORRAL_MAX_NAME_LENGTH)")
    dataset_id = stack.create_dataset()
    long_name, wide_dir = "n" * 21, "/" + "\u00fc" * 15  # 15 characters, 31 bytes
    assert_invalid(refused(catalogs.CreateItem, create_request(dataset_id, long_name)),
                   "name is 21 characters long", NAME_TOO_LONG)
    # 32 characters, but 62 bytes in UTF-8: the path limit counts bytes.
    assert_invalid(refused(catalogs.CreateItem, create_request(dataset_id, "\u00e9" * 15,
                                                               dir=wide_dir)),
                   "full path is 62 bytes long", PATH_TOO_LONG)
    item = catalogs.CreateItem(create_request(dataset_id, "short.bin"), timeout=30).item
    moved = resources_pb2.Item(id=item.id, dir=wide_dir + "/" + "a" * 20)
    assert_invalid(refused(catalogs.UpdateItem, catalog_pb2.UpdateItemRequest(
        item=moved, update_mask=FieldMask(paths=["dir"]))),
        "item.dir + item.name: the item's full path is 62 bytes long", PATH_TOO_LONG)
    assert_invalid(refused(catalogs.ListItems, catalog_pb2.ListItemsRequest(
        dataset_id=dataset_id, dir="/" + "x" * 20 + "/" + "y" * 20 + "/" + "z" * 20)),
        "dir is 63 bytes long", PATH_TOO_LONG)

    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name=long_name)
    assert_invalid(upload_refused_at_spec(stack, spec), "spec.name is 21", NAME_TOO_LONG)
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, remote_dir=wide_dir,
                                 name="\u00e9" * 15)
    assert_invalid(upload_refused_at_spec(stack, spec), "spec.remote_dir/spec.name is 62 bytes",
                   PATH_TOO_LONG)

    content = base64.b64encode(b"data").decode()
    csv = (f"ID,image_bytes\n{long_name},{content}\n{'p' * 20},{content}\n"
           f"ok.bin,{content}\n").encode()
    import_spec = upload_pb2.ImportCsvSpec(dataset_id=dataset_id, csv_name="imports.csv",
                                           remote_dir="/" + "r" * 20)
    responses = list(uploads.ImportCsv(
        iter([upload_pb2.ImportCsvRequest(spec=import_spec, data=csv)]), timeout=60))
    rows = {r.row.id: r.row for r in responses if r.HasField("row")}
    assert NAME_TOO_LONG in rows[long_name].error.message
    # /rrr.../imports/ppp...: 21 + 8 + 21 = 50 bytes fits; the full path does too.
    assert rows["p" * 20].item.name == "p" * 20
    assert rows["ok.bin"].item.name == "ok.bin"
    deeper = upload_pb2.ImportCsvSpec(dataset_id=dataset_id, csv_name="imports.csv",
                                      remote_dir="/" + "r" * 20 + "/" + "s" * 20)
    responses = list(uploads.ImportCsv(
        iter([upload_pb2.ImportCsvRequest(spec=deeper, data=csv)]), timeout=60))
    rows = {r.row.id: r.row for r in responses if r.HasField("row")}
    assert PATH_TOO_LONG in rows["p" * 20].error.message, rows["p" * 20].error.message
    assert rows["ok.bin"].item.filename == "/" + "r" * 20 + "/" + "s" * 20 + "/imports/ok.bin"
    assert not [f for f in stored_files(stack) if f.startswith(".tmp")]


def length_delimited(field: int, payload: bytes) -> bytes:
    size, out = len(payload), bytearray([field << 3 | 2])
    while size > 0x7F:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    return bytes(out) + bytes([size]) + payload


def nested_struct_bytes(levels: int) -> bytes:
    """A google.protobuf.Struct nesting {"a": ...} `levels` deep, encoded by hand: a client
    in another language can send what Python's protobuf refuses to build."""
    struct = length_delimited(1, length_delimited(1, b"a") + length_delimited(2, b"\x08\x00"))
    for _ in range(levels - 1):
        value = length_delimited(5, struct)  # Value.struct_value
        struct = length_delimited(1, length_delimited(1, b"a") + length_delimited(2, value))
    return struct


def test_default_depth_and_protobufs_recursion_limit(limited_stack: LimitedStack) -> None:
    """32 levels (the default) are stored and read back; 33 still parse and are refused by the
    limit; 40 exceed protobuf's recursion limit and are INVALID_ARGUMENT, not UNKNOWN."""
    stack = limited_stack()
    dataset_id = stack.create_dataset()
    item = stack.catalogs.CreateItem(create_request(dataset_id, "deepest", metadata=nested(32)),
                                     timeout=30).item
    assert get_user(stack, item.id) == nested(32)
    assert_invalid(refused(stack.catalogs.CreateItem,
                           create_request(dataset_id, "deeper", metadata=nested(33))),
                   "user_metadata is nested 33 levels deep; the limit is 32 "
                   "(CORRAL_CATALOG_MAX_METADATA_DEPTH)")

    too_deep = nested_struct_bytes(40)
    request = (length_delimited(1, dataset_id.encode()) + length_delimited(3, b"x")
               + length_delimited(9, too_deep))
    create = stack.channels[1].unary_unary("/corral.catalog.v1.CatalogService/CreateItem")
    assert_invalid(refused(create, request), "CreateItem request nests messages deeper than "
                   "protobuf's recursion limit of 100")
    spec = length_delimited(1, dataset_id.encode()) + length_delimited(3, b"x") \
        + length_delimited(4, too_deep)
    upload = stack.channels[0].stream_unary("/corral.upload.v1.UploadService/UploadItem")
    assert_invalid(refused(upload, iter([length_delimited(2, spec) + b"\x28\x01"])),
                   "UploadItem request nests messages deeper than protobuf's recursion limit")
    assert [i.name for i in stack.items(dataset_id)] == ["deepest"]
    assert [f for f in stored_files(stack) if not f.startswith("items/")] == []
