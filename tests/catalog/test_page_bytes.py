"""List pages bounded by bytes (CORRAL_CATALOG_MAX_PAGE_BYTES, half of the gRPC message
limit by default): items with ~900 KB of user metadata each would overflow a 16 MiB response
long before 1000 of them, so a page ends early and its token continues right after its last
item; every item comes back exactly once, in order, on SQLite and PostgreSQL. ListDatasets
and ListTriggers end their pages the same way."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.protobuf import struct_pb2

from catalog.conftest import InProcessCatalog, create_item, new_dataset
from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import catalog_service_pb2_grpc as api_grpc
from corral.catalog.v1 import filters_pb2
from corral.catalog.v1 import resources_pb2 as res
from corral.catalog.v1 import triggers_pb2 as tpb
from corral.client import Client
from services.catalog.config import CatalogConfig, CatalogLimits
from services.catalog.paging import FIRST_BATCH, GROWTH, PageBudget
from services.catalog.queries import _fill_page

MIB = 1024 * 1024
DEFAULT_PAGE_BYTES = 8 * MIB  # half of CORRAL_MAX_MESSAGE_BYTES's 16 MiB
LARGE = 20  # 20 x 900 KB: 17 MiB of items, more than one message may hold
SMALL = 5


def _large_metadata(i: int) -> dict[str, Any]:
    return {"i": i, "blob": f"{i:04d}" * (900_000 // 4)}


@pytest.fixture(scope="module")
def large_dataset(catalog: InProcessCatalog) -> tuple[str, dict[str, int]]:
    """A dataset of 20 items with ~900 KB of metadata and 5 small ones between them: their
    sizes by name."""
    dataset = new_dataset(catalog.stub, "pages")
    sizes: dict[str, int] = {}
    for i in range(LARGE):
        sizes[f"item-{i:02d}.bin"] = 1000 + i
        create_item(catalog.stub, dataset.id, "/", f"item-{i:02d}.bin", size=1000 + i,
                    user_metadata=_large_metadata(i))
        if i % 4 == 1:
            sizes[f"item-{i:02d}-small.bin"] = i
            create_item(catalog.stub, dataset.id, "/", f"item-{i:02d}-small.bin", size=i,
                        user_metadata={"small": True})
    assert len(sizes) == LARGE + SMALL
    return dataset.id, sizes


def _pages(call: Callable[[Any], Any], request: Any) -> Iterator[Any]:
    while True:
        response = call(request, timeout=60)
        yield response
        if not response.next_page_token:
            return
        request.page_token = response.next_page_token


def _check_pages(responses: list[Any], field: str, budget: int) -> list[Any]:
    entries = []
    for response in responses:
        page = list(getattr(response, field))
        assert page, "an empty page before the end"
        # Within the budget, but for a page of one entry (always returned, whatever its size).
        assert len(page) == 1 or sum(e.ByteSize() for e in page) <= budget
        entries += page
    return entries


def test_a_page_of_1000_large_items_ends_early_and_the_next_continues_after_it(
        stub: api_grpc.CatalogServiceStub, large_dataset: tuple[str, dict[str, int]]) -> None:
    dataset_id, sizes = large_dataset
    responses = list(_pages(stub.ListItems, api.ListItemsRequest(
        dataset_id=dataset_id, recursive=True, page_size=1000)))
    listed = _check_pages(responses, "items", DEFAULT_PAGE_BYTES)
    assert len(responses) >= 3, [len(r.items) for r in responses]
    assert [item.name for item in listed] == sorted(sizes)  # each once, in filename order
    for item in listed:
        if "small" not in item.name:
            assert item.metadata.user["blob"] == _large_metadata(int(item.name[5:7]))["blob"]


def test_byte_bounded_pages_keep_a_sort_order_and_a_filter(
        stub: api_grpc.CatalogServiceStub, large_dataset: tuple[str, dict[str, int]]) -> None:
    dataset_id, sizes = large_dataset
    at_least_5 = filters_pb2.ItemFilter(condition=filters_pb2.FilterCondition(
        field="size", operator=filters_pb2.FILTER_OPERATOR_GTE,
        value=struct_pb2.Value(number_value=5)))
    request = api.ListItemsRequest(
        dataset_id=dataset_id, recursive=True, page_size=1000, filter=at_least_5,
        order_by=[filters_pb2.ItemOrder(field="size", descending=True)])
    listed = _check_pages(list(_pages(stub.ListItems, request)), "items", DEFAULT_PAGE_BYTES)
    assert [item.name for item in listed] == sorted(
        (name for name, size in sizes.items() if size >= 5), key=lambda n: -sizes[n])


def test_the_sdk_follows_the_early_ends(catalog: InProcessCatalog,
                                        large_dataset: tuple[str, dict[str, int]]) -> None:
    dataset_id, sizes = large_dataset
    with Client(catalog_addr=catalog.addr) as client:
        assert [item["name"] for item in client.list_items({"id": dataset_id},
                                                           recursive=True)] == sorted(sizes)


@pytest.fixture(scope="module")
def small_budget_catalog(limited_catalog: Callable[[CatalogLimits], InProcessCatalog]
                         ) -> InProcessCatalog:
    """Its own catalog whose pages hold 100 KB of entries, on a database of the same kind."""
    return limited_catalog(CatalogLimits(max_page_bytes=100_000))


def test_datasets_and_triggers_pages_end_early_too(
        small_budget_catalog: InProcessCatalog) -> None:
    stub = small_budget_catalog.stub
    tag = uuid.uuid4().hex[:6]
    description = "d" * 40_000  # two to a 100 KB page
    for i in range(5):
        stub.CreateDataset(api.CreateDatasetRequest(name=f"{tag}-{i}",
                                                    description=description), timeout=10)
    responses = list(_pages(stub.ListDatasets, api.ListDatasetsRequest(page_size=1000)))
    listed = [d for d in _check_pages(responses, "datasets", 100_000) if d.name.startswith(tag)]
    assert [d.name for d in listed] == [f"{tag}-{i}" for i in range(5)]
    assert len(responses) >= 3

    target = new_dataset(stub, "trig")
    for i in range(5):
        stub.CreateTrigger(tpb.CreateTriggerRequest(trigger=tpb.Trigger(
            name=f"t{tag}{i}", dataset_id=target.id, description=description,
            actions=[res.EVENT_TYPE_CREATED])), timeout=10)
    responses = list(_pages(stub.ListTriggers, tpb.ListTriggersRequest(page_size=1000)))
    listed = [t for t in _check_pages(responses, "triggers", 100_000)
              if t.name.startswith(f"t{tag}")]
    assert [t.name for t in listed] == [f"t{tag}{i}" for i in range(5)]
    assert len(responses) >= 3


class _Rows:
    """Stands for a listing's rows: entries are their own sizes and sort keys."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes, self.read = sizes, 0

    def fetch(self, count: int) -> list[tuple[Any, tuple[int, ...]]]:
        batch = self.sizes[self.read:self.read + count]
        self.read += len(batch)
        return [(size, (self.read - len(batch) + i,)) for i, size in enumerate(batch)]

    def page_key(self, raw_key: tuple[int, ...]) -> tuple[int, ...]:
        return raw_key


def _fill(sizes: list[int], limit: int, max_bytes: int) -> tuple[list[int], Any, int]:
    rows = _Rows(sizes)
    page, key = _fill_page(rows, limit, PageBudget(lambda size: size, max_bytes))  # type: ignore[arg-type]
    return page, key, rows.read


def test_a_page_reads_few_rows_beyond_what_it_returns() -> None:
    # Large entries: 9 fit; the first read is 16 rows, not the 1001 the page size allows.
    page, key, read = _fill([900] * 5000, 1000, 8192)
    assert (len(page), key, read) == (9, (8,), FIRST_BATCH)
    # Small ones: the page is full by count after a few growing reads, plus the one row
    # that tells more follow.
    page, key, read = _fill([10] * 5000, 1000, 8192 * 1000)
    assert (len(page), key, read) == (1000, (999,), 1001)
    # The end of the listing: no token.
    page, key, read = _fill([10] * 30, 1000, 8192)
    assert (len(page), key, read) == (30, None, 30)
    # One entry larger than the budget still makes a page; the next starts after it.
    page, key, _ = _fill([10_000, 1, 1], 1000, 8192)
    assert (page, key) == ([10_000], (0,))
    # Entries that grow suddenly: each read is at most GROWTH times the one before.
    rows = _Rows([1] * 16 + [800] * 1000)
    page, key = _fill_page(rows, 1000, PageBudget(lambda size: size, 8192))  # type: ignore[arg-type]
    assert len(page) == 16 + 10 and rows.read <= FIRST_BATCH * (1 + GROWTH)


def test_budget_fitting_keeps_at_least_one_entry() -> None:
    budget = PageBudget(len, 10)
    assert budget.fitting(["x" * 50, "y"]) == 1
    assert budget.fitting(["x" * 5, "y" * 5, "z"]) == 2
    assert budget.fitting([]) == 0


def test_the_page_budget_setting_defaults_to_half_the_message_limit() -> None:
    assert CatalogConfig().catalog_limits() == CatalogLimits(64, DEFAULT_PAGE_BYTES)
    assert CatalogConfig(max_message_bytes=65536).catalog_limits().max_page_bytes == 32768
    assert CatalogConfig(max_page_bytes=1000).catalog_limits().max_page_bytes == 1000
    for wrong, setting in (({"max_page_bytes": 9 * MIB}, "CORRAL_CATALOG_MAX_PAGE_BYTES"),
                           ({"max_page_bytes": -1}, "CORRAL_CATALOG_MAX_PAGE_BYTES"),
                           ({"max_subscriptions_per_key": -1},
                            "CORRAL_CATALOG_MAX_SUBSCRIPTIONS_PER_KEY")):
        with pytest.raises(SystemExit, match=setting):
            CatalogConfig(**wrong).catalog_limits()
