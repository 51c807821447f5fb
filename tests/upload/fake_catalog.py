"""An in-memory catalog with the upload domain's Catalog interface, for unit tests."""

from __future__ import annotations

import uuid

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import resources_pb2
from corral.errors import AlreadyExists, CorralError, NotFound
from corral.paths import join

Outcome = resources_pb2.CreateOutcome
Policy = resources_pb2.DuplicatePolicy


class FakeCatalog:
    def __init__(self) -> None:
        self.datasets: dict[str, resources_pb2.Dataset] = {}
        self.items: dict[tuple[str, str], resources_pb2.Item] = {}
        self.create_error: CorralError | None = None
        self.commit_then_fail: CorralError | None = None
        self.calls: list[str] = []
        # Like the real catalog: a retried request_id gets the first call's reply.
        self.replies: dict[tuple[str, str], catalog_pb2.CreateItemResponse] = {}

    def add_dataset(self, name: str = "ds") -> str:
        dataset_id = uuid.uuid4().hex
        self.datasets[dataset_id] = resources_pb2.Dataset(id=dataset_id, name=name)
        return dataset_id

    async def get_dataset(self, dataset_id: str) -> resources_pb2.Dataset:
        self.calls.append("get_dataset")
        if dataset_id not in self.datasets:
            raise NotFound(f"dataset {dataset_id} not found")
        return self.datasets[dataset_id]

    async def find_item(self, dataset_id: str, filename: str) -> resources_pb2.Item | None:
        self.calls.append("find_item")
        return self.items.get((dataset_id, filename))

    async def get_item(self, item_id: str) -> resources_pb2.Item:
        self.calls.append("get_item")
        for item in self.items.values():
            if item.id == item_id:
                return item
        raise NotFound(f"item {item_id} not found")

    async def find_item_by_request(self, dataset_id: str,
                                   request_id: str) -> resources_pb2.Item | None:
        self.calls.append("find_item_by_request")
        reply = self.replies.get((dataset_id, request_id))
        return reply.item if reply is not None else None

    async def create_item(
            self, request: catalog_pb2.CreateItemRequest) -> catalog_pb2.CreateItemResponse:
        self.calls.append("create_item")
        if self.create_error is not None:
            raise self.create_error
        replayed = self.replies.get((request.dataset_id, request.request_id))
        if request.request_id and replayed is not None:
            return replayed
        filename = join(request.dir, request.name)
        existing = self.items.get((request.dataset_id, filename))
        if existing is not None:
            if request.duplicate_policy == Policy.DUPLICATE_POLICY_FAIL:
                raise AlreadyExists(f"{filename} already exists")
            if request.duplicate_policy != Policy.DUPLICATE_POLICY_OVERWRITE:
                return catalog_pb2.CreateItemResponse(
                    item=existing, outcome=Outcome.CREATE_OUTCOME_SKIPPED)
        item = resources_pb2.Item(
            id=existing.id if existing else uuid.uuid4().hex, dataset_id=request.dataset_id,
            dir=request.dir, name=request.name, filename=filename,
            type=resources_pb2.ItemType.ITEM_TYPE_FILE, size=request.size, sha256=request.sha256,
            blob_key=request.blob_key, description=request.description)
        item.metadata.user.CopyFrom(request.user_metadata)
        self.items[(request.dataset_id, filename)] = item
        outcome = Outcome.CREATE_OUTCOME_OVERWRITTEN if existing else Outcome.CREATE_OUTCOME_CREATED
        reply = catalog_pb2.CreateItemResponse(item=item, outcome=outcome)
        if request.request_id:
            self.replies[(request.dataset_id, request.request_id)] = reply
        if self.commit_then_fail is not None:
            error, self.commit_then_fail = self.commit_then_fail, None  # the reply is lost once
            raise error
        return reply
