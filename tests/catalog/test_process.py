"""The catalog as its own process (python -m services.catalog): migrations at start, data and
consumer-group cursors surviving a restart."""

from __future__ import annotations

import hashlib
import time
import uuid

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import catalog_service_pb2_grpc as api_grpc
from corral.rpc import open_channel
from services.blobstore import open_blob_store
from services.catalog import migrate
from services.catalog.db import Database
from services.common.settings import BlobStoreSettings
from tests.catalog.conftest import create_item, new_dataset, take_events

FAST_STOP = {"CORRAL_GRACE_SECONDS": "1"}


def test_restart_keeps_items_and_the_group_cursor(database_url, service_factory):
    env = {"CORRAL_DATABASE_URL": database_url, **FAST_STOP}
    first = service_factory("catalog", env=env)
    with open_channel(first.addr) as channel:
        stub = api_grpc.CatalogServiceStub(channel)
        dataset = new_dataset(stub)
        made = [create_item(stub, dataset.id, "/r", f"{n}.jpg").item for n in range(3)]
        got = take_events(stub, api.SubscribeRequest(consumer_group="workers"), 3)
        assert [e.item_id for e in got] == [item.id for item in made]
        stub.AckEvents(api.AckEventsRequest(consumer_group="workers", cursor=got[1].cursor))
    assert first.stop() == 0

    db = Database(database_url)
    assert migrate.current_revision(db) == migrate.head_revision()
    db.dispose()

    second = service_factory("catalog", env=env)  # migrations again: a no-op
    with open_channel(second.addr) as channel:
        stub = api_grpc.CatalogServiceStub(channel)
        assert stub.GetItem(api.GetItemRequest(item_id=made[2].id)).item == made[2]
        state = stub.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group="workers"))
        assert (state.committed_cursor, state.head_cursor) == (got[1].cursor, got[2].cursor)
        assert state.pending_events == 1
        resumed = take_events(stub, api.SubscribeRequest(consumer_group="workers"), 1)
        assert [e.cursor for e in resumed] == [got[2].cursor]


def test_default_sqlite_and_fs_blob_store_in_the_data_dir(service_factory, tmp_path):
    service = service_factory("catalog", env=FAST_STOP)
    blobs = open_blob_store(BlobStoreSettings(), tmp_path / "data")  # what the service opened
    with open_channel(service.addr) as channel:
        stub = api_grpc.CatalogServiceStub(channel)
        dataset = new_dataset(stub)
        key = f"items/{dataset.id}/{uuid.uuid4().hex}"
        blobs.put_bytes(key, b"abc")
        item = create_item(stub, dataset.id, "/", "a.bin", blob_key=key,
                           sha256=hashlib.sha256(b"abc").hexdigest()).item
        stub.DeleteItem(api.DeleteItemRequest(item_id=item.id))
        assert not blobs.exists(key)  # deleted after the commit, through the real store
    assert (tmp_path / "data" / "catalog.db").exists()


def test_sigterm_ends_open_subscriptions_without_waiting_out_the_grace(service_factory):
    service = service_factory("catalog", env={"CORRAL_GRACE_SECONDS": "30"})
    with open_channel(service.addr) as channel:
        stub = api_grpc.CatalogServiceStub(channel)
        stream = stub.Subscribe(api.SubscribeRequest())
        dataset = new_dataset(stub)
        create_item(stub, dataset.id, "/", "a.jpg")
        assert next(stream).event.item.name == "a.jpg"
        started = time.monotonic()
        assert service.stop() == 0
        assert time.monotonic() - started < 10, "an open Subscribe held the stop"
        assert list(stream) == []  # the stream ended cleanly; subscribers resume from cursors
