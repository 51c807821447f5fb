"""Event retention on SQLite and PostgreSQL: the sweep deletes events past the retention in
stream order, and a cursor (explicit, a group's committed one, a leased group's position)
older than what it deleted answers OUT_OF_RANGE instead of skipping events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from corral.catalog.v1 import catalog_service_pb2 as api
from services.catalog import retention
from services.catalog.repository import Store
from tests.catalog.conftest import (
    InProcessCatalog,
    create_item,
    expect_error,
    new_dataset,
    take_events,
)
from tests.catalog.conftest import take_responses as take
from tests.catalog.test_event_leases import leased

OUT_OF_RANGE = grpc.StatusCode.OUT_OF_RANGE
LATER = timedelta(hours=1)


@pytest.fixture
def fresh_catalog(database_url: str) -> Iterator[InProcessCatalog]:
    server = InProcessCatalog(database_url)
    yield server
    server.stop()


def sweep(catalog: InProcessCatalog, now: datetime) -> int:
    """Everything written before `now` minus one minute is past the retention."""
    return retention.sweep(Store(catalog.db), 60, now=now)


def test_sweep_deletes_only_old_events_and_old_cursors_answer_out_of_range(fresh_catalog):
    stub = fresh_catalog.stub
    dataset = new_dataset(stub)
    for n in range(3):
        create_item(stub, dataset.id, "/", f"old-{n}.jpg")
    old = take_events(stub, api.SubscribeRequest(), 3)
    stub.AckEvents(api.AckEventsRequest(consumer_group="behind", cursor=old[0].cursor))
    stub.AckEvents(api.AckEventsRequest(consumer_group="current", cursor=old[2].cursor))

    assert sweep(fresh_catalog, datetime.now(UTC) - LATER) == 0  # nothing is that old
    assert sweep(fresh_catalog, datetime.now(UTC) + LATER) == 3
    create_item(stub, dataset.id, "/", "new.jpg")

    expect_error(OUT_OF_RANGE, lambda: take_events(
        stub, api.SubscribeRequest(start_cursor=old[0].cursor), 1), "start_cursor",
        "retention")
    expect_error(OUT_OF_RANGE, lambda: take_events(
        stub, api.SubscribeRequest(consumer_group="behind"), 1), "'behind'")
    # The newest deleted cursor missed nothing; neither did a group that had acked it.
    for request in (api.SubscribeRequest(start_cursor=old[2].cursor),
                    api.SubscribeRequest(consumer_group="current"),
                    api.SubscribeRequest()):  # earliest: the oldest retained event
        assert [e.item.name for e in take_events(stub, request, 1)] == ["new.jpg"]
    # A new leased group starts at the oldest retained event.
    assert [r.event.item.name for r in take(stub, leased("leased-new", dataset.id), 1)] \
        == ["new.jpg"]
    stub.AckEvents(api.AckEventsRequest(consumer_group="behind", cursor=old[2].cursor))
    assert [e.item.name for e in take_events(
        stub, api.SubscribeRequest(consumer_group="behind"), 1)] == ["new.jpg"]


def test_a_leased_group_behind_the_retention(fresh_catalog):
    stub = fresh_catalog.stub
    dataset = new_dataset(stub)
    create_item(stub, dataset.id, "/", "a.jpg")
    [first] = take(stub, leased("workers", dataset.id, max_in_flight=1), 1)
    create_item(stub, dataset.id, "/", "b.jpg")  # not yet scanned by the group
    [_, missed] = take_events(stub, api.SubscribeRequest(dataset_id=dataset.id), 2)
    sweep(fresh_catalog, datetime.now(UTC) + LATER)
    expect_error(OUT_OF_RANGE, lambda: take(stub, leased("workers", dataset.id), 1),
                 "'workers'", "retention", missed.cursor)
    create_item(stub, dataset.id, "/", "c.jpg")
    # Acknowledging through the deleted events moves the group past the gap.
    stub.AckEvents(api.AckEventsRequest(consumer_group="workers", cursor=missed.cursor))
    assert [r.event.item.name for r in take(stub, leased("workers", dataset.id), 1)] \
        == ["c.jpg"]
    assert first.event.item.name == "a.jpg"
