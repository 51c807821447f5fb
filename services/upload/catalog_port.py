"""What the upload domain needs from the catalog. The gRPC adapter lives in catalog_client.py;
unit tests use an in-memory fake."""

from __future__ import annotations

from typing import Protocol

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import resources_pb2
from corral.errors import CorralError


class Catalog(Protocol):
    async def get_dataset(self, dataset_id: str) -> resources_pb2.Dataset:
        """Raises corral.errors.NotFound if there is no such dataset."""
        ...

    async def find_item(self, dataset_id: str, filename: str) -> resources_pb2.Item | None:
        """The item at `filename` ("/a/b.jpg") in the dataset, or None."""
        ...

    async def get_item(self, item_id: str) -> resources_pb2.Item:
        """Raises corral.errors.NotFound if there is no such item."""
        ...

    async def create_item(
            self, request: catalog_pb2.CreateItemRequest) -> catalog_pb2.CreateItemResponse: ...

    async def batch_create_items(
            self, requests: list[catalog_pb2.CreateItemRequest],
    ) -> list[catalog_pb2.CreateItemResponse | CorralError]:
        """One result per request, in order; a failed entry is its error."""
        ...

    async def find_item_by_request(self, dataset_id: str,
                                   request_id: str) -> resources_pb2.Item | None:
        """The item created with `request_id` in the dataset, or None."""
        ...
