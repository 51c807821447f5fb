"""CreateBatcher: concurrent creates share BatchCreateItems calls, bounded in entries and in
bytes so that no batch nears the gRPC message limit."""

from __future__ import annotations

import asyncio

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import resources_pb2
from services.upload.batching import MAX_BATCH_BYTES, CreateBatcher


class RecordingCatalog:
    def __init__(self) -> None:
        self.batches: list[list[catalog_pb2.CreateItemRequest]] = []

    async def batch_create_items(self, requests: list[catalog_pb2.CreateItemRequest],
                                 ) -> list[catalog_pb2.CreateItemResponse]:
        self.batches.append(requests)
        return [catalog_pb2.CreateItemResponse(item=resources_pb2.Item(name=r.name))
                for r in requests]


def create_all(requests: list[catalog_pb2.CreateItemRequest], **limits: int,
               ) -> tuple[list[str], RecordingCatalog]:
    catalog = RecordingCatalog()

    async def run() -> list[str]:
        batcher = CreateBatcher(catalog, **limits)  # type: ignore[arg-type]
        replies = await asyncio.gather(*(batcher.create(r) for r in requests))
        await batcher.close()
        return [reply.item.name for reply in replies]

    return asyncio.run(run()), catalog


def test_batches_are_split_by_size() -> None:
    """30 entries of 600 KB would be an 18 MB message; each batch stays under 4 MiB."""
    requests = [catalog_pb2.CreateItemRequest(name=f"f{i}", description="d" * 600_000)
                for i in range(30)]
    names, catalog = create_all(requests)
    assert names == [f"f{i}" for i in range(30)]
    assert len(catalog.batches) > 1
    assert all(sum(r.ByteSize() for r in batch) <= MAX_BATCH_BYTES for batch in catalog.batches)
    assert [r.name for batch in catalog.batches for r in batch] == names


def test_an_entry_larger_than_the_budget_goes_alone_and_small_ones_share() -> None:
    requests = [catalog_pb2.CreateItemRequest(name="small-1"),
                catalog_pb2.CreateItemRequest(name="huge", description="d" * 2000),
                catalog_pb2.CreateItemRequest(name="small-2")]
    names, catalog = create_all(requests, max_batch_bytes=1000)
    assert names == ["small-1", "huge", "small-2"]
    assert [[r.name for r in batch] for batch in catalog.batches] == [
        ["small-1"], ["huge"], ["small-2"]]
    names, catalog = create_all([catalog_pb2.CreateItemRequest(name=f"s{i}") for i in range(7)],
                                max_batch=3)
    assert [len(batch) for batch in catalog.batches] == [3, 3, 1]
