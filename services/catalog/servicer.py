"""CatalogService over gRPC: request -> convert -> domain call (in a worker thread, or for the
hot writes on the group-commit writer) -> response.
No rules live here; domain errors become statuses in services.common's ErrorInterceptor.
Every domain call gets the caller's Scope (scope.py): the project it may see."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

import grpc

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import catalog_service_pb2_grpc as api_grpc
from corral.catalog.v1 import triggers_pb2 as tpb
from corral.errors import CorralError, InvalidArgument
from services.blobstore.base import BlobStore
from services.catalog import (
    batch,
    blobs,
    convert,
    datasets,
    events,
    filter_convert,
    items,
    leases,
    queries,
    scope,
    system_batch,
    trigger_convert,
    triggers,
)
from services.catalog.config import (
    DEFAULT_LIMITS,
    MAX_SUBSCRIPTIONS_PER_KEY_ENV,
    CatalogLimits,
)
from services.catalog.notify import CommitSignal
from services.catalog.paging import PageBudget
from services.catalog.repository import Store
from services.catalog.writer import BatchWriter
from services.common.auth import Need, caller
from services.common.per_key import PerKeyLimit

T = TypeVar("T")
SERVICE_NAME = api.DESCRIPTOR.services_by_name["CatalogService"].full_name
_READS = ("GetDataset", "ListDatasets", "GetItem", "ListItems", "Subscribe", "AckEvents",
          "GetConsumerGroup", "ExtendEventLeases", "GetTrigger", "ListTriggers")
# Everything else changes data and needs the writer role (AuthInterceptor: unlisted = admin).
NEEDS = {f"/{SERVICE_NAME}/{method.name}": Need.READ if method.name in _READS else Need.WRITE
         for method in api.DESCRIPTOR.services_by_name["CatalogService"].methods}


class CatalogServicer(api_grpc.CatalogServiceServicer):
    def __init__(self, store: Store, writer: BatchWriter, blob_store: BlobStore | None,
                 signal: CommitSignal, poll_seconds: float,
                 limits: CatalogLimits = DEFAULT_LIMITS) -> None:
        self._store, self._writer, self._blobs = store, writer, blob_store
        self._signal, self._poll_seconds = signal, poll_seconds
        self._projects = scope.ProjectCache()
        self._subscriptions = PerKeyLimit(limits.max_subscriptions_per_key, "subscriptions",
                                          MAX_SUBSCRIPTIONS_PER_KEY_ENV)
        self._page_bytes = limits.max_page_bytes
        self._batch_bytes = limits.max_batch_bytes

    def _scope(self) -> scope.Scope:
        """The calling key's project; passed explicitly, since the group-commit writer runs
        the work on its own thread."""
        return scope.of(caller(), self._projects)

    def _budget(self, encoded: convert.Encoded[T]) -> PageBudget[T]:
        """A list page's byte budget, weighed in encoded messages (converted once)."""
        return PageBudget(encoded.size, self._page_bytes)

    async def _release(self, keys: list[str]) -> None:
        """Deletes blobs the committed change left unreferenced."""
        if keys:
            await asyncio.to_thread(blobs.release, self._blobs, keys)

    async def CreateDataset(self, request: api.CreateDatasetRequest,
                            context: grpc.aio.ServicerContext) -> api.CreateDatasetResponse:
        dataset = await asyncio.to_thread(datasets.create_dataset, self._store, request.name,
                                          request.description, request.request_id,
                                          self._scope())
        return api.CreateDatasetResponse(dataset=convert.dataset_to_proto(dataset))

    async def GetDataset(self, request: api.GetDatasetRequest,
                         context: grpc.aio.ServicerContext) -> api.GetDatasetResponse:
        dataset = await asyncio.to_thread(datasets.get_dataset, self._store, request.dataset_id,
                                          request.name, self._scope())
        return api.GetDatasetResponse(dataset=convert.dataset_to_proto(dataset))

    async def ListDatasets(self, request: api.ListDatasetsRequest,
                           context: grpc.aio.ServicerContext) -> api.ListDatasetsResponse:
        encoded = convert.Encoded(convert.dataset_to_proto)
        page = await asyncio.to_thread(datasets.list_datasets, self._store, request.page_size,
                                       request.page_token, self._scope(), self._budget(encoded))
        return api.ListDatasetsResponse(
            datasets=[encoded.message(d) for d in page.entries],
            next_page_token=page.next_page_token)

    async def DeleteDataset(self, request: api.DeleteDatasetRequest,
                            context: grpc.aio.ServicerContext) -> api.DeleteDatasetResponse:
        deletion = await asyncio.to_thread(datasets.delete_dataset, self._store, self._blobs,
                                           request.dataset_id, self._scope())
        return api.DeleteDatasetResponse(deleted_items=deletion.deleted_items)

    async def CreateItem(self, request: api.CreateItemRequest,
                         context: grpc.aio.ServicerContext) -> api.CreateItemResponse:
        result = await self._writer.write(items.create_item(convert.new_item(request),
                                                            self._scope()))
        await self._release(result.released_blob_keys)
        return convert.create_result_to_proto(result)

    async def BatchCreateItems(
            self, request: api.BatchCreateItemsRequest,
            context: grpc.aio.ServicerContext) -> api.BatchCreateItemsResponse:
        size = request.ByteSize()
        if size > self._batch_bytes:
            # Created items whose answer cannot be delivered would come back the same way on
            # every retry: refuse before writing.
            raise InvalidArgument(
                f"requests: {size} bytes in one call; at most {self._batch_bytes} "
                "(half of CORRAL_MAX_MESSAGE_BYTES, so the answer, which repeats every item, "
                "fits): split the batch")
        results = await batch.create_items(self._writer.write, request.requests,
                                           convert.new_item, self._scope())
        released = [key for result in results if not isinstance(result, CorralError)
                    for key in result.released_blob_keys]
        await self._release(released)
        return api.BatchCreateItemsResponse(results=[
            convert.batch_error(result) if isinstance(result, CorralError)
            else api.BatchCreateItemsResult(created=convert.create_result_to_proto(result))
            for result in results])

    async def CloneItem(self, request: api.CloneItemRequest,
                        context: grpc.aio.ServicerContext) -> api.CloneItemResponse:
        result = await self._writer.write(items.clone_item(convert.clone_request(request),
                                                           self._scope()))
        await self._release(result.released_blob_keys)
        return api.CloneItemResponse(item=convert.item_to_proto(result.item),
                                     outcome=convert.OUTCOMES[result.outcome])

    async def GetItem(self, request: api.GetItemRequest,
                      context: grpc.aio.ServicerContext) -> api.GetItemResponse:
        item = await asyncio.to_thread(items.get_item, self._store, request.item_id,
                                       request.dataset_id, request.filename, request.request_id,
                                       self._scope())
        return api.GetItemResponse(item=convert.item_to_proto(item))

    async def ListItems(self, request: api.ListItemsRequest,
                        context: grpc.aio.ServicerContext) -> api.ListItemsResponse:
        encoded = convert.Encoded(convert.item_to_proto)
        page = await asyncio.to_thread(
            queries.list_items, self._store, request.dataset_id, request.dir,
            request.recursive, request.page_size, request.page_token,
            filter_convert.filter_in(request.filter), filter_convert.order_in(request.order_by),
            request.include_total_size, self._scope(), self._budget(encoded))
        return api.ListItemsResponse(items=[encoded.message(i) for i in page.entries],
                                     next_page_token=page.next_page_token,
                                     total_size=page.total_size)

    async def UpdateItem(self, request: api.UpdateItemRequest,
                         context: grpc.aio.ServicerContext) -> api.UpdateItemResponse:
        changes = convert.item_changes(request)
        item = await asyncio.to_thread(items.update_item, self._store, changes, self._scope())
        return api.UpdateItemResponse(item=convert.item_to_proto(item))

    async def DeleteItem(self, request: api.DeleteItemRequest,
                         context: grpc.aio.ServicerContext) -> api.DeleteItemResponse:
        deletion = await asyncio.to_thread(items.delete_item, self._store, self._blobs,
                                           request.item_id, self._scope())
        return api.DeleteItemResponse(deleted_items=deletion.deleted_items)

    async def UpdateSystemMetadata(
            self, request: api.UpdateSystemMetadataRequest,
            context: grpc.aio.ServicerContext) -> api.UpdateSystemMetadataResponse:
        item, released = await self._writer.write(items.update_system_metadata(
            request.item_id, convert.struct_in(request.system, "system"),
            request.expected_blob_key, self._scope()))
        await self._release(released)
        return api.UpdateSystemMetadataResponse(item=convert.item_to_proto(item))

    async def BatchUpdateSystemMetadata(
            self, request: api.BatchUpdateSystemMetadataRequest,
            context: grpc.aio.ServicerContext) -> api.BatchUpdateSystemMetadataResponse:
        result = await self._writer.write(system_batch.update_many(
            request.requests, convert.system_update, request.consumer_group,
            request.ack_event_cursors, self._scope(),
            max_answer_bytes=None if request.omit_items else self._batch_bytes))
        if request.ack_event_cursors:
            self._signal.notify_freed()  # wakes leased subscribers whose room was full
        await self._release(result.released_blob_keys)
        return convert.system_batch_to_proto(result, request.omit_items)

    async def Subscribe(self, request: api.SubscribeRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[api.SubscribeResponse]:
        # Held until the stream ends however it ends (cancel, deadline, server stop).
        with self._subscriptions.hold(caller()):
            viewer = self._scope()
            per_response = events.check_events_per_response(request.max_events_per_response)
            if request.lease_seconds:
                async for response in self._subscribe_leased(request, viewer, per_response):
                    yield response
                return
            event_filter = events.check_filter(convert.event_filter(request), viewer)
            start = await asyncio.to_thread(
                events.start_position, self._store, request.consumer_group,
                request.start_cursor, convert.start_position(request.start_position),
                event_filter, viewer)
            async for read in events.subscribe_batches(self._store, self._signal, start,
                                                       event_filter, self._poll_seconds):
                if per_response == 1:
                    for event in read:
                        yield api.SubscribeResponse(event=convert.event_to_proto(event))
                    continue
                for chunk in events.chunks(read, per_response):
                    yield api.SubscribeResponse(events=[
                        api.SubscribedEvent(event=convert.event_to_proto(event))
                        for event in chunk])

    async def AckEvents(self, request: api.AckEventsRequest,
                        context: grpc.aio.ServicerContext) -> api.AckEventsResponse:
        committed = await self._writer.write(leases.ack(
            request.consumer_group, request.cursor, request.event_cursors, self._scope()))
        self._signal.notify_freed()  # wakes leased subscribers whose room was full
        return api.AckEventsResponse(committed_cursor=events.format_cursor(committed))

    async def GetConsumerGroup(self, request: api.GetConsumerGroupRequest,
                               context: grpc.aio.ServicerContext) -> api.GetConsumerGroupResponse:
        state, leased = await asyncio.to_thread(leases.consumer_group_state, self._store,
                                                request.consumer_group, self._scope())
        return api.GetConsumerGroupResponse(
            consumer_group=state.name,
            committed_cursor=events.format_cursor(state.committed) if state.committed else "",
            head_cursor=events.format_cursor(state.head) if state.head else "",
            pending_events=state.pending_events, leased_events=leased)

    async def UpdateMatchingItems(
            self, request: api.UpdateMatchingItemsRequest,
            context: grpc.aio.ServicerContext) -> api.UpdateMatchingItemsResponse:
        updated = await asyncio.to_thread(
            queries.update_matching_items, self._store, request.dataset_id,
            filter_convert.filter_in(request.filter),
            convert.struct_in(request.user_metadata, "user_metadata"),
            list(request.update_mask.paths), self._scope())
        return api.UpdateMatchingItemsResponse(updated_items=updated)

    async def ExtendEventLeases(
            self, request: api.ExtendEventLeasesRequest,
            context: grpc.aio.ServicerContext) -> api.ExtendEventLeasesResponse:
        work = leases.extend(request.consumer_group, request.subscriber_id,
                             request.event_cursors, request.lease_seconds, self._scope())
        held, expire_ms = await asyncio.to_thread(leases.write_quietly, self._store, work)
        if not expire_ms:
            self._signal.notify_freed()  # given back: claimable by the group's subscribers
        return api.ExtendEventLeasesResponse(
            extended_cursors=[events.format_cursor(position) for position in held],
            expire_time=convert.lease_time(expire_ms) if expire_ms else None)

    async def SetDatasetPreprocessing(
            self, request: api.SetDatasetPreprocessingRequest,
            context: grpc.aio.ServicerContext) -> api.SetDatasetPreprocessingResponse:
        dataset = await asyncio.to_thread(datasets.set_dataset_preprocessing, self._store,
                                          request.dataset_id,
                                          convert.preprocessing_mode(request.mode), self._scope())
        return api.SetDatasetPreprocessingResponse(dataset=convert.dataset_to_proto(dataset))

    # Triggers (triggers.py).

    async def CreateTrigger(self, request: tpb.CreateTriggerRequest,
                            context: grpc.aio.ServicerContext) -> tpb.CreateTriggerResponse:
        viewer = self._scope()
        trigger = await asyncio.to_thread(triggers.create_trigger, self._store,
                                          trigger_convert.trigger_in(request.trigger), viewer)
        return tpb.CreateTriggerResponse(trigger=trigger_convert.trigger_to_proto(trigger, viewer))

    async def GetTrigger(self, request: tpb.GetTriggerRequest,
                         context: grpc.aio.ServicerContext) -> tpb.GetTriggerResponse:
        viewer = self._scope()
        trigger = await asyncio.to_thread(triggers.get_trigger, self._store, request.name, viewer)
        return tpb.GetTriggerResponse(trigger=trigger_convert.trigger_to_proto(trigger, viewer))

    async def ListTriggers(self, request: tpb.ListTriggersRequest,
                           context: grpc.aio.ServicerContext) -> tpb.ListTriggersResponse:
        viewer = self._scope()
        encoded = convert.Encoded(lambda t: trigger_convert.trigger_to_proto(t, viewer))
        page = await asyncio.to_thread(triggers.list_triggers, self._store, request.page_size,
                                       request.page_token, viewer, self._budget(encoded))
        return tpb.ListTriggersResponse(
            triggers=[encoded.message(t) for t in page.entries],
            next_page_token=page.next_page_token)

    async def UpdateTrigger(self, request: tpb.UpdateTriggerRequest,
                            context: grpc.aio.ServicerContext) -> tpb.UpdateTriggerResponse:
        viewer = self._scope()
        trigger = await asyncio.to_thread(
            triggers.update_trigger, self._store, trigger_convert.trigger_in(request.trigger),
            list(request.update_mask.paths), viewer)
        return tpb.UpdateTriggerResponse(trigger=trigger_convert.trigger_to_proto(trigger, viewer))

    async def DeleteTrigger(self, request: tpb.DeleteTriggerRequest,
                            context: grpc.aio.ServicerContext) -> tpb.DeleteTriggerResponse:
        await asyncio.to_thread(triggers.delete_trigger, self._store, request.name,
                                self._scope())
        return tpb.DeleteTriggerResponse()

    async def StartTriggerRun(self, request: tpb.StartTriggerRunRequest,
                              context: grpc.aio.ServicerContext) -> tpb.StartTriggerRunResponse:
        proceed = await asyncio.to_thread(triggers.start_run, self._store, request.trigger,
                                          request.item_id, request.event_cursor, self._scope())
        return tpb.StartTriggerRunResponse(proceed=proceed)

    async def CompleteTriggerRun(
            self, request: tpb.CompleteTriggerRunRequest,
            context: grpc.aio.ServicerContext) -> tpb.CompleteTriggerRunResponse:
        item = await asyncio.to_thread(
            triggers.complete_run, self._store, request.trigger, request.item_id,
            trigger_convert.run_in(request), trigger_convert.system_in(request), self._scope())
        if item is None:
            return tpb.CompleteTriggerRunResponse(found=False)
        return tpb.CompleteTriggerRunResponse(found=True, item=convert.item_to_proto(item))

    async def _subscribe_leased(self, request: api.SubscribeRequest, viewer: scope.Scope,
                                per_response: int) -> AsyncIterator[api.SubscribeResponse]:
        lease_request = leases.lease_request(
            request.consumer_group, request.subscriber_id, request.lease_seconds,
            request.max_in_flight, convert.event_filter(request), request.start_cursor, viewer)
        stream = leases.subscribe_batches(self._store, self._signal, lease_request,
                                          convert.start_position(request.start_position),
                                          self._poll_seconds, viewer)
        async for claimed in stream:
            if per_response == 1:
                for leased in claimed:
                    yield convert.leased_event_to_proto(leased)
                continue
            for chunk in events.chunks(claimed, per_response):
                yield convert.leased_events_to_proto(chunk)
