"""Records <-> protobuf messages, and proto enums <-> domain enums."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from corral.errors import CorralError, InvalidArgument
from corral.structs import dict_to_struct, struct_to_dict
from services.catalog.events import format_cursor
from services.catalog.leases import LeasedEvent
from services.catalog.records import (
    CloneRequest,
    CreateItemResult,
    Dataset,
    DuplicatePolicy,
    Event,
    EventFilter,
    EventType,
    Item,
    ItemChanges,
    ItemType,
    NewItem,
    Outcome,
    PreprocessingMode,
    StartPosition,
)
from services.catalog.system_batch import BatchResult, SystemUpdate

E = TypeVar("E")
R = TypeVar("R")

ITEM_TYPES = {ItemType.FILE: res.ITEM_TYPE_FILE, ItemType.DIR: res.ITEM_TYPE_DIR,
              ItemType.LINK: res.ITEM_TYPE_LINK}
ITEM_TYPES_IN = {res.ITEM_TYPE_UNSPECIFIED: ItemType.FILE,
                 **{v: k for k, v in ITEM_TYPES.items()}}
EVENT_TYPES = {EventType.CREATED: res.EVENT_TYPE_CREATED,
               EventType.UPDATED: res.EVENT_TYPE_UPDATED,
               EventType.DELETED: res.EVENT_TYPE_DELETED}
EVENT_TYPES_IN = {v: k for k, v in EVENT_TYPES.items()}
OUTCOMES = {Outcome.CREATED: res.CREATE_OUTCOME_CREATED,
            Outcome.SKIPPED: res.CREATE_OUTCOME_SKIPPED,
            Outcome.OVERWRITTEN: res.CREATE_OUTCOME_OVERWRITTEN}
DUPLICATE_POLICIES = {res.DUPLICATE_POLICY_UNSPECIFIED: DuplicatePolicy.SKIP,
                      res.DUPLICATE_POLICY_SKIP: DuplicatePolicy.SKIP,
                      res.DUPLICATE_POLICY_OVERWRITE: DuplicatePolicy.OVERWRITE,
                      res.DUPLICATE_POLICY_FAIL: DuplicatePolicy.FAIL}
PREPROCESSING_MODES = {PreprocessingMode.GLOBAL: res.PREPROCESSING_MODE_GLOBAL,
                       PreprocessingMode.PRIVATE: res.PREPROCESSING_MODE_PRIVATE,
                       PreprocessingMode.OFF: res.PREPROCESSING_MODE_OFF}
PREPROCESSING_MODES_IN = {v: k for k, v in PREPROCESSING_MODES.items()}
START_POSITIONS = {api.START_POSITION_UNSPECIFIED: StartPosition.EARLIEST,
                   api.START_POSITION_EARLIEST: StartPosition.EARLIEST,
                   api.START_POSITION_LATEST: StartPosition.LATEST}


def _enum_in(mapping: dict[int, E], value: int, field: str) -> E:
    try:
        return mapping[value]
    except KeyError:
        raise InvalidArgument(f"{field} has an unknown value {value}") from None


def struct_in(struct: Struct, field: str) -> dict[str, Any]:
    """A request's Struct as a dict; NaN and infinities are refused (JSON cannot hold them)."""
    return struct_to_dict(struct, field)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime) -> Timestamp:
    """Timestamp.FromDatetime (naive means UTC) at a third of its cost: every event and
    item sent converts two or three."""
    since = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - _EPOCH
    return Timestamp(seconds=since.days * 86400 + since.seconds,
                     nanos=since.microseconds * 1000)


def dataset_to_proto(dataset: Dataset) -> res.Dataset:
    return res.Dataset(id=dataset.id, name=dataset.name, description=dataset.description,
                       project=dataset.project, create_time=timestamp(dataset.create_time),
                       item_count=dataset.item_count,
                       preprocessing=PREPROCESSING_MODES[dataset.preprocessing])


def item_to_proto(item: Item) -> res.Item:
    return res.Item(
        id=item.id, dataset_id=item.dataset_id, dir=item.dir, name=item.name,
        filename=item.filename, type=ITEM_TYPES[item.type], size=item.size, sha256=item.sha256,
        blob_key=item.blob_key, description=item.description,
        metadata=res.ItemMetadata(system=dict_to_struct(item.metadata_system, "metadata.system"),
                                  user=dict_to_struct(item.metadata_user, "metadata.user")),
        create_time=timestamp(item.create_time), update_time=timestamp(item.update_time),
        link=res.LinkInfo(url=item.link_url, mimetype=item.link_mimetype)
        if item.type == ItemType.LINK else None)


def event_to_proto(event: Event) -> res.ItemEvent:
    return res.ItemEvent(cursor=format_cursor(event.position), type=EVENT_TYPES[event.type],
                         item_id=event.item_id, dataset_id=event.dataset_id,
                         item=item_to_proto(event.item), create_time=timestamp(event.create_time))


def create_result_to_proto(result: CreateItemResult) -> api.CreateItemResponse:
    return api.CreateItemResponse(item=item_to_proto(result.item),
                                  outcome=OUTCOMES[result.outcome],
                                  released_blob_keys=result.released_blob_keys,
                                  replayed=result.replayed)


def new_item(request: api.CreateItemRequest) -> NewItem:
    return NewItem(
        dataset_id=request.dataset_id, dir=request.dir, name=request.name,
        type=_enum_in(ITEM_TYPES_IN, request.type, "type"), size=request.size,
        sha256=request.sha256, blob_key=request.blob_key, description=request.description,
        user_metadata=struct_in(request.user_metadata, "user_metadata"),
        duplicate_policy=_enum_in(DUPLICATE_POLICIES, request.duplicate_policy,
                                  "duplicate_policy"),
        request_id=request.request_id, link_url=request.link.url,
        link_mimetype=request.link.mimetype)


def clone_request(request: api.CloneItemRequest) -> CloneRequest:
    return CloneRequest(
        item_id=request.item_id, dataset_id=request.dataset_id, dir=request.dir,
        name=request.name,
        user_metadata=struct_in(request.user_metadata, "user_metadata")
        if request.HasField("user_metadata") else None,
        duplicate_policy=_enum_in(DUPLICATE_POLICIES, request.duplicate_policy,
                                  "duplicate_policy"),
        request_id=request.request_id)


def batch_error(error: CorralError) -> api.BatchCreateItemsResult:
    return api.BatchCreateItemsResult(error=res.ItemError(code=error.code, message=error.message))


def system_update(index: int, request: api.UpdateSystemMetadataRequest) -> SystemUpdate:
    return SystemUpdate(request.item_id, struct_in(request.system, f"requests[{index}].system"),
                        request.expected_blob_key)


def system_batch_to_proto(result: BatchResult,
                          omit_items: bool) -> api.BatchUpdateSystemMetadataResponse:
    def one(entry: Item | CorralError) -> api.BatchUpdateSystemMetadataResult:
        if isinstance(entry, CorralError):
            return api.BatchUpdateSystemMetadataResult(
                error=res.ItemError(code=entry.code, message=entry.message))
        return api.BatchUpdateSystemMetadataResult(updated=api.UpdateSystemMetadataResponse(
            item=None if omit_items else item_to_proto(entry)))

    error = result.ack_error
    return api.BatchUpdateSystemMetadataResponse(
        results=[one(entry) for entry in result.results],
        committed_cursor=format_cursor(result.committed) if result.committed else "",
        ack_error=res.ItemError(code=error.code, message=error.message) if error else None)


def item_changes(request: api.UpdateItemRequest) -> ItemChanges:
    item = request.item
    return ItemChanges(item_id=item.id, paths=frozenset(request.update_mask.paths),
                       name=item.name, dir=item.dir, description=item.description,
                       metadata_user=struct_in(item.metadata.user, "item.metadata.user"))


def event_filter(request: api.SubscribeRequest) -> EventFilter:
    types = frozenset(_enum_in(EVENT_TYPES_IN, t, "event_types") for t in request.event_types)
    modes = frozenset(_enum_in(PREPROCESSING_MODES_IN, m, "dataset_preprocessing")
                      for m in request.dataset_preprocessing)
    if modes and not request.lease_seconds:
        raise InvalidArgument("dataset_preprocessing needs leased delivery (lease_seconds > 0)")
    return EventFilter(types=types, dataset_id=request.dataset_id, dataset_modes=modes)


def preprocessing_mode(value: int) -> PreprocessingMode | None:
    """None when unset; INVALID_ARGUMENT naming `mode` for an unknown value."""
    if value == res.PREPROCESSING_MODE_UNSPECIFIED:
        return None
    return _enum_in(PREPROCESSING_MODES_IN, value, "mode")


def start_position(value: int) -> StartPosition:
    return _enum_in(START_POSITIONS, value, "start_position")


def lease_time(expire_ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(expire_ms)
    return stamp


def _lease(leased: LeasedEvent) -> api.EventLease:
    return api.EventLease(subscriber_id=leased.subscriber_id,
                          expire_time=lease_time(leased.expire_ms),
                          delivery_attempt=leased.attempt)


def leased_event_to_proto(leased: LeasedEvent) -> api.SubscribeResponse:
    return api.SubscribeResponse(event=event_to_proto(leased.event), lease=_lease(leased))


def leased_events_to_proto(batch: Sequence[LeasedEvent]) -> api.SubscribeResponse:
    """Several events in one response (SubscribeRequest.max_events_per_response)."""
    return api.SubscribeResponse(events=[
        api.SubscribedEvent(event=event_to_proto(leased.event), lease=_lease(leased))
        for leased in batch])


class Encoded(Generic[R]):
    """Converts the entries of one list response to messages once: `size` weighs an entry
    for the page's byte budget (in the domain's worker thread), `message` hands it back for
    the response."""

    def __init__(self, to_proto: Callable[[R], Message]) -> None:
        self._to_proto = to_proto
        self._done: dict[int, tuple[R, Message]] = {}  # id(entry): (entry, its message)

    def size(self, entry: R) -> int:
        """Bytes the entry takes in the response's repeated field: tag, length, message
        (the lists' entries are field 1: a one-byte tag)."""
        message = self._to_proto(entry)
        self._done[id(entry)] = (entry, message)  # the entry is kept: its id stays unique
        length = message.ByteSize()
        return 1 + _varint_size(length) + length

    def message(self, entry: R) -> Message:
        done = self._done.get(id(entry))
        return done[1] if done is not None else self._to_proto(entry)


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)
