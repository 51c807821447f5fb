"""Hostile CSV files through the ImportCsv stream of the real upload service: random bytes,
random headers and rows, broken quoting, huge fields, other encodings, odd JSON in
item_metadata, hostile IDs, names and URLs (fetches may reach only the loopback HTTP server
the module starts), chunked at random. Every row result is clean, every item in the import's
folder was reported, and every blob left behind belongs to a reported file item."""

from __future__ import annotations

import base64
import csv
import io
import json
import uuid
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import resources_pb2
from corral.errors import CorralError
from corral.structs import struct_to_dict
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from services.upload.imports import import_folder

from .checks import assert_clean_error, assert_clean_row_error, assert_serving
from .conftest import HostileStack, hostile
from .strategies import FETCHABLE_URLS, HOSTILE_CHAR, NAMES, OBJECTS, long_text

pytestmark = pytest.mark.timeout(300)
COLUMNS = ["ID", "URL", "image_bytes", "name", "action", "mimetype", "item_metadata",
           "item_description"]
FILE = resources_pb2.ITEM_TYPE_FILE


@pytest.fixture(scope="module")
def dataset_id(hostile_stack: HostileStack) -> Iterator[str]:
    yield hostile_stack.new_dataset("csv")


def _cased(name: str, style: int) -> str:
    return [name, name.upper(), name.lower(), f" {name} "][style]


PLAUSIBLE_HEADERS = st.builds(
    lambda extra, order, style: [_cased(c, style) for c in order(["ID", "URL", *extra])],
    st.lists(st.sampled_from(COLUMNS[2:]), unique=True, max_size=6),
    st.sampled_from([lambda cs: cs, lambda cs: cs[::-1], sorted]), st.integers(0, 3))
HEADERS = st.sampled_from([True] * 4 + [False]).flatmap(lambda plausible: (
    PLAUSIBLE_HEADERS if plausible else st.lists(st.one_of(
        st.sampled_from([*COLUMNS, "id", "ID", "url", "bogus", ""]),
        st.text(HOSTILE_CHAR, max_size=8)), max_size=5)))
CELLS: dict[str, st.SearchStrategy[str]] = {
    "id": st.one_of(st.builds(lambda: f"r{uuid.uuid4().hex[:6]}"), st.sampled_from(["r1", "r1"]),
                    NAMES),
    "url": st.one_of(st.sampled_from(["{base}/ok.jpg", "{base}/ok.txt", "{base}/html"]),
                     FETCHABLE_URLS),
    "image_bytes": st.one_of(
        st.binary(min_size=1, max_size=48).map(lambda data: base64.b64encode(data).decode()),
        st.sampled_from(["", "!!!", "YWJj", "YW Jj\n", "=", "YWJ", "\u00e9", "Y" * 5])),
    "name": st.one_of(st.just(""), NAMES),
    "action": st.one_of(st.sampled_from(["", "link", "upload", "LINK", " upload ", "delete"]),
                        st.text(HOSTILE_CHAR, max_size=6)),
    "mimetype": st.one_of(st.sampled_from(["", "image/jpeg", "image", "video", "IMAGE/PNG",
                                           "text/html", "x/", "a" * 300]),
                          st.text(HOSTILE_CHAR, max_size=10)),
    "item_metadata": st.one_of(
        st.just(""), OBJECTS.map(lambda value: json.dumps(value, allow_nan=True)),
        st.sampled_from(["{", "[1]", "null", "3", '{"a": NaN}', '{"a": Infinity}',
                         '{"a": 1e400}', '{"a": -1e400}', '{"a": ' + "9" * 400 + "}",
                         '{"a": ' + "9" * 5000 + "}", "[" * 5000, '{"a":' * 3000,
                         '{"a": "\\u0000"}', '{"\\ud800": 1}', '{"a": "\\udfff"}',
                         '{"a": 1, "a": 2}', '{"": {"": {"": 1}}}', "{'a': 1}",
                         '{"deep": ' + '{"a": ' * 25 + "1" + "}" * 25 + "}"])),
    "item_description": st.one_of(st.just(""), NAMES, long_text(9_000, 12_000)),
}


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    header = draw(HEADERS)
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        row = [draw(CELLS.get(column.strip().lower(), st.text(HOSTILE_CHAR, max_size=6)))
               for column in header]
        if draw(st.integers(0, 7)) == 0:  # too many or too few fields
            row = row + ["extra"] if draw(st.booleans()) else row[:-1]
        rows.append(row)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\r\n", "\n"])),
                        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
    writer.writerow(header)
    writer.writerows(rows)
    text = out.getvalue()
    if draw(st.integers(0, 4)) == 0:  # a stray quote somewhere: broken quoting
        at = draw(st.integers(0, len(text)))
        text = text[:at] + '"' + text[at:]
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16",
                                     "latin-1"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.integers(0, 9)) == 0:  # cut anywhere, even inside a character
        data = data[:draw(st.integers(0, len(data)))]
    return data


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)] or [b""]


def _folder_items(stack: HostileStack, dataset_id: str, folder: str
                  ) -> dict[str, resources_pb2.Item]:
    request = catalog_pb2.ListItemsRequest(dataset_id=dataset_id, dir=folder, recursive=True,
                                           page_size=1000)
    try:
        reply = stack.services.catalogs.ListItems(request, timeout=30)
    except grpc.RpcError as error:
        assert error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
        return {}
    return {item.id: item for item in reply.items if item.type != resources_pb2.ITEM_TYPE_DIR}


@given(data=csv_files(), cuts=st.lists(st.integers(0, 4000), max_size=4),
       hostile_spec=st.sampled_from([False] * 9 + [True]),
       csv_name=st.one_of(NAMES.map(lambda name: f"{uuid.uuid4().hex[:4]}{name}.csv"), NAMES),
       remote_dir=st.sampled_from(["", "/imports/../x", "/a\x00", "//x//"]))
@hostile(max_examples=100)
def test_import_hostile_csv(hostile_stack: HostileStack, dataset_id: str, data: bytes,
                            cuts: list[int], hostile_spec: bool, csv_name: str,
                            remote_dir: str) -> None:
    stack = hostile_stack
    if not hostile_spec:  # mostly a good spec, so that the file itself is what is tested
        csv_name, remote_dir = f"{uuid.uuid4().hex}.csv", "/imports"
    data = data.replace(b"{base}", stack.base_url.encode())
    spec = upload_pb2.ImportCsvSpec(dataset_id=dataset_id, remote_dir=remote_dir,
                                    csv_name=csv_name)
    chunks = _chunks(data, cuts)
    requests = [upload_pb2.ImportCsvRequest(spec=spec, data=chunks[0])]
    requests += [upload_pb2.ImportCsvRequest(data=chunk) for chunk in chunks[1:]]
    try:
        folder = import_folder(spec)
    except CorralError:
        folder = None
    blobs_before = stack.blob_keys(dataset_id)
    items_before = _folder_items(stack, dataset_id, folder) if folder else {}
    rows: list[upload_pb2.ImportCsvRowResult] = []
    summary = None
    try:
        for response in stack.services.uploads.ImportCsv(iter(requests), timeout=120):
            if response.HasField("summary"):
                summary = response.summary
            else:
                rows.append(response.row)
    except grpc.RpcError as error:
        assert_clean_error(error, [csv_name, remote_dir])
        assert summary is None
    event("import finished" if summary is not None else "import refused")
    reported: dict[str, resources_pb2.Item] = {}
    for row in rows:
        event(f"row: {row.error.code or 'error'}" if row.HasField("error")
              else f"row: {resources_pb2.ItemType.Name(row.item.type)}")
        if row.HasField("error"):
            assert_clean_row_error(row.error.code, row.error.message, [data])
            assert not row.HasField("item")
        else:
            reported[row.item.id] = row.item
    if summary is not None:
        assert summary.rows == len(rows)
        assert summary.created + summary.skipped + summary.failed == summary.rows
        assert summary.failed == sum(row.HasField("error") for row in rows)
        assert summary.folder == folder
    now = _folder_items(stack, dataset_id, folder) if folder else {}
    assert set(now) - set(items_before) <= set(reported), "an item no row reported"
    for item_id, item in reported.items():
        assert now[item_id].filename == item.filename
    new_blobs = stack.blob_keys(dataset_id) - blobs_before
    file_blobs = {item.blob_key for item in reported.values() if item.type == FILE}
    assert new_blobs <= file_blobs, "a blob no reported item owns"
    assert_serving(stack.services.channels[0], lambda: _import_still_works(stack, dataset_id))


def _import_still_works(stack: HostileStack, dataset_id: str) -> None:
    body = f"ID,URL\nok,{stack.base_url}/ok.jpg\n".encode()
    spec = upload_pb2.ImportCsvSpec(dataset_id=dataset_id, remote_dir="/probe",
                                    csv_name=f"{uuid.uuid4().hex}.csv")
    responses = list(stack.services.uploads.ImportCsv(
        iter([upload_pb2.ImportCsvRequest(spec=spec, data=body)]), timeout=60))
    assert responses[-1].summary.created == 1


def test_rows_started_before_a_refusal_are_reported(hostile_stack: HostileStack,
                                                   dataset_id: str) -> None:
    """A file that turns out not to be UTF-8 after some rows refuses the import, but rows
    already under way (a fetch, a catalog call) finish and are reported first: no item and
    no blob appears that no row result told the client about."""
    stack = hostile_stack
    good = (f"ID,URL,action\nslow,{stack.base_url}/slow.jpg,upload\n"
            f"link,{stack.base_url}/ok.jpg,link\n").encode()
    spec = upload_pb2.ImportCsvSpec(dataset_id=dataset_id, remote_dir="/imports",
                                    csv_name=f"{uuid.uuid4().hex}.csv")
    requests = [upload_pb2.ImportCsvRequest(spec=spec, data=good),
                upload_pb2.ImportCsvRequest(data=b"bad,\xff\xfe,link\n")]
    blobs_before = stack.blob_keys(dataset_id)
    rows = []
    with pytest.raises(grpc.RpcError) as refused:
        for response in stack.services.uploads.ImportCsv(iter(requests), timeout=60):
            rows.append(response.row)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "UTF-8" in refused.value.details()
    assert sorted(row.id for row in rows) == ["link", "slow"]
    assert all(row.HasField("item") for row in rows)
    folder = import_folder(spec)
    assert set(_folder_items(stack, dataset_id, folder)) == {row.item.id for row in rows}
    slow = next(row.item for row in rows if row.id == "slow")
    assert stack.blob_keys(dataset_id) - blobs_before == {slow.blob_key}


@pytest.mark.parametrize("metadata", [
    '{"a": 1e400}', '{"a": -1e400}', '{"a": NaN}', '{"a": ' + "9" * 400 + "}",
    '{"a": ' + "9" * 5000 + "}", '{"\\ud800": 1}', '{"a": "\\udfff"}', '{"a": "\\u0000"}',
    "[" * 5000, '{"a":' * 3000, '{"deep": ' + '{"a": ' * 25 + "1" + "}" * 25 + "}",
    '{"a": 1, "a": 2}', '{"": {"$": {".": 1}}}',
])
def test_item_metadata_edge_cases(hostile_stack: HostileStack, dataset_id: str,
                                  metadata: str) -> None:
    """JSON that Python parses but a Struct or the catalog cannot hold (infinities, integers
    beyond a double, lone surrogates, NUL, nesting): a clean row error naming item_metadata,
    or an item whose metadata reads back as sent."""
    stack = hostile_stack
    out = io.StringIO()
    csv.writer(out).writerows([["ID", "URL", "item_metadata"],
                               ["r", f"{stack.base_url}/ok.jpg", metadata]])
    spec = upload_pb2.ImportCsvSpec(dataset_id=dataset_id, remote_dir="/imports",
                                    csv_name=f"{uuid.uuid4().hex}.csv")
    responses = list(stack.services.uploads.ImportCsv(
        iter([upload_pb2.ImportCsvRequest(spec=spec, data=out.getvalue().encode())]),
        timeout=60))
    row = responses[0].row
    if row.HasField("error"):
        assert_clean_row_error(row.error.code, row.error.message, [metadata])
        assert "item_metadata" in row.error.message or "user_metadata" in row.error.message
        assert _folder_items(stack, dataset_id, import_folder(spec)) == {}
    else:
        assert struct_to_dict(row.item.metadata.user) == json.loads(metadata)
