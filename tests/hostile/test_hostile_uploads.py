"""Hostile uploads through the real services (child processes, fs blob store): UploadItem
specs with hostile names, folders, metadata and declarations; uploaded link files
(Dataloop's JSON format) with hostile JSON and URLs; and requests that do not decode. A
refused upload leaves no item and no blob; an accepted one reads back and downloads as sent.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import resources_pb2
from corral.structs import struct_to_dict
from corral.upload.v1 import upload_service_pb2 as upload_pb2

from .checks import (
    assert_clean_error,
    assert_clean_row_error,
    assert_serving,
    attempt,
    raw_stream,
    with_invalid_utf8,
)
from .conftest import HostileStack, hostile
from .strategies import JSON, MIMETYPES, NAMES, OBJECTS, PATHS, URLS, fill_struct, nested

pytestmark = pytest.mark.timeout(300)
UPLOAD = "/corral.upload.v1.UploadService/"
LINK = resources_pb2.ITEM_TYPE_LINK


@pytest.fixture(scope="module")
def dataset_id(hostile_stack: HostileStack) -> Iterator[str]:
    yield hostile_stack.new_dataset("uploads")


def _items(stack: HostileStack, dataset_id: str) -> dict[str, resources_pb2.Item]:
    """Every file and link item of the dataset, by id."""
    found: dict[str, resources_pb2.Item] = {}
    request = catalog_pb2.ListItemsRequest(dataset_id=dataset_id, recursive=True,
                                           page_size=1000)
    while True:
        reply = stack.services.catalogs.ListItems(request, timeout=30)
        found.update({item.id: item for item in reply.items
                      if item.type != resources_pb2.ITEM_TYPE_DIR})
        if not reply.next_page_token:
            return found
        request.page_token = reply.next_page_token


def _state(stack: HostileStack, dataset_id: str) -> tuple[set[str], set[str]]:
    return set(_items(stack, dataset_id)), stack.blob_keys(dataset_id)


def _probe(stack: HostileStack, dataset_id: str) -> None:
    """An ordinary upload still works."""
    data = b"still fine"
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, remote_dir="/probe",
                                 name=f"{uuid.uuid4().hex}.txt")
    reply = stack.services.uploads.UploadItem(iter([upload_pb2.UploadItemRequest(
        spec=spec, data=data, finish_write=True)]), timeout=60)
    assert reply.item.size == len(data)


def _healthy(stack: HostileStack, dataset_id: str) -> None:
    upload_channel, catalog_channel = stack.services.channels
    assert_serving(catalog_channel, lambda: _items(stack, dataset_id))
    assert_serving(upload_channel, lambda: _probe(stack, dataset_id))


def _downloaded(stack: HostileStack, item_id: str) -> bytes:
    replies = stack.services.uploads.Download(upload_pb2.DownloadRequest(item_id=item_id),
                                              timeout=60)
    return b"".join(reply.data for reply in replies)


def _check_accepted_file(stack: HostileStack, dataset_id: str, item: resources_pb2.Item,
                         data: bytes) -> None:
    catalogs = stack.services.catalogs
    assert catalogs.GetItem(catalog_pb2.GetItemRequest(item_id=item.id), timeout=30).item.id \
        == item.id
    found = catalogs.GetItem(catalog_pb2.GetItemRequest(dataset_id=dataset_id,
                                                        filename=item.filename), timeout=30)
    assert found.item.id == item.id
    assert item.size == len(data) and item.sha256 == hashlib.sha256(data).hexdigest()
    assert item.blob_key in stack.blob_keys(dataset_id)
    assert _downloaded(stack, item.id) == data


SPEC_FIELDS = st.fixed_dictionaries({}, optional={
    "dataset_id": st.sampled_from(["", "x", "../../etc", "a" * 200, "\u00e9", "ds/x"]),
    "remote_dir": PATHS,
    "name": NAMES,
    "description": st.one_of(NAMES, st.just("d\x00"), st.just("x" * 70_000)),
    "size": st.sampled_from([-1, 0, 3, 2**62]),
    "sha256": st.sampled_from(["", "0" * 64, "Z" * 64, "abc", "A" * 64]),
    "duplicate_policy": st.sampled_from([0, 1, 2, 3, 4, 99, -5]),
    "request_id": st.one_of(NAMES, st.just("r" * 200)),
    "user_metadata": OBJECTS,
})


def fill_spec(spec: upload_pb2.UploadSpec, dataset_id: str, fields: dict[str, Any]) -> None:
    """Fills `spec` in place (copies refuse deep messages) with a fresh name and the
    generated fields."""
    spec.dataset_id, spec.name = dataset_id, f"{uuid.uuid4().hex}.bin"
    for key, value in fields.items():
        if key == "user_metadata":
            fill_struct(spec.user_metadata, value)
        elif key == "request_id":  # unique: a reused request_id replays an earlier upload
            spec.request_id = uuid.uuid4().hex[:8] + value
        else:
            setattr(spec, key, value)


@given(fields=SPEC_FIELDS, data=st.binary(max_size=64), declare=st.booleans())
@hostile(max_examples=50)
def test_upload_with_a_hostile_spec(hostile_stack: HostileStack, dataset_id: str,
                                    fields: dict[str, Any], data: bytes,
                                    declare: bool) -> None:
    stack = hostile_stack
    message = upload_pb2.UploadItemRequest(data=data, finish_write=True)
    spec = message.spec  # filled in place: copies refuse deep messages
    fill_spec(spec, dataset_id, fields)
    if declare:
        spec.sha256 = hashlib.sha256(data).hexdigest()
    before = _state(stack, dataset_id)
    answer = attempt(lambda: stack.services.uploads.UploadItem(iter([message]), timeout=60),
                     *fields.values())
    if not answer.ok:
        assert _state(stack, dataset_id) == before, "a refused upload left an item or a blob"
    elif answer.response.outcome == resources_pb2.CREATE_OUTCOME_CREATED:
        item = answer.response.item
        _check_accepted_file(stack, dataset_id, item, data)
        assert struct_to_dict(item.metadata.user) == struct_to_dict(spec.user_metadata)
    _healthy(stack, dataset_id)


def _link_document(shebang: Any, url: Any, mimetype: Any, extra: dict[str, Any],
                   dltype: Any, ref_type: Any) -> dict[str, Any]:
    return {"type": "link", "shebang": shebang, **extra,
            "metadata": {"dltype": dltype, "linkInfo": {
                "type": ref_type, "ref": url, "mimetype": mimetype}}}


LINK_EDGE_CASES = [
    b'{"type": "link", "shebang": "dataloop", "metadata": {"dltype": "link", "linkInfo": '
    b'{"type": "url", "ref": ' + ref + b', "mimetype": ' + mimetype + b"}}}"
    for ref, mimetype in [
        (b'"https://example.com/\\ud800.jpg"', b'"image/jpeg"'),
        (b'"https://ex\\udfffample.com/"', b'"image"'),
        (b'"{base}/ok.jpg"', b'"image/\\ud800"'),
        (b'"{base}/ok.jpg"', b'"\\u0000"'),
        (b'"{base}/ok.jpg\\u0000"', b'"image"'),
        (b'"{base}/ok.jpg"', b"1e400"),
        (b'"https://\\u202eexample.com/"', b'"video"'),
        (b'"{base}/' + b"x" * 3000 + b'"', b'"image"'),
    ]]
LINK_FILES = st.one_of(
    st.builds(lambda doc: json.dumps(doc, allow_nan=True).encode(), st.builds(
        _link_document, st.sampled_from(["dataloop", "corral", "other", None, 1]),
        st.one_of(URLS, JSON), st.one_of(MIMETYPES, JSON),
        st.dictionaries(st.text(max_size=5), JSON, max_size=3),
        st.sampled_from(["link", "file", None]), st.sampled_from(["url", "s3", None]))),
    st.builds(lambda depth, opener, closer: b'{"type": "link", "shebang": "dataloop", "x": '
              + opener * depth + b"1" + closer * depth + b"}",
              st.sampled_from([100, 2000, 20_000]), st.just(b"["), st.just(b"]")),
    st.builds(lambda depth: b'{"type": "link", "shebang": "dataloop", "x": '
              + b'{"a": ' * depth + b"1" + b"}" * depth + b"}",
              st.sampled_from([100, 2000, 10_000])),
    st.sampled_from([b"{", b"{}", b"{" * 30_000, b"[" * 30_000, b'{"type": "link"' + b" " * 70_000,
                     b'{"type": "link", "shebang": "dataloop", "metadata": NaN}',
                     b'{"type": "link", "shebang": "dataloop", "n": 1e999999}',
                     b'{"type": "link", "shebang": "dataloop", "n": ' + b"9" * 5000 + b"}",
                     b'{"type": "link", "shebang": "dataloop"}\xff',
                     b'\xef\xbb\xbf{"type": "link", "shebang": "dataloop"}',
                     b'{"type": "link", "shebang": "dataloop", "type": "link"}',
                     *LINK_EDGE_CASES]),
    st.binary(max_size=100).map(lambda tail: b"{" + tail),
)


@given(content=LINK_FILES, base_is_loopback=st.booleans())
@hostile(max_examples=60)
def test_upload_hostile_link_files(hostile_stack: HostileStack, dataset_id: str,
                                   content: bytes, base_is_loopback: bool) -> None:
    _upload_link_file(hostile_stack, dataset_id, content, base_is_loopback)


@pytest.mark.parametrize("content", LINK_EDGE_CASES)
def test_link_file_edge_cases(hostile_stack: HostileStack, dataset_id: str,
                              content: bytes) -> None:
    """Escapes JSON allows but URLs and protobuf strings do not (lone surrogates, NUL)."""
    _upload_link_file(hostile_stack, dataset_id, content, True)


def _upload_link_file(hostile_stack: HostileStack, dataset_id: str, content: bytes,
                      base_is_loopback: bool) -> None:
    stack = hostile_stack
    base = stack.base_url if base_is_loopback else "https://example.com"
    content = content.replace(b"{base}", base.encode())
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, remote_dir="/links",
                                 name=f"{uuid.uuid4().hex}.json")
    message = upload_pb2.UploadItemRequest(spec=spec, data=content, finish_write=True)
    before = _state(stack, dataset_id)
    answer = attempt(lambda: stack.services.uploads.UploadItem(iter([message]), timeout=60),
                     content)
    if not answer.ok:
        assert answer.code.name in ("INVALID_ARGUMENT", "FAILED_PRECONDITION")
        assert _state(stack, dataset_id) == before, "a refused link file left something"
    else:
        item = answer.response.item
        if item.type == LINK:
            assert _state(stack, dataset_id)[1] == before[1], "a link item stored a blob"
            assert item.link.url and item.size == 0 and not item.blob_key
            document = json.loads(content)
            assert item.link.url == document["metadata"]["linkInfo"]["ref"]
        else:
            _check_accepted_file(stack, dataset_id, item, content)
    _healthy(stack, dataset_id)


@given(bad=st.sampled_from([b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0"]),
       where=st.sampled_from(["name", "remote_dir", "metadata", "description"]))
@hostile(max_examples=12)
def test_upload_requests_that_do_not_decode(hostile_stack: HostileStack, dataset_id: str,
                                            bad: bytes, where: str) -> None:
    stack = hostile_stack
    mark = "\x01\x02"
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="n.bin")
    if where == "name":
        spec.name = f"n{mark}.bin"
    elif where == "remote_dir":
        spec.remote_dir = f"/d{mark}"
    elif where == "metadata":
        spec.user_metadata.fields[f"k{mark}"].bool_value = True
    else:
        spec.description = f"d{mark}"
    first = with_invalid_utf8(upload_pb2.UploadItemRequest(spec=spec, data=b"abc"), mark, bad)
    last = upload_pb2.UploadItemRequest(write_offset=3, data=b"d",
                                        finish_write=True).SerializeToString()
    before = _state(stack, dataset_id)
    answer = attempt(raw_stream(stack.services.channels[0], UPLOAD + "UploadItem",
                                [first, last], upload_pb2.UploadItemResponse))
    assert answer.code == grpc.StatusCode.INVALID_ARGUMENT
    assert _state(stack, dataset_id) == before
    _healthy(stack, dataset_id)


@st.composite
def bulk_streams(draw: st.DrawFn) -> list[tuple[int, dict[str, Any], bytes, str]]:
    """Files of one UploadItems stream: (file_index, spec fields, data, framing quirk)."""
    files = []
    for _ in range(draw(st.integers(1, 5))):
        index = draw(st.sampled_from([0, 1, 2, 3, -1, 2**62, 7]))
        fields = draw(st.one_of(st.just({}), st.just({}), SPEC_FIELDS))
        quirk = draw(st.sampled_from(["", "", "", "no spec", "spec twice", "bad offset",
                                      "bad crc", "no finish", "after finish"]))
        files.append((index, fields, draw(st.binary(max_size=32)), quirk))
    return files


def _bulk_messages(dataset_id: str, files: list[tuple[int, dict[str, Any], bytes, str]]
                   ) -> list[upload_pb2.UploadItemsRequest]:
    messages = []
    for index, fields, data, quirk in files:
        first = upload_pb2.UploadItemsRequest(file_index=index, data=data[:5])
        if quirk != "no spec":
            fill_spec(first.spec, dataset_id, fields)
        last = upload_pb2.UploadItemsRequest(file_index=index, write_offset=len(data[:5]),
                                             data=data[5:], finish_write=quirk != "no finish")
        if quirk == "spec twice":
            last.spec.name = "again.bin"
        elif quirk == "bad offset":
            last.write_offset += 3
        elif quirk == "bad crc":
            last.crc32c = 12345
        messages += [first, last]
        if quirk == "after finish":
            messages.append(upload_pb2.UploadItemsRequest(file_index=index, data=b"late"))
    return messages


@given(files=bulk_streams())
@hostile(max_examples=40)
def test_bulk_upload_with_hostile_files_and_framing(hostile_stack: HostileStack,
                                                    dataset_id: str, files: list[Any]) -> None:
    """UploadItems: a bad file gets its own clean error and the stream goes on; only the
    items of files reported as uploaded exist, and only their blobs."""
    stack = hostile_stack
    before = _state(stack, dataset_id)
    results: list[upload_pb2.UploadItemsResult] = []
    try:
        for response in stack.services.uploads.UploadItems(
                iter(_bulk_messages(dataset_id, files)), timeout=60):
            results += response.results
    except grpc.RpcError as error:
        assert_clean_error(error)
    created = {}
    for result in results:
        event(f"file: {result.error.code}" if result.HasField("error") else "file: uploaded")
        if result.HasField("error"):
            assert_clean_row_error(result.error.code, result.error.message)
        elif result.outcome != resources_pb2.CREATE_OUTCOME_SKIPPED:
            created[result.item.id] = result.item
    items, blobs = _state(stack, dataset_id)
    assert items - before[0] <= set(created), "an item no result reported"
    assert blobs - before[1] <= {item.blob_key for item in created.values()}, "a stray blob"
    _healthy(stack, dataset_id)


def test_bulk_files_finishing_when_the_stream_breaks_are_reported(
        hostile_stack: HostileStack, dataset_id: str) -> None:
    """Files whose finish_write arrived complete, and their results go out, before a broken
    message (here one protobuf cannot parse) ends the stream: no item the client never heard
    of."""
    stack = hostile_stack
    payloads = []
    for index in range(10):
        message = upload_pb2.UploadItemsRequest(file_index=index, data=b"x" * index,
                                                finish_write=True)
        message.spec.dataset_id, message.spec.name = dataset_id, f"{uuid.uuid4().hex}.bin"
        payloads.append(message.SerializeToString())
    broken = upload_pb2.UploadItemsRequest(file_index=99)
    broken.spec.dataset_id, broken.spec.name = dataset_id, "deep.bin"
    fill_struct(broken.spec.user_metadata, nested(60))
    payloads.append(broken.SerializeToString())
    before = _state(stack, dataset_id)
    call = stack.services.channels[0].stream_stream(
        UPLOAD + "UploadItems", request_serializer=lambda data: data,
        response_deserializer=upload_pb2.UploadItemsResponse.FromString)
    results: list[upload_pb2.UploadItemsResult] = []
    with pytest.raises(grpc.RpcError) as broke:
        for response in call(iter(payloads), timeout=60):
            results += response.results
    assert broke.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reported = {result.item.id for result in results if result.HasField("item")}
    items, blobs = _state(stack, dataset_id)
    assert items - before[0] == reported
    assert len(reported) == 10
    _healthy(stack, dataset_id)
