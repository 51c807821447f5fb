"""The catalog over grpc.aio; every failed call surfaces as a corral.errors.CorralError."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from corral.catalog.v1 import catalog_service_pb2 as pb
from corral.catalog.v1 import catalog_service_pb2_grpc as pb_grpc
from corral.catalog.v1 import resources_pb2
from corral.rpc import CHANNEL_OPTIONS, translate
from corral.structs import dict_to_struct, struct_to_dict
from services.preprocess.catalog import CatalogItem, ConsumerGroupState, ItemEvent

# Unary calls; the Subscribe stream has none, it lives until cancelled.
CALL_TIMEOUT_SECONDS = 30.0
# gRPC's default reconnect backoff grows to two minutes; a restarted catalog should be
# noticed within seconds.
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


class GrpcCatalog:
    def __init__(self, addr: str) -> None:
        self._channel = grpc.aio.insecure_channel(addr,
                                                  options=CHANNEL_OPTIONS + RECONNECT_OPTIONS)
        self._stub = pb_grpc.CatalogServiceStub(self._channel)

    async def subscribe_created(self, consumer_group: str, start_cursor: str,
                                on_connected: Callable[[], None]) -> AsyncIterator[ItemEvent]:
        request = pb.SubscribeRequest(
            consumer_group=consumer_group, start_cursor=start_cursor,
            start_position=pb.START_POSITION_EARLIEST,
            event_types=[resources_pb2.EVENT_TYPE_CREATED])
        call = self._stub.Subscribe(request)
        try:
            await call.wait_for_connection()
            on_connected()
            async for response in call:
                yield ItemEvent(cursor=response.event.cursor, item_id=response.event.item_id)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        finally:
            call.cancel()

    async def get_item(self, item_id: str) -> CatalogItem:
        try:
            response = await self._stub.GetItem(pb.GetItemRequest(item_id=item_id),
                                                timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        item = response.item
        return CatalogItem(id=item.id, name=item.name, size=item.size, blob_key=item.blob_key,
                           system=struct_to_dict(item.metadata.system))

    async def update_system_metadata(self, item_id: str, system: dict[str, Any],
                                     expected_blob_key: str) -> None:
        request = pb.UpdateSystemMetadataRequest(
            item_id=item_id, system=dict_to_struct(system, "system"),
            expected_blob_key=expected_blob_key)
        try:
            await self._stub.UpdateSystemMetadata(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            raise translate(exc) from None

    async def ack_events(self, consumer_group: str, cursor: str) -> str:
        request = pb.AckEventsRequest(consumer_group=consumer_group, cursor=cursor)
        try:
            response = await self._stub.AckEvents(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return response.committed_cursor

    async def get_consumer_group(self, consumer_group: str) -> ConsumerGroupState:
        request = pb.GetConsumerGroupRequest(consumer_group=consumer_group)
        try:
            response = await self._stub.GetConsumerGroup(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return ConsumerGroupState(committed_cursor=response.committed_cursor,
                                  head_cursor=response.head_cursor,
                                  pending_events=response.pending_events)

    async def close(self) -> None:
        await self._channel.close()
