"""The databases use the indexes for the common queries: equality and range on an indexed
metadata.user key, equality on any metadata.user key (PostgreSQL's GIN index), a range on
size, mimetype, and folder listings (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL)."""

from __future__ import annotations

import pytest

from corral.client.filters import to_filter
from services.catalog import bulk, datasets, metadata_indexes
from services.catalog.app import open_database
from services.catalog.filter_convert import filter_in
from services.catalog.filters import check_filter, check_order
from services.catalog.records import ItemQuery
from services.catalog.repository import Store

COUNT = 4000
CAMERA_INDEX = metadata_indexes.index_name(("camera",))


@pytest.fixture
def loaded(database_url: str):
    db = open_database(database_url, "camera")
    store = Store(db)
    dataset = datasets.create_dataset(store, "plans", "", "")
    bulk.insert_items(store, dataset.id, (bulk.BulkItem(
        dir=f"/folder{i % 40}", name=f"f{i:05d}.jpg", size=i * 10, sha256="0" * 64,
        blob_key=f"blobs/{i}", user_metadata={"camera": i % 500, "lot": f"L{i}", "n": i},
        system_metadata={"mimetype": "image/png" if i % 100 == 0 else "image/jpeg"})
        for i in range(COUNT)))
    yield store, dataset.id
    db.dispose()


def plan(store: Store, dataset_id: str, spec=None, order=(), dir: str = "/",
         recursive: bool = True) -> str:
    query = ItemQuery(dataset_id, dir, recursive,
                      check_filter(filter_in(to_filter(spec).to_proto())) if spec else None,
                      check_order([(key.lstrip("-"), key.startswith("-")) for key in order]))
    with store.read() as repo:
        return repo.explain_items(query)


@pytest.mark.parametrize(("spec", "order", "index"), [
    ("metadata.user.camera=42", (), CAMERA_INDEX),
    ("metadata.user.camera=[1,2]", (), CAMERA_INDEX),
    (["metadata.user.camera>=10", "metadata.user.camera<12"], ("-size",), CAMERA_INDEX),
    (["metadata.user.camera=1 | metadata.user.camera=2", "size>100"], (), CAMERA_INDEX),
    (["metadata.user.camera=7 | metadata.user.camera=9", "metadata.user.n<3000", "size>100"],
     (), CAMERA_INDEX),
    ("size>39900", (), "ix_items_dataset_size_id"),
    (["size>=1000", "size<1200"], ("name",), "ix_items_dataset_size_id"),
    ("mimetype=image/png", (), "ix_items_dataset_mimetype"),
    (None, ("-size",), "ix_items_dataset_size_id"),
    (None, ("created_at",), "ix_items_dataset_create_time_id"),
])
def test_indexed_filters_and_orders_use_their_index(loaded, spec, order, index):
    store, dataset_id = loaded
    explained = plan(store, dataset_id, spec, order)
    assert index in explained, explained


def test_folder_listing_walks_the_folder_index(loaded):
    store, dataset_id = loaded
    explained = plan(store, dataset_id, dir="/folder7", recursive=False)
    assert "ix_items_dataset_dir_filename" in explained, explained
    assert "TEMP B-TREE" not in explained and "Sort" not in explained, explained  # no sort


def test_equality_on_any_user_key_uses_gin_on_postgresql(loaded):
    store, dataset_id = loaded
    if not store.db.is_postgres:
        pytest.skip("SQLite has no GIN: only declared keys (CORRAL_CATALOG_METADATA_INDEXES) "
                    "have an index there")
    explained = plan(store, dataset_id, "metadata.user.lot=L42")
    assert "ix_items_metadata_user" in explained, explained
