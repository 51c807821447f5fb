"""The bulk load path: items, folders and CREATED events in batches, on both databases."""

from __future__ import annotations

import pytest

from corral.errors import AlreadyExists, InvalidArgument
from services.catalog import bulk, datasets
from services.catalog.app import open_database
from services.catalog.records import EventFilter, EventType, ItemType, Position
from services.catalog.repository import Store


def entry(i: int, dir: str = "/in/a") -> bulk.BulkItem:
    return bulk.BulkItem(dir=dir, name=f"f{i}.jpg", size=i, sha256="a" * 64,
                         blob_key=f"blobs/{i}", user_metadata={"n": i, "s": "é\"'"},
                         system_metadata={"mimetype": "image/jpeg"})


def test_bulk_insert_writes_items_folders_and_events(database_url):
    db = open_database(database_url)
    store = Store(db)
    dataset = datasets.create_dataset(store, "bulk", "", "")
    assert bulk.insert_items(store, dataset.id, (entry(i) for i in range(7)), batch_size=3) == 7
    assert bulk.insert_items(store, dataset.id, [entry(9, "/in/b/c")]) == 1
    with store.read() as repo:
        items = {item.filename: item for item in repo.dataset_items(dataset.id)}
        events = repo.read_events(Position(0, 0), 100, EventFilter(dataset_id=dataset.id))
    assert sorted(f for f, i in items.items() if i.type == ItemType.DIR) == [
        "/in", "/in/a", "/in/b", "/in/b/c"]
    assert items["/in/a/f3.jpg"].metadata_user == {"n": 3, "s": "é\"'"}
    assert items["/in/a/f3.jpg"].metadata_system == {"mimetype": "image/jpeg"}
    assert [e.type for e in events] == [EventType.CREATED] * 8
    # The spliced payload text decodes to exactly what Item.to_payload gives.
    for event in events:
        assert event.item.to_payload() == items[event.item.filename].to_payload()
    with pytest.raises(AlreadyExists):
        bulk.insert_items(store, dataset.id, [entry(100), entry(3)])
    with pytest.raises(InvalidArgument):
        bulk.insert_items(store, dataset.id, [bulk.BulkItem("/", "x", 1, "b" * 64, "k",
                                                            {"bad": "\x00"})])
    with store.read() as repo:
        assert len(repo.dataset_items(dataset.id)) == 12
    db.dispose()
