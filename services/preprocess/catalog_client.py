"""The catalog over grpc.aio; every failed call surfaces as a corral.errors.CorralError."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
from google.protobuf import struct_pb2

from corral.catalog.v1 import catalog_service_pb2 as pb
from corral.catalog.v1 import catalog_service_pb2_grpc as pb_grpc
from corral.catalog.v1 import resources_pb2
from corral.credentials import Credentials
from corral.errors import CorralError, NotFound, error_for_code
from corral.rpc import CHANNEL_OPTIONS, open_aio_channel, translate
from corral.structs import struct_to_dict
from services.preprocess.catalog import (
    BatchOutcome,
    CatalogItem,
    ConsumerGroupState,
    DatasetInfo,
    ItemEvent,
    LeaseSettings,
    SystemUpdate,
)

_HEX_ID = re.compile(r"[0-9a-f]{32}")
# Events per Subscribe response: the worker leases a few dozen at a time, and one message
# per event costs the catalog and the worker more than the event itself.
EVENTS_PER_RESPONSE = 64
# Unary calls (CORRAL_PREPROCESS_CATALOG_TIMEOUT_SECONDS); the Subscribe stream has none, it
# lives until cancelled, and keepalive pings end it if the catalog vanishes.
CALL_TIMEOUT_SECONDS = 30.0
# gRPC's default reconnect backoff grows to two minutes; a restarted catalog should be
# noticed within seconds.
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def _item(item: resources_pb2.Item) -> CatalogItem:
    # A new item's system metadata is empty: skip the (slow) JSON-style conversion.
    system = struct_to_dict(item.metadata.system) if item.metadata.system.fields else {}
    return CatalogItem(id=item.id, name=item.name, size=item.size, blob_key=item.blob_key,
                       system=system, link_url=item.link.url,
                       link_mimetype=item.link.mimetype)


def _dataset(dataset: resources_pb2.Dataset) -> DatasetInfo:
    mode = resources_pb2.PreprocessingMode.Name(dataset.preprocessing)
    return DatasetInfo(id=dataset.id, name=dataset.name,
                       preprocessing=mode.removeprefix("PREPROCESSING_MODE_").lower())


def _struct(data: dict[str, Any]) -> struct_pb2.Struct:
    """Our own JSON-safe dict as a Struct; Struct.update is ~3x faster than ParseDict."""
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


def _event(response: pb.SubscribeResponse | pb.SubscribedEvent) -> ItemEvent:
    event = response.event
    snapshot = _item(event.item) if event.HasField("item") else None
    created = event.create_time.seconds + event.create_time.nanos / 1e9
    return ItemEvent(cursor=event.cursor, item_id=event.item_id, item=snapshot,
                     create_time=created,
                     delivery_attempt=response.lease.delivery_attempt or 1)


def _error(error: resources_pb2.ItemError) -> CorralError:
    return error_for_code(error.code, error.message)


class GrpcCatalog:
    def __init__(self, addr: str, credentials: Credentials,
                 timeout_seconds: float = CALL_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout_seconds
        self._channel = open_aio_channel(addr, credentials, CHANNEL_OPTIONS + RECONNECT_OPTIONS)
        self._stub = pb_grpc.CatalogServiceStub(self._channel)

    async def subscribe_leased(self, lease: LeaseSettings,
                               on_connected: Callable[[], None]) -> AsyncIterator[ItemEvent]:
        request = pb.SubscribeRequest(
            consumer_group=lease.consumer_group, subscriber_id=lease.subscriber_id,
            lease_seconds=lease.lease_seconds, max_in_flight=lease.max_in_flight,
            max_events_per_response=EVENTS_PER_RESPONSE,
            start_position=pb.START_POSITION_EARLIEST,
            event_types=[resources_pb2.EVENT_TYPE_CREATED], dataset_id=lease.dataset_id,
            dataset_preprocessing=[resources_pb2.PREPROCESSING_MODE_PRIVATE if lease.dataset_id
                                   else resources_pb2.PREPROCESSING_MODE_GLOBAL])
        call = self._stub.Subscribe(request)
        try:
            await call.wait_for_connection()
            on_connected()
            async for response in call:
                if response.events:
                    for event in response.events:
                        yield _event(event)
                elif response.HasField("event"):  # a catalog sending one event per message
                    yield _event(response)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        finally:
            call.cancel()

    async def get_item(self, item_id: str) -> CatalogItem:
        try:
            response = await self._stub.GetItem(pb.GetItemRequest(item_id=item_id),
                                                timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return _item(response.item)

    async def get_dataset(self, name_or_id: str) -> DatasetInfo:
        """By name, else by id when the text looks like one (as the SDK does)."""
        try:
            return await self._get_dataset(pb.GetDatasetRequest(name=name_or_id))
        except NotFound:
            if not _HEX_ID.fullmatch(name_or_id):
                raise
        return await self._get_dataset(pb.GetDatasetRequest(dataset_id=name_or_id))

    async def _get_dataset(self, request: pb.GetDatasetRequest) -> DatasetInfo:
        try:
            response = await self._stub.GetDataset(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return _dataset(response.dataset)

    async def update_system_metadata(self, item_id: str, system: dict[str, Any],
                                     expected_blob_key: str) -> None:
        request = pb.UpdateSystemMetadataRequest(
            item_id=item_id, system=_struct(system),
            expected_blob_key=expected_blob_key)
        try:
            await self._stub.UpdateSystemMetadata(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from None

    async def batch_update_system_metadata(
            self, updates: Sequence[SystemUpdate], consumer_group: str = "",
            ack_cursors: Sequence[str] = ()) -> BatchOutcome:
        """Writes many results (and acknowledges events) in one call; raises only when the
        whole call failed (NotImplementedError: a catalog older than
        BatchUpdateSystemMetadata)."""
        request = pb.BatchUpdateSystemMetadataRequest(
            requests=[pb.UpdateSystemMetadataRequest(
                item_id=update.item_id, system=_struct(update.system),
                expected_blob_key=update.expected_blob_key) for update in updates],
            omit_items=True, consumer_group=consumer_group if ack_cursors else "",
            ack_event_cursors=ack_cursors)
        try:
            response = await self._stub.BatchUpdateSystemMetadata(request,
                                                                  timeout=self._timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise NotImplementedError("BatchUpdateSystemMetadata") from None
            raise translate(exc) from None
        return BatchOutcome(
            errors=[_error(result.error) if result.HasField("error") else None
                    for result in response.results],
            committed_cursor=response.committed_cursor,
            ack_error=_error(response.ack_error) if response.HasField("ack_error") else None)

    async def ack_event_cursors(self, consumer_group: str, cursors: list[str]) -> str:
        request = pb.AckEventsRequest(consumer_group=consumer_group, event_cursors=cursors)
        try:
            response = await self._stub.AckEvents(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return response.committed_cursor

    async def extend_leases(self, lease: LeaseSettings, cursors: list[str],
                            lease_seconds: int) -> list[str]:
        request = pb.ExtendEventLeasesRequest(
            consumer_group=lease.consumer_group, subscriber_id=lease.subscriber_id,
            event_cursors=cursors, lease_seconds=lease_seconds)
        try:
            response = await self._stub.ExtendEventLeases(request,
                                                          timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return list(response.extended_cursors)

    async def get_consumer_group(self, consumer_group: str) -> ConsumerGroupState:
        request = pb.GetConsumerGroupRequest(consumer_group=consumer_group)
        try:
            response = await self._stub.GetConsumerGroup(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return ConsumerGroupState(committed_cursor=response.committed_cursor,
                                  head_cursor=response.head_cursor,
                                  pending_events=response.pending_events)

    async def close(self) -> None:
        await self._channel.close()
