"""The catalog over gRPC: one shared grpc.aio channel, a deadline on every call, and failures
turned into corral errors carrying the catalog's status code."""

from __future__ import annotations

from typing import Any

import grpc

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import catalog_service_pb2_grpc, resources_pb2
from corral.credentials import Credentials
from corral.errors import CorralError, NotFound, error_for_code
from corral.rpc import CHANNEL_OPTIONS, open_aio_channel, translate
from services.common.auth import on_behalf_headers

_TRANSPORT_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}


class GrpcCatalog:
    """Must be created inside the running event loop (grpc.aio channels bind to it)."""

    def __init__(self, addr: str, timeout_seconds: float, credentials: Credentials) -> None:
        self.addr = addr
        self._timeout = timeout_seconds
        # The service key, plus the project and role of the user each call is made for.
        self._channel = open_aio_channel(addr, credentials, CHANNEL_OPTIONS,
                                         dynamic=on_behalf_headers)
        self._stub = catalog_service_pb2_grpc.CatalogServiceStub(self._channel)

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            error = translate(exc)
            if error.code in _TRANSPORT_CODES:
                error = type(error)(f"catalog at {self.addr}: {error.message}")
            raise error from None

    async def get_dataset(self, dataset_id: str) -> resources_pb2.Dataset:
        reply = await self._call(self._stub.GetDataset,
                                 catalog_pb2.GetDatasetRequest(dataset_id=dataset_id))
        return reply.dataset

    async def find_item(self, dataset_id: str, filename: str) -> resources_pb2.Item | None:
        try:
            reply = await self._call(
                self._stub.GetItem,
                catalog_pb2.GetItemRequest(dataset_id=dataset_id, filename=filename))
        except NotFound:
            return None
        return reply.item

    async def get_item(self, item_id: str) -> resources_pb2.Item:
        reply = await self._call(self._stub.GetItem, catalog_pb2.GetItemRequest(item_id=item_id))
        return reply.item

    async def create_item(
            self, request: catalog_pb2.CreateItemRequest) -> catalog_pb2.CreateItemResponse:
        return await self._call(self._stub.CreateItem, request)

    async def batch_create_items(
            self, requests: list[catalog_pb2.CreateItemRequest],
    ) -> list[catalog_pb2.CreateItemResponse | CorralError]:
        reply = await self._call(self._stub.BatchCreateItems,
                                 catalog_pb2.BatchCreateItemsRequest(requests=requests))
        return [result.created if result.HasField("created")
                else error_for_code(result.error.code, result.error.message)
                for result in reply.results]

    async def find_item_by_request(self, dataset_id: str,
                                   request_id: str) -> resources_pb2.Item | None:
        try:
            reply = await self._call(self._stub.GetItem, catalog_pb2.GetItemRequest(
                dataset_id=dataset_id, request_id=request_id))
        except NotFound:
            return None
        return reply.item

    async def close(self) -> None:
        await self._channel.close()

