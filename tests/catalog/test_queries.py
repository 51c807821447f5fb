"""ListItems with filters, sort keys, keyset paging and counts, over gRPC on SQLite and on
PostgreSQL. Every filter's answer is checked against a reference evaluator written here in
Python from the documented semantics, so both databases must agree with it (and each other)."""

from __future__ import annotations

import functools
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from corral.client import filter_match
from corral.client.filters import Filter, field, to_filter, to_order
from corral.paths import normalize_dir
from corral.structs import dict_to_struct, struct_to_dict
from services.catalog import metadata_indexes
from tests.catalog.conftest import create_item, expect_error, new_dataset

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOTE = "it's \"quoted\" ; DROP TABLE items; --"
# filename -> (size, metadata.user, mimetype or None)
CORPUS: dict[str, tuple[int, dict[str, Any], str | None]] = {
    "/a/cat1.jpg": (100, {"camera": 3, "area": "north", "score": 0.5, "ok": True,
                          "tags": ["x", "y"], "lot": {"number": 7, "code": "L-7"}},
                    "image/jpeg"),
    "/a/cat2.png": (2000, {"camera": 4, "area": "south", "score": 1.5, "ok": False,
                           "lot": {"number": 12}}, "image/png"),
    "/a/b/dog.jpg": (300000, {"camera": "3", "area": "North", "ok": 1, "lot": None},
                     "image/jpeg"),
    "/a/b/c/deep.txt": (5, {"camera": 3.0, "note": NOTE, "area": "é-north", "score": -2},
                        "text/plain"),
    "/z.bin": (0, {}, None),
    "/a0/sib.jpg": (100, {"camera": [3], "area": "", "lot": {"number": 7.5}}, "image/jpeg"),
    "/a/b/Zebra.JPG": (7, {"camera": 10, "area": "west", "ok": True}, "image/jpeg"),
}
FOLDERS = ("/a", "/a/b", "/a/b/c", "/a0")


@pytest.fixture(scope="module")
def corpus(catalog) -> dict[str, Any]:
    stub = catalog.stub
    dataset = new_dataset(stub, "query")
    rows = {}
    for filename, (size, user, mimetype) in CORPUS.items():
        dir_path, _, name = filename.rpartition("/")
        item = create_item(stub, dataset.id, dir_path or "/", name, size=size,
                           user_metadata=user).item
        if mimetype:
            item = stub.UpdateSystemMetadata(api.UpdateSystemMetadataRequest(
                item_id=item.id, system=dict_to_struct({"mimetype": mimetype}))).item
        rows[filename] = item
    for folder in FOLDERS:
        rows[folder] = stub.GetItem(api.GetItemRequest(dataset_id=dataset.id,
                                                       filename=folder)).item
    return {"dataset": dataset, "items": rows}


# -- the reference semantics --------------------------------------------------------------

ABSENT = object()


def _value(item: res.Item, name: str) -> Any:
    columns = {"name": item.name, "dir": item.dir, "filename": item.filename,
               "type": {res.ITEM_TYPE_FILE: "file", res.ITEM_TYPE_DIR: "dir"}[item.type],
               "size": item.size, "created_at": item.create_time.ToDatetime(tzinfo=UTC),
               "updated_at": item.update_time.ToDatetime(tzinfo=UTC)}
    if name in columns:
        return columns[name]
    if name == "mimetype":
        value = struct_to_dict(item.metadata.system).get("mimetype", ABSENT)
        return value if value is not None else ABSENT
    source, _, path = name.partition(".")[2].partition(".")
    value: Any = struct_to_dict(getattr(item.metadata, source))
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return ABSENT
        value = value[key]
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "other"


def _equal(actual: Any, wanted: Any) -> bool:
    return actual is not ABSENT and _kind(actual) == _kind(wanted) and actual == wanted


def _glob(pattern: str) -> re.Pattern[str]:
    regex = ""
    for token in re.split(r"(/\*\*/|/\*\*$|\*\*|\*|\?)", pattern):
        regex += {"/**/": "(/.*)?/", "/**": "(/.*)?", "**": ".*", "*": "[^/]*",
                  "?": "[^/]"}.get(token, re.escape(token))
    return re.compile(regex, re.DOTALL)


def matches(item: res.Item, node: Filter) -> bool:
    if hasattr(node, "members"):
        results = [matches(item, member) for member in node.members]
        return any(results) if node.kind == "any" else all(results)
    actual, op, wanted = _value(item, node.field), node.op, node.value
    if node.field in ("created_at", "updated_at"):
        wanted = datetime.fromisoformat(wanted.replace("Z", "+00:00"))
        wanted = wanted if wanted.tzinfo else wanted.replace(tzinfo=UTC)
    if node.field in ("dir", "filename") and op in ("eq", "ne", "in", "nin"):
        wanted = [normalize_dir(w) for w in wanted] if isinstance(wanted, list) \
            else normalize_dir(wanted)
    if op == "exists":
        return (actual is not ABSENT) == wanted
    if op in ("eq", "in", "ne", "nin"):
        found = any(_equal(actual, w) for w in (wanted if op in ("in", "nin") else [wanted]))
        return found if op in ("eq", "in") else not found
    if op == "glob":
        return isinstance(actual, str) and _glob(wanted).fullmatch(actual) is not None
    if actual is ABSENT or _kind(actual) != _kind(wanted):
        return False
    return {"gt": actual > wanted, "gte": actual >= wanted, "lt": actual < wanted,
            "lte": actual <= wanted}[op]


def _sort_key(item: res.Item, name: str) -> tuple:
    value = _value(item, name)
    if name.startswith("metadata."):
        kind = _kind(value) if value is not ABSENT else "other"
        rank = {"number": 0, "string": 1}.get(kind, 2)
        return (rank, value if rank == 0 else 0, value.encode() if rank == 1 else b"")
    if name == "mimetype":
        return ((value if value is not ABSENT else "").encode(),)
    return (value.encode() if isinstance(value, str) else value,)


def expected_order(items: list[res.Item], keys: list[str]) -> list[str]:
    keys = keys or ["filename"]

    def compare(a: res.Item, b: res.Item) -> int:
        for key in [*keys, "-id" if keys[-1].startswith("-") else "id"]:
            name = key.lstrip("-")
            left, right = (_sort_key(a, name), _sort_key(b, name)) if name != "id" else (
                (a.id,), (b.id,))
            if left != right:
                return (-1 if left < right else 1) * (-1 if key.startswith("-") else 1)
        return 0

    return [i.filename for i in sorted(items, key=functools.cmp_to_key(compare))]


# -- helpers ------------------------------------------------------------------------------

def list_all(stub, dataset_id: str, item_filter: Filter | None = None, order=None,
             page_size: int = 2, dir: str = "/", recursive: bool = True
             ) -> tuple[list[res.Item], int]:
    request = api.ListItemsRequest(dataset_id=dataset_id, dir=dir, recursive=recursive,
                                   page_size=page_size, order_by=to_order(order),
                                   include_total_size=True)
    if item_filter is not None:
        request.filter.CopyFrom(item_filter.to_proto())
    found, totals = [], set()
    while True:
        reply = stub.ListItems(request)
        found += reply.items
        totals.add(reply.total_size)
        if not reply.next_page_token:
            assert len(totals) == 1
            return found, totals.pop()
        request.page_token = reply.next_page_token


FILTERS = [
    "metadata.user.camera=3", "metadata.user.camera!=3", "metadata.user.camera=[3,4,\"3\"]",
    "metadata.user.camera!=[3,10]", "metadata.user.camera>3", "metadata.user.camera<=3",
    "metadata.user.camera=\"3\"", "metadata.user.ok=true", "metadata.user.ok=false",
    "metadata.user.ok=[0,1]", "metadata.user.tags=\"[\\\"x\\\",\\\"y\\\"]\"",
    "metadata.user.lot=\"{\\\"number\\\": 7}\"",
    "metadata.user.ok!=true", "metadata.user.ok=1", "metadata.user.area>north",
    "metadata.user.area>=\"\"", "metadata.user.area~*north", "metadata.user.area=North",
    "metadata.user.lot.number=7", "metadata.user.lot.number>=7", "metadata.user.lot?",
    "!metadata.user.lot?", "metadata.user.lot.code?", "metadata.user.score<1",
    "metadata.user.score>-3", f"metadata.user.note={json.dumps(NOTE)}",
    "metadata.user.tags=[\"x\"]",
    "size>100", "size>=100", "size=[0,5,7]", "size!=100", "size<7",
    "name~*.jpg", "name~*.JPG", "name~cat?.*", "name>cat2", "name=[z.bin,dog.jpg]",
    "dir=/a", "dir=/a/b/", "dir~/a/**", "dir!=/a", "filename~/a/**", "filename~/a/**/*.jpg",
    "filename~**/c/*", "filename~/a/*", "filename</a0", "type=dir", "type!=dir",
    "type=[file,link]", "mimetype=image/jpeg", "mimetype~image/*", "mimetype!=image/jpeg",
    "mimetype?", "!mimetype?", "mimetype>image/jpeg", "mimetype=[text/plain,image/png]",
    "metadata.system.mimetype=image/png", "metadata.system.mimetype?",
    "created_at>2000-01-01T00:00:00Z", "updated_at<2000-01-01", "created_at<=2999-01-01T00:00Z",
    "metadata.user.camera=3 | size>1000",
    ["metadata.user.camera=3", "name~*.jpg"],
    ["metadata.user.area~*north | metadata.user.ok=true", "size<1000"],
]


@pytest.mark.parametrize("spec", FILTERS, ids=str)
def test_filter_matches_the_reference(stub, corpus, spec):
    item_filter = to_filter(spec)
    everything = list(corpus["items"].values())
    wanted = expected_order([i for i in everything if matches(i, item_filter)], [])
    found, total = list_all(stub, corpus["dataset"].id, item_filter)
    assert [i.filename for i in found] == wanted
    assert total == len(wanted)


@pytest.mark.parametrize("spec", FILTERS, ids=str)
def test_trigger_evaluator_agrees_with_the_catalog(stub, corpus, spec):
    """corral.client.filter_match (what `corral worker` evaluates on an event's item) selects
    exactly what the catalog's SQL selects."""
    item_filter = to_filter(spec).to_proto()
    found, _ = list_all(stub, corpus["dataset"].id, to_filter(spec), page_size=100)
    wanted = {item.filename for item in corpus["items"].values()
              if filter_match.matches(item, item_filter)}
    assert {i.filename for i in found} == wanted


def test_reference_spot_checks(corpus):
    """The evaluator itself, on the cases where JSON types matter."""
    items = corpus["items"].values()

    def names(spec: str) -> set[str]:
        return {i.name for i in items if matches(i, to_filter(spec))}

    assert names("metadata.user.camera=3") == {"cat1.jpg", "deep.txt"}  # not "3", not [3]
    assert names("metadata.user.ok=true") == {"cat1.jpg", "Zebra.JPG"}  # not 1
    assert "dog.jpg" in names("metadata.user.lot?")  # present as null
    assert names("dir~/a/**") == {"cat1.jpg", "cat2.png", "dog.jpg", "deep.txt", "Zebra.JPG",
                                  "b", "c"}


def test_builder_filters_and_nesting(stub, corpus):
    camera = field("metadata.user.camera")
    deep = ((camera == 3) | (camera == 4)) & (field("size") < 1000) & (
        field("name").glob("*.jpg") | field("name").glob("*.png") | field("name").glob("*.txt"))
    found, total = list_all(stub, corpus["dataset"].id, deep)
    assert [i.filename for i in found] == ["/a/b/c/deep.txt", "/a/cat1.jpg"] and total == 2


@pytest.mark.parametrize("order", [
    ["size"], ["-size"], ["metadata.user.camera"], ["-metadata.user.camera"],
    ["metadata.user.area", "-size"], ["name"], ["-filename"], ["mimetype", "name"],
    ["-created_at"], ["type", "-metadata.user.lot.number"], ["-dir", "size"],
], ids=str)
def test_sort_orders_page_by_page(stub, corpus, order):
    wanted = expected_order(list(corpus["items"].values()), order)
    for page_size in (1, 3, 1000):
        found, total = list_all(stub, corpus["dataset"].id, order=order, page_size=page_size)
        assert [i.filename for i in found] == wanted
        assert total == len(wanted)


def test_filtered_folder_listing_keeps_its_scope(stub, corpus):
    dataset_id = corpus["dataset"].id
    children, _ = list_all(stub, dataset_id, to_filter("type=file"), dir="/a", recursive=False)
    assert [i.filename for i in children] == ["/a/cat1.jpg", "/a/cat2.png"]
    below, total = list_all(stub, dataset_id, to_filter("name~*.jpg"), order=["-size"],
                            dir="/a/b")
    assert [i.filename for i in below] == ["/a/b/dog.jpg"] and total == 1


def test_keyset_paging_stays_correct_while_items_are_added(stub):
    dataset = new_dataset(stub)
    for i in range(0, 40, 2):
        create_item(stub, dataset.id, "/", f"f{i:02d}", size=i, user_metadata={"even": True})
    originals = [f"f{i:02d}" for i in range(0, 40, 2)]
    for order in (None, ["-size"]):
        request = api.ListItemsRequest(dataset_id=dataset.id, recursive=True, page_size=5,
                                       order_by=to_order(order))
        request.filter.CopyFrom(to_filter("metadata.user.even=true").to_proto())
        seen: list[str] = []
        while True:
            reply = stub.ListItems(request)
            seen += [i.name for i in reply.items]
            # New matches before the position, after it, and in the middle, in both orders.
            for size in (0, 41, 17):
                name = f"f{size:02d}-{uuid.uuid4().hex[:6]}"
                create_item(stub, dataset.id, "/", name, size=size,
                            user_metadata={"even": True})
            if not reply.next_page_token or len(seen) > 200:
                break
            request.page_token = reply.next_page_token
        assert len(seen) == len(set(seen)), "an item was listed twice"
        assert [n for n in seen if n in originals] == (
            originals if order is None else originals[::-1]), "an existing item was skipped"


def test_page_tokens_belong_to_their_query(stub, corpus):
    dataset_id = corpus["dataset"].id
    first = stub.ListItems(api.ListItemsRequest(dataset_id=dataset_id, recursive=True,
                                                page_size=2, order_by=to_order("size")))
    assert first.next_page_token and not first.HasField("total_size")
    other = api.ListItemsRequest(dataset_id=dataset_id, recursive=True, page_size=2,
                                 order_by=to_order("-size"), page_token=first.next_page_token)
    expect_error(INVALID, lambda: stub.ListItems(other), "page_token")
    for forged in ("bm90IGpzb24", "eyJxIjoiMTIzIiwiayI6W119", "!!!"):
        request = api.ListItemsRequest(dataset_id=dataset_id, page_token=forged)
        expect_error(INVALID, lambda r=request: stub.ListItems(r), "page_token")


def _nested(depth: int) -> Filter:
    node: Filter = field("size") > 0
    for _ in range(depth):
        node = node & (field("size") > 1)
        node = node | (field("size") > 2)
    return node


@pytest.mark.parametrize(("item_filter", "in_message"), [
    (field("colour") == "red", ["filter: unknown field 'colour'"]),
    (field("metadata.user") == 1, ["unknown field 'metadata.user'"]),
    (field("size").glob("1*"), ["filter: size does not take glob"]),
    (field("type") > "file", ["type does not take gt"]),
    (field("size") > "big", ["size gt needs a number, got 'big'"]),
    (field("created_at") > "yesterday", ["RFC 3339"]),
    (field("type") == "folder", ["one of file, dir, link"]),
    (field("metadata.user.ok") > True, ["needs a number or a string"]),
    (field("metadata.user.x") == None, ["use exists"]),  # noqa: E711
    (field("metadata.user.x") == {"a": 1}, ["needs a number, string or boolean"]),
    (field("metadata.user.x").is_in([]), ["non-empty list"]),
    (field("metadata.user.x").exists("yes"), ["true or false"]),
    ((field("size") > 0) & (field("name") == 1), ["filter.all_of[1]: name eq needs a string"]),
    ((field("size") > 0) | ((field("size") > 1) & (field("mimetype") == 3)),
     ["filter.any_of[1].all_of[1]: mimetype eq needs a string"]),
    (_nested(5), ["nest deeper than 8"]),
    (to_filter([f"size>{i}" for i in range(101)]), ["more than 100 conditions"]),
    (field("metadata.user.a'b") == 1, ["metadata key \"a'b\""]),
    (field("metadata.user.a\") OR 1=1 --") == 1, ["is not filterable"]),
    (field("metadata.user.$.a") == 1, ["'$'"]),
    (field("metadata.user.a[0]") == 1, ["'a[0]'"]),
    (field("metadata.user.2024") == 1, ["'2024'"]),
    (field("metadata.user.a..b") == 1, ["''"]),
    (field("metadata.user.a b") == 1, ["'a b'"]),
])
def test_bad_filters_are_invalid_and_name_the_clause(stub, corpus, item_filter, in_message):
    request = api.ListItemsRequest(dataset_id=corpus["dataset"].id, recursive=True)
    request.filter.CopyFrom(item_filter.to_proto())
    expect_error(INVALID, lambda: stub.ListItems(request), *in_message)


def test_malformed_filter_messages(stub, corpus):
    from corral.catalog.v1 import filters_pb2 as pb

    dataset_id = corpus["dataset"].id
    cases = [
        (pb.ItemFilter(all_of=pb.FilterGroup()), "filter.all_of: needs at least one filter"),
        (pb.ItemFilter(any_of=pb.FilterGroup(filters=[pb.ItemFilter()])),
         "filter.any_of[0]: sets none of"),
        (pb.ItemFilter(condition=pb.FilterCondition(field="size")), "operator is missing"),
        (pb.ItemFilter(condition=pb.FilterCondition(field="size", operator=99)),
         "operator is missing or unknown"),
        (pb.ItemFilter(condition=pb.FilterCondition(
            field="size", operator=pb.FILTER_OPERATOR_GT)), "size gt needs a value"),
    ]
    for item_filter, message in cases:
        request = api.ListItemsRequest(dataset_id=dataset_id, filter=item_filter)
        expect_error(INVALID, lambda r=request: stub.ListItems(r), message)
    bad_order = api.ListItemsRequest(dataset_id=dataset_id,
                                     order_by=to_order(["size", "color"]))
    expect_error(INVALID, lambda: stub.ListItems(bad_order), "order_by[1]: unknown field")


def test_hostile_values_are_only_data(stub, corpus):
    dataset_id = corpus["dataset"].id
    note = field("metadata.user.note")
    found, _ = list_all(stub, dataset_id, note == NOTE)
    assert [i.filename for i in found] == ["/a/b/c/deep.txt"]
    for value in ("' OR '1'='1", "\") OR 1=1 --", "%", "_", "$.camera", "\\", "*"):
        for condition in (note == value, field("name") == value, note.glob(value),
                          field("name").glob(value), field("name") > value):
            found, _ = list_all(stub, dataset_id, condition)
            assert all(matches(i, condition) for i in found)
    assert len(list_all(stub, dataset_id)[0]) == len(CORPUS) + len(FOLDERS)


def test_indexed_paths_answer_alike(catalog, stub, corpus):
    """With expression indexes on camera and lot.number, filters spell those paths out as
    literals (the index's own expression); the answers must not change."""
    specs = ["metadata.user.camera=3", "metadata.user.camera>3", "metadata.user.camera!=3",
             "metadata.user.camera=[3,\"3\"]", "metadata.user.lot.number>=7",
             "metadata.user.lot?"]
    before = {spec: list_all(stub, corpus["dataset"].id, to_filter(spec)) for spec in specs}
    orders = {key: list_all(stub, corpus["dataset"].id, order=[key])[0]
              for key in ("metadata.user.camera", "-metadata.user.lot.number")}
    metadata_indexes.ensure(catalog.db, [("camera",), ("lot", "number")])
    try:
        for spec in specs:
            assert list_all(stub, corpus["dataset"].id, to_filter(spec)) == before[spec]
        for key, listed in orders.items():
            assert list_all(stub, corpus["dataset"].id, order=[key])[0] == listed
    finally:
        catalog.db.indexed_metadata = frozenset()


def test_total_size_only_when_asked(stub, corpus):
    dataset_id = corpus["dataset"].id
    plain = stub.ListItems(api.ListItemsRequest(dataset_id=dataset_id))
    assert not plain.HasField("total_size")
    counted = stub.ListItems(api.ListItemsRequest(dataset_id=dataset_id, page_size=1,
                                                  include_total_size=True))
    assert counted.total_size == 3 and len(counted.items) == 1  # /a, /a0, /z.bin
    none = api.ListItemsRequest(dataset_id=dataset_id, recursive=True, include_total_size=True)
    none.filter.CopyFrom(to_filter("size>1e12").to_proto())
    reply = stub.ListItems(none)
    assert reply.HasField("total_size") and reply.total_size == 0 and not reply.items
