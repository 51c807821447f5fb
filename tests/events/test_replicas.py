"""Two catalog processes over one PostgreSQL database serve one leased group: subscribers on
both replicas share its events, and every event is leased to exactly one of them (the lease
rows are claimed with FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import catalog_service_pb2_grpc as api_grpc
from corral.rpc import open_channel
from tests.events.consumers import LeasedConsumer
from tests.preprocess.catalog_helpers import wait_for

ITEMS = 400
BATCH = 50
ENV = {"CORRAL_GRACE_SECONDS": "1", "CORRAL_LOG_LEVEL": "info",
       "CORRAL_CATALOG_EVENT_POLL_SECONDS": "0.1"}


def create_batch(stub: api_grpc.CatalogServiceStub, dataset_id: str, start: int) -> list[str]:
    requests = [api.CreateItemRequest(
        dataset_id=dataset_id, dir="/", name=f"{n:04d}.jpg", size=1,
        sha256=hashlib.sha256(str(n).encode()).hexdigest(),
        blob_key=f"items/{dataset_id}/{uuid.uuid4().hex}") for n in range(start, start + BATCH)]
    reply = stub.BatchCreateItems(api.BatchCreateItemsRequest(requests=requests), timeout=30)
    return [result.created.item.id for result in reply.results]


def test_two_replicas_lease_each_event_once(pg_database_factory, service_factory):
    env = {**ENV, "CORRAL_DATABASE_URL": pg_database_factory()}
    replicas = [service_factory("catalog", env=env) for _ in range(2)]
    channels = [open_channel(replica.addr) for replica in replicas]
    stubs = [api_grpc.CatalogServiceStub(channel) for channel in channels]
    dataset_id = stubs[0].CreateDataset(api.CreateDatasetRequest(name="shared"),
                                        timeout=10).dataset.id
    # Long leases: none expires during the test, so any second delivery would be a bug.
    members = [LeasedConsumer(replica.addr, f"r{r}-m{m}", "shared", dataset_id,
                              lease_seconds=300, max_in_flight=8).start()
               for r, replica in enumerate(replicas) for m in range(2)]
    try:
        created = [item_id for start in range(0, ITEMS, BATCH)
                   for item_id in create_batch(stubs[(start // BATCH) % 2], dataset_id, start)]
        wait_for(lambda: sum(len(m.deliveries) for m in members) >= ITEMS, 60,
                 "every event delivered")
        states = [wait_for(lambda stub=stub: (s := stub.GetConsumerGroup(
            api.GetConsumerGroupRequest(consumer_group="shared"), timeout=10))
            .pending_events == 0 and s.leased_events == 0 and s, 30,
            "every event acknowledged") for stub in stubs]
    finally:
        for member in members:
            member.stop()
        for channel in channels:
            channel.close()

    counts = Counter(item_id for member in members for item_id in member.item_ids)
    assert set(counts) == set(created) and len(created) == ITEMS
    assert set(counts.values()) == {1}
    assert all(d.attempt == 1 for member in members for d in member.deliveries)
    by_replica = [sum(len(m.deliveries) for m in members if m.name.startswith(f"r{r}-"))
                  for r in range(2)]
    assert all(by_replica), by_replica  # both replicas served the group
    assert states[0].committed_cursor == states[1].committed_cursor == states[0].head_cursor
