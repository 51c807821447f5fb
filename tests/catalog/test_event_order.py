"""PostgreSQL hands out sequence numbers in insert order but transactions commit in any order;
the stream must still never step over an event that commits late."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from services.catalog import datasets, events
from services.catalog.app import open_database
from services.catalog.records import EventFilter, EventType, Item, ItemType
from services.catalog.repository import Repository, Store


def sample_item(dataset_id: str, name: str) -> Item:
    now = datetime.now(UTC)
    return Item(id=uuid.uuid4().hex, dataset_id=dataset_id, dir="/", name=name,
                filename=f"/{name}", type=ItemType.FILE, size=1, sha256="0" * 64,
                blob_key=f"items/{name}", description="", metadata_system={},
                metadata_user={}, create_time=now, update_time=now)


@pytest.fixture
def pg_store(pg_database_factory):
    db = open_database(pg_database_factory())
    yield Store(db)
    db.dispose()


def test_late_committing_transaction_is_delivered_not_skipped(pg_store):
    db = pg_store.db
    dataset = datasets.create_dataset(pg_store, "order")
    first, second = sample_item(dataset.id, "a"), sample_item(dataset.id, "b")

    def names(after=events.ORIGIN) -> list[str]:
        return [e.item.name for e in events.read_batch(pg_store, after, EventFilter())]

    with db.begin_write() as older:
        older.execute(text("SELECT pg_current_xact_id()"))  # the older transaction id
        with db.begin_write() as newer:  # commits first, with the smaller seq
            Repository(newer, db).append_events([(EventType.CREATED, second)],
                                                datetime.now(UTC))
        Repository(older, db).append_events([(EventType.CREATED, first)], datetime.now(UTC))
        assert names() == []  # "b" is committed but waits for the in-flight older transaction
        state = events.consumer_group_state(pg_store, "g")
        assert (state.head, state.pending_events) == (None, 0)
    delivered = events.read_batch(pg_store, events.ORIGIN, EventFilter())
    assert [e.item.name for e in delivered] == ["a", "b"]
    assert delivered[0].position.seq > delivered[1].position.seq
    assert names(delivered[0].position) == ["b"]
    assert names(delivered[1].position) == []
