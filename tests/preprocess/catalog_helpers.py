"""Driving a real catalog over gRPC from the tests: datasets, items whose blobs the test puts
into the shared fs blob store itself, and polling with deadlines."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from corral.catalog.v1 import catalog_service_pb2 as pb
from corral.catalog.v1 import catalog_service_pb2_grpc as pb_grpc
from corral.catalog.v1 import resources_pb2
from corral.preprocess.v1 import preprocess_service_pb2 as pre_pb
from corral.preprocess.v1 import preprocess_service_pb2_grpc as pre_grpc
from corral.rpc import open_channel
from corral.structs import struct_to_dict
from services.blobstore import open_blob_store
from services.blobstore.base import BlobStore
from services.common.settings import BlobStoreSettings

T = TypeVar("T")


def blob_store(data_dir: Path) -> BlobStore:
    return open_blob_store(BlobStoreSettings(), data_dir)


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class CatalogDriver:
    def __init__(self, addr: str, store: BlobStore) -> None:
        self.channel = open_channel(addr)
        self.stub = pb_grpc.CatalogServiceStub(self.channel)
        self.store = store

    def create_dataset(self, name: str = "photos") -> str:
        reply = self.stub.CreateDataset(pb.CreateDatasetRequest(name=name), timeout=10)
        return reply.dataset.id

    def create_item(self, dataset_id: str, name: str, data: bytes,
                    overwrite: bool = False) -> resources_pb2.Item:
        key = f"items/{dataset_id}/{uuid.uuid4().hex}"
        self.store.put_bytes(key, data)
        policy = (resources_pb2.DUPLICATE_POLICY_OVERWRITE if overwrite
                  else resources_pb2.DUPLICATE_POLICY_FAIL)
        reply = self.stub.CreateItem(pb.CreateItemRequest(
            dataset_id=dataset_id, dir="/", name=name, size=len(data),
            sha256=hashlib.sha256(data).hexdigest(), blob_key=key, duplicate_policy=policy),
            timeout=10)
        return reply.item

    def system(self, item_id: str) -> dict[str, Any]:
        reply = self.stub.GetItem(pb.GetItemRequest(item_id=item_id), timeout=10)
        return struct_to_dict(reply.item.metadata.system)

    def record(self, item_id: str) -> dict[str, Any] | None:
        return self.system(item_id).get("executionLogs", {}).get("preprocess")

    def wait_preprocessed(self, item_ids: list[str], timeout: float = 60.0,
                          blob_keys: dict[str, str] | None = None) -> dict[str, dict]:
        """Waits until every item has a preprocess record (for the given blob, if any)."""

        def all_done() -> dict[str, dict] | None:
            systems = {item_id: self.system(item_id) for item_id in item_ids}
            for item_id, system in systems.items():
                record = system.get("executionLogs", {}).get("preprocess")
                if record is None:
                    return None
                if blob_keys and record["blobKey"] != blob_keys[item_id]:
                    return None
            return systems

        return wait_for(all_done, timeout, f"{len(item_ids)} items to be preprocessed")

    def close(self) -> None:
        self.channel.close()


def get_stats(addr: str) -> pre_pb.GetStatsResponse:
    with open_channel(addr) as channel:
        return pre_grpc.PreprocessServiceStub(channel).GetStats(pre_pb.GetStatsRequest(),
                                                                timeout=10)
