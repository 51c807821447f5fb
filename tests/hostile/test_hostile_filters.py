"""Hostile ItemFilter trees (filters.proto) through ListItems and UpdateMatchingItems on
SQLite and PostgreSQL: random depth and width, every operator (and unknown ones), wrong value
types, odd field paths, huge lists, glob patterns with odd characters, odd sort keys, and
forged page tokens. A filter the catalog accepts must select exactly the items the SDK's own
evaluator (corral.client.filter_match, which trigger workers use) selects, over every page."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import field_mask_pb2
from hypothesis import example, given
from hypothesis import strategies as st

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import filters_pb2, resources_pb2
from corral.client.filter_match import matches
from services.catalog.filters import glob_regex
from services.catalog.glob_match import _Nfa, _program, glob_matcher
from tests.catalog.conftest import InProcessCatalog, create_item, new_dataset

from .checks import assert_serving, attempt
from .conftest import hostile
from .strategies import (
    FIELDS,
    JSON,
    PLAUSIBLE_CONDITIONS,
    build_filter,
    fill_struct,
    filter_trees,
)

pytestmark = pytest.mark.timeout(240)

# (dir, name, user metadata, system metadata or None): scripts, odd keys, every JSON type.
SEEDS: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = [
    ("/", "a.jpg", {"camera": 3, "lot": {"number": 7}, "tags": ["x", 1],
                    "note": "by the door"}, {"mimetype": "image/jpeg", "width": 640}),
    ("/2024", "b.png", {"camera": "3", "note": "\u00e9t\u00e9"}, {"mimetype": "image/png"}),
    ("/2024/photos", "caf\u00e9.jpg", {"camera": 4.5, "flag": True}, None),
    ("/2024/photos", "\u65e5\u672c.png", {"camera": None, "lot": {"number": "7"}}, None),
    ("/x y", "[weird]*?.txt", {"$a": 1, "": 2, "a.b": 3, "_x-y": "z"}, {"mimetype": None}),
    ("/deep/a/b/c", "z", {"lot": {"number": 7.0}, "camera": -1e308}, {"width": "640"}),
    ("/", "\U0001f600", {"camera": 2**53, "note": "100%_\\"}, None),
    ("/", "%_", {"tags": [], "note": ""}, {"mimetype": "text/plain"}),
    ("/caf\u00e9", "e\u0301", {"flag": False, "camera": 0}, None),
]


@pytest.fixture(scope="module")
def dataset_id(catalog: InProcessCatalog) -> Iterator[str]:
    stub = catalog.stub
    dataset = new_dataset(stub, "filters").id
    for dir_path, name, user, system in SEEDS:
        item = create_item(stub, dataset, dir_path, name, user_metadata=user).item
        if system is not None:
            request = api.UpdateSystemMetadataRequest(item_id=item.id)
            fill_struct(request.system, system)
            stub.UpdateSystemMetadata(request, timeout=30)
    link = api.CreateItemRequest(dataset_id=dataset, dir="/links", name="l.jpg",
                                 type=resources_pb2.ITEM_TYPE_LINK,
                                 link=resources_pb2.LinkInfo(url="https://example.com/l.jpg"))
    stub.CreateItem(link, timeout=30)
    yield dataset


def _everything(catalog: InProcessCatalog, dataset_id: str) -> list[resources_pb2.Item]:
    request = api.ListItemsRequest(dataset_id=dataset_id, recursive=True, page_size=1000)
    return list(catalog.stub.ListItems(request, timeout=30).items)


ORDERS = st.lists(st.tuples(FIELDS, st.booleans()), max_size=5)
# Mostly filters a real client could send (so that accepted ones are compared with
# filter_match), the rest hostile through and through.
TREES = st.one_of(filter_trees(PLAUSIBLE_CONDITIONS, plausible=True),
                  filter_trees(PLAUSIBLE_CONDITIONS, plausible=True), filter_trees())
SORT_FIELDS = st.sampled_from(["name", "dir", "filename", "size", "created_at", "updated_at",
                               "mimetype", "type", "metadata.user.camera",
                               "metadata.user.lot.number", "metadata.user.note",
                               "metadata.user.tags", "metadata.system.width"])
PLAUSIBLE_ORDERS = st.lists(st.tuples(SORT_FIELDS, st.booleans()), max_size=4)


@given(tree=TREES, order=st.one_of(PLAUSIBLE_ORDERS, PLAUSIBLE_ORDERS, ORDERS),
       page_size=st.sampled_from([0, 1, 3, 3, 7, -1, 5000]),
       total=st.booleans())
@hostile(max_examples=200)
def test_listing_with_hostile_filters(catalog: InProcessCatalog, dataset_id: str, tree: Any,
                                      order: list[tuple[str, bool]], page_size: int,
                                      total: bool) -> None:
    stub = catalog.stub
    request = api.ListItemsRequest(dataset_id=dataset_id, recursive=True, page_size=page_size,
                                   include_total_size=total)
    build_filter(request.filter, tree)
    for field, descending in order:
        request.order_by.add(field=field, descending=descending)
    before = catalog.count_rows(dataset_id)
    seen: list[str] = []
    answer = attempt(lambda: stub.ListItems(request, timeout=30), tree, order)
    while answer.ok:
        page = answer.response
        seen += [item.id for item in page.items]
        if total:
            assert page.HasField("total_size")
        if not page.next_page_token:
            break
        assert page.items, "an empty page with a next_page_token"
        request.page_token = page.next_page_token
        answer = attempt(lambda: stub.ListItems(request, timeout=30))
        assert answer.ok, "the next page of an accepted query failed"
    if answer.ok:
        assert len(seen) == len(set(seen)), "an item on two pages"
        items = _everything(catalog, dataset_id)
        expected = {item.id for item in items if matches(item, request.filter)}
        assert set(seen) == expected, "the catalog and filter_match disagree"
        if total:
            assert answer.response.total_size == len(expected)
    assert catalog.count_rows(dataset_id) == before
    assert_serving(catalog.channel, lambda: _everything(catalog, dataset_id))


@given(tree=TREES, merge=st.booleans())
@hostile(max_examples=40)
def test_update_matching_items_with_hostile_filters(catalog: InProcessCatalog,
                                                    dataset_id: str, tree: Any,
                                                    merge: bool) -> None:
    stub = catalog.stub
    request = api.UpdateMatchingItemsRequest(
        dataset_id=dataset_id,
        update_mask=field_mask_pb2.FieldMask(paths=["metadata.user.*" if merge
                                                    else "metadata.user"]))
    build_filter(request.filter, tree)
    items = _everything(catalog, dataset_id)
    before = catalog.count_rows(dataset_id)
    answer = attempt(lambda: stub.UpdateMatchingItems(request, timeout=30), tree)
    after = _everything(catalog, dataset_id)
    if not answer.ok:
        assert after == items and catalog.count_rows(dataset_id) == before
    else:
        # An empty merge patch changes only the update time; replacing with {} is undone
        # below, so the seeds stay as they were for the next example.
        expected = [item for item in items if matches(item, request.filter)]
        assert answer.response.updated_items == len(expected)
        assert catalog.count_rows(dataset_id) == (before[0], before[1] + len(expected))
        if not merge:
            _restore(catalog, expected)
    assert_serving(catalog.channel, lambda: _everything(catalog, dataset_id))


def _restore(catalog: InProcessCatalog, items: list[resources_pb2.Item]) -> None:
    for item in items:
        request = api.UpdateItemRequest(
            update_mask=field_mask_pb2.FieldMask(paths=["metadata.user"]))
        request.item.id = item.id
        request.item.metadata.user.CopyFrom(item.metadata.user)
        catalog.stub.UpdateItem(request, timeout=30)


FORGED_KEYS = st.lists(st.one_of(JSON, st.sampled_from([
    10**30, -(10**30), 2**63, "\x00", "a\x00b", "x" * 5000, "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00", "2026-11-24T10:00:00Z", "not a time", float("nan"),
    float("inf"), [1, [2]], {"a": 1}, True, None])), max_size=8)
GARBAGE_TOKENS = st.one_of(
    st.sampled_from(["!", "====", "x" * 5000, "%00", "e30=", "bnVsbA==", "W10=", "\u00e9",
                     base64.urlsafe_b64encode(b"\xff\xfe").decode()]),
    st.binary(max_size=64).map(lambda data: base64.urlsafe_b64encode(data).decode()),
    st.text(max_size=40),
)


@given(order=PLAUSIBLE_ORDERS, keys=FORGED_KEYS, garbage=GARBAGE_TOKENS, forge=st.booleans())
@example(order=[], keys=["\x00"], garbage="", forge=True).via("NUL: PostgreSQL refuses it")
@example(order=[("created_at", False)], keys=[0, 0, "0001-01-01T00:00:00+14:00", "x"],
         garbage="", forge=True).via("a time out of range in UTC")
@example(order=[("size", True)], keys=[10**30, "x"], garbage="", forge=True)
@hostile(max_examples=60)
def test_forged_page_tokens(catalog: InProcessCatalog, dataset_id: str,
                            order: list[tuple[str, bool]], keys: list[Any], garbage: str,
                            forge: bool) -> None:
    """A page token is opaque, but a client can take a real one apart and change its keys:
    the catalog must refuse such a token cleanly (or serve a page), never fail inside the
    database."""
    stub = catalog.stub
    request = api.ListItemsRequest(dataset_id=dataset_id, recursive=True, page_size=1)
    for field, descending in order:
        request.order_by.add(field=field, descending=descending)
    first = attempt(lambda: stub.ListItems(request, timeout=30), order)
    if not first.ok:
        return
    real = first.response.next_page_token
    token = garbage
    if forge and real:
        data = json.loads(base64.urlsafe_b64decode(real))
        data["k"] = keys if keys else data["k"]
        text = json.dumps(data, allow_nan=True, ensure_ascii=False)
        token = base64.urlsafe_b64encode(text.encode()).decode()
    request.page_token = token
    before = catalog.count_rows(dataset_id)
    answer = attempt(lambda: stub.ListItems(request, timeout=30), token, keys)
    if answer.ok:
        everything = {item.id for item in _everything(catalog, dataset_id)}
        assert {item.id for item in answer.response.items} <= everything
    assert catalog.count_rows(dataset_id) == before
    assert_serving(catalog.channel, lambda: _everything(catalog, dataset_id))


def test_glob_patterns_match_in_linear_time(catalog: InProcessCatalog, dataset_id: str) -> None:
    """A glob with many wildcards over long names answers (a backtracking regex would take
    ages on SQLite, where REGEXP runs Python's re)."""
    stub = catalog.stub
    long_name = "a" * 250
    create_item(stub, dataset_id, "/globs", long_name)
    request = api.ListItemsRequest(dataset_id=dataset_id, dir="/globs")
    request.filter.condition.field = "name"
    request.filter.condition.operator = filters_pb2.FILTER_OPERATOR_GLOB
    request.filter.condition.value.string_value = "*a" * 20 + "b"
    assert list(stub.ListItems(request, timeout=60).items) == []
    request.filter.condition.value.string_value = "*a" * 20 + "*"
    assert [item.name for item in stub.ListItems(request, timeout=60).items] == [long_name]


@given(pattern=st.text(st.sampled_from(list("ab/*?.\n")), max_size=12),
       text=st.text(st.sampled_from(list("ab/.\n")), max_size=12))
@hostile(max_examples=400)
def test_sqlite_glob_matcher_agrees_with_the_regex(pattern: str, text: str) -> None:
    """glob_match's NFA (SQLite) and glob_regex (PostgreSQL) are the same language."""
    expected = re.search(glob_regex(pattern), text, re.DOTALL) is not None
    assert _Nfa(_program(pattern)).matches(text) == expected
    assert glob_matcher(pattern)(text) == expected
