import datetime

from corral.catalog.v1 import filters_pb2 as _filters_pb2
from corral.catalog.v1 import resources_pb2 as _resources_pb2
from corral.catalog.v1 import triggers_pb2 as _triggers_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StartPosition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    START_POSITION_UNSPECIFIED: _ClassVar[StartPosition]
    START_POSITION_EARLIEST: _ClassVar[StartPosition]
    START_POSITION_LATEST: _ClassVar[StartPosition]
START_POSITION_UNSPECIFIED: StartPosition
START_POSITION_EARLIEST: StartPosition
START_POSITION_LATEST: StartPosition

class CreateDatasetRequest(_message.Message):
    __slots__ = ("name", "description", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: _resources_pb2.Dataset
    def __init__(self, dataset: _Optional[_Union[_resources_pb2.Dataset, _Mapping]] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("dataset_id", "name")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    name: str
    def __init__(self, dataset_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: _resources_pb2.Dataset
    def __init__(self, dataset: _Optional[_Union[_resources_pb2.Dataset, _Mapping]] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Dataset]
    next_page_token: str
    def __init__(self, datasets: _Optional[_Iterable[_Union[_resources_pb2.Dataset, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class DeleteDatasetResponse(_message.Message):
    __slots__ = ("deleted_items",)
    DELETED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    deleted_items: int
    def __init__(self, deleted_items: _Optional[int] = ...) -> None: ...

class CreateItemRequest(_message.Message):
    __slots__ = ("dataset_id", "dir", "name", "type", "size", "sha256", "blob_key", "description", "user_metadata", "duplicate_policy", "request_id", "link")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    BLOB_KEY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_POLICY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    dir: str
    name: str
    type: _resources_pb2.ItemType
    size: int
    sha256: str
    blob_key: str
    description: str
    user_metadata: _struct_pb2.Struct
    duplicate_policy: _resources_pb2.DuplicatePolicy
    request_id: str
    link: _resources_pb2.LinkInfo
    def __init__(self, dataset_id: _Optional[str] = ..., dir: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[_Union[_resources_pb2.ItemType, str]] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., blob_key: _Optional[str] = ..., description: _Optional[str] = ..., user_metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., duplicate_policy: _Optional[_Union[_resources_pb2.DuplicatePolicy, str]] = ..., request_id: _Optional[str] = ..., link: _Optional[_Union[_resources_pb2.LinkInfo, _Mapping]] = ...) -> None: ...

class CreateItemResponse(_message.Message):
    __slots__ = ("item", "outcome", "released_blob_keys", "replayed")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RELEASED_BLOB_KEYS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    item: _resources_pb2.Item
    outcome: _resources_pb2.CreateOutcome
    released_blob_keys: _containers.RepeatedScalarFieldContainer[str]
    replayed: bool
    def __init__(self, item: _Optional[_Union[_resources_pb2.Item, _Mapping]] = ..., outcome: _Optional[_Union[_resources_pb2.CreateOutcome, str]] = ..., released_blob_keys: _Optional[_Iterable[str]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class BatchCreateItemsRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[CreateItemRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[CreateItemRequest, _Mapping]]] = ...) -> None: ...

class BatchCreateItemsResult(_message.Message):
    __slots__ = ("created", "error")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    created: CreateItemResponse
    error: _resources_pb2.ItemError
    def __init__(self, created: _Optional[_Union[CreateItemResponse, _Mapping]] = ..., error: _Optional[_Union[_resources_pb2.ItemError, _Mapping]] = ...) -> None: ...

class BatchCreateItemsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchCreateItemsResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchCreateItemsResult, _Mapping]]] = ...) -> None: ...

class CloneItemRequest(_message.Message):
    __slots__ = ("item_id", "dataset_id", "dir", "name", "user_metadata", "duplicate_policy", "request_id")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_POLICY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    dataset_id: str
    dir: str
    name: str
    user_metadata: _struct_pb2.Struct
    duplicate_policy: _resources_pb2.DuplicatePolicy
    request_id: str
    def __init__(self, item_id: _Optional[str] = ..., dataset_id: _Optional[str] = ..., dir: _Optional[str] = ..., name: _Optional[str] = ..., user_metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., duplicate_policy: _Optional[_Union[_resources_pb2.DuplicatePolicy, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CloneItemResponse(_message.Message):
    __slots__ = ("item", "outcome")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    item: _resources_pb2.Item
    outcome: _resources_pb2.CreateOutcome
    def __init__(self, item: _Optional[_Union[_resources_pb2.Item, _Mapping]] = ..., outcome: _Optional[_Union[_resources_pb2.CreateOutcome, str]] = ...) -> None: ...

class GetItemRequest(_message.Message):
    __slots__ = ("item_id", "dataset_id", "filename", "request_id")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    dataset_id: str
    filename: str
    request_id: str
    def __init__(self, item_id: _Optional[str] = ..., dataset_id: _Optional[str] = ..., filename: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetItemResponse(_message.Message):
    __slots__ = ("item",)
    ITEM_FIELD_NUMBER: _ClassVar[int]
    item: _resources_pb2.Item
    def __init__(self, item: _Optional[_Union[_resources_pb2.Item, _Mapping]] = ...) -> None: ...

class ListItemsRequest(_message.Message):
    __slots__ = ("dataset_id", "dir", "recursive", "page_size", "page_token", "filter", "order_by", "include_total_size")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    dir: str
    recursive: bool
    page_size: int
    page_token: str
    filter: _filters_pb2.ItemFilter
    order_by: _containers.RepeatedCompositeFieldContainer[_filters_pb2.ItemOrder]
    include_total_size: bool
    def __init__(self, dataset_id: _Optional[str] = ..., dir: _Optional[str] = ..., recursive: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[_Union[_filters_pb2.ItemFilter, _Mapping]] = ..., order_by: _Optional[_Iterable[_Union[_filters_pb2.ItemOrder, _Mapping]]] = ..., include_total_size: _Optional[bool] = ...) -> None: ...

class ListItemsResponse(_message.Message):
    __slots__ = ("items", "next_page_token", "total_size")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Item]
    next_page_token: str
    total_size: int
    def __init__(self, items: _Optional[_Iterable[_Union[_resources_pb2.Item, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class UpdateItemRequest(_message.Message):
    __slots__ = ("item", "update_mask")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    item: _resources_pb2.Item
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, item: _Optional[_Union[_resources_pb2.Item, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateItemResponse(_message.Message):
    __slots__ = ("item",)
    ITEM_FIELD_NUMBER: _ClassVar[int]
    item: _resources_pb2.Item
    def __init__(self, item: _Optional[_Union[_resources_pb2.Item, _Mapping]] = ...) -> None: ...

class DeleteItemRequest(_message.Message):
    __slots__ = ("item_id",)
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    def __init__(self, item_id: _Optional[str] = ...) -> None: ...

class DeleteItemResponse(_message.Message):
    __slots__ = ("deleted_items",)
    DELETED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    deleted_items: int
    def __init__(self, deleted_items: _Optional[int] = ...) -> None: ...

class UpdateSystemMetadataRequest(_message.Message):
    __slots__ = ("item_id", "system", "expected_blob_key")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_BLOB_KEY_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    system: _struct_pb2.Struct
    expected_blob_key: str
    def __init__(self, item_id: _Optional[str] = ..., system: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., expected_blob_key: _Optional[str] = ...) -> None: ...

class UpdateSystemMetadataResponse(_message.Message):
    __slots__ = ("item",)
    ITEM_FIELD_NUMBER: _ClassVar[int]
    item: _resources_pb2.Item
    def __init__(self, item: _Optional[_Union[_resources_pb2.Item, _Mapping]] = ...) -> None: ...

class BatchUpdateSystemMetadataRequest(_message.Message):
    __slots__ = ("requests", "omit_items", "consumer_group", "ack_event_cursors")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    OMIT_ITEMS_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    ACK_EVENT_CURSORS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[UpdateSystemMetadataRequest]
    omit_items: bool
    consumer_group: str
    ack_event_cursors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, requests: _Optional[_Iterable[_Union[UpdateSystemMetadataRequest, _Mapping]]] = ..., omit_items: _Optional[bool] = ..., consumer_group: _Optional[str] = ..., ack_event_cursors: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchUpdateSystemMetadataResult(_message.Message):
    __slots__ = ("updated", "error")
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    updated: UpdateSystemMetadataResponse
    error: _resources_pb2.ItemError
    def __init__(self, updated: _Optional[_Union[UpdateSystemMetadataResponse, _Mapping]] = ..., error: _Optional[_Union[_resources_pb2.ItemError, _Mapping]] = ...) -> None: ...

class BatchUpdateSystemMetadataResponse(_message.Message):
    __slots__ = ("results", "committed_cursor", "ack_error")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_CURSOR_FIELD_NUMBER: _ClassVar[int]
    ACK_ERROR_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchUpdateSystemMetadataResult]
    committed_cursor: str
    ack_error: _resources_pb2.ItemError
    def __init__(self, results: _Optional[_Iterable[_Union[BatchUpdateSystemMetadataResult, _Mapping]]] = ..., committed_cursor: _Optional[str] = ..., ack_error: _Optional[_Union[_resources_pb2.ItemError, _Mapping]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("consumer_group", "start_cursor", "start_position", "event_types", "dataset_id", "lease_seconds", "max_in_flight", "subscriber_id", "dataset_preprocessing", "max_events_per_response")
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    START_CURSOR_FIELD_NUMBER: _ClassVar[int]
    START_POSITION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENTS_PER_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    consumer_group: str
    start_cursor: str
    start_position: StartPosition
    event_types: _containers.RepeatedScalarFieldContainer[_resources_pb2.EventType]
    dataset_id: str
    lease_seconds: int
    max_in_flight: int
    subscriber_id: str
    dataset_preprocessing: _containers.RepeatedScalarFieldContainer[_resources_pb2.PreprocessingMode]
    max_events_per_response: int
    def __init__(self, consumer_group: _Optional[str] = ..., start_cursor: _Optional[str] = ..., start_position: _Optional[_Union[StartPosition, str]] = ..., event_types: _Optional[_Iterable[_Union[_resources_pb2.EventType, str]]] = ..., dataset_id: _Optional[str] = ..., lease_seconds: _Optional[int] = ..., max_in_flight: _Optional[int] = ..., subscriber_id: _Optional[str] = ..., dataset_preprocessing: _Optional[_Iterable[_Union[_resources_pb2.PreprocessingMode, str]]] = ..., max_events_per_response: _Optional[int] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("event", "lease", "events")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    event: _resources_pb2.ItemEvent
    lease: EventLease
    events: _containers.RepeatedCompositeFieldContainer[SubscribedEvent]
    def __init__(self, event: _Optional[_Union[_resources_pb2.ItemEvent, _Mapping]] = ..., lease: _Optional[_Union[EventLease, _Mapping]] = ..., events: _Optional[_Iterable[_Union[SubscribedEvent, _Mapping]]] = ...) -> None: ...

class SubscribedEvent(_message.Message):
    __slots__ = ("event", "lease")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    event: _resources_pb2.ItemEvent
    lease: EventLease
    def __init__(self, event: _Optional[_Union[_resources_pb2.ItemEvent, _Mapping]] = ..., lease: _Optional[_Union[EventLease, _Mapping]] = ...) -> None: ...

class AckEventsRequest(_message.Message):
    __slots__ = ("consumer_group", "cursor", "event_cursors")
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    EVENT_CURSORS_FIELD_NUMBER: _ClassVar[int]
    consumer_group: str
    cursor: str
    event_cursors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, consumer_group: _Optional[str] = ..., cursor: _Optional[str] = ..., event_cursors: _Optional[_Iterable[str]] = ...) -> None: ...

class AckEventsResponse(_message.Message):
    __slots__ = ("committed_cursor",)
    COMMITTED_CURSOR_FIELD_NUMBER: _ClassVar[int]
    committed_cursor: str
    def __init__(self, committed_cursor: _Optional[str] = ...) -> None: ...

class GetConsumerGroupRequest(_message.Message):
    __slots__ = ("consumer_group",)
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    consumer_group: str
    def __init__(self, consumer_group: _Optional[str] = ...) -> None: ...

class GetConsumerGroupResponse(_message.Message):
    __slots__ = ("consumer_group", "committed_cursor", "head_cursor", "pending_events", "leased_events")
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_CURSOR_FIELD_NUMBER: _ClassVar[int]
    HEAD_CURSOR_FIELD_NUMBER: _ClassVar[int]
    PENDING_EVENTS_FIELD_NUMBER: _ClassVar[int]
    LEASED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    consumer_group: str
    committed_cursor: str
    head_cursor: str
    pending_events: int
    leased_events: int
    def __init__(self, consumer_group: _Optional[str] = ..., committed_cursor: _Optional[str] = ..., head_cursor: _Optional[str] = ..., pending_events: _Optional[int] = ..., leased_events: _Optional[int] = ...) -> None: ...

class EventLease(_message.Message):
    __slots__ = ("subscriber_id", "expire_time", "delivery_attempt")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    expire_time: _timestamp_pb2.Timestamp
    delivery_attempt: int
    def __init__(self, subscriber_id: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivery_attempt: _Optional[int] = ...) -> None: ...

class ExtendEventLeasesRequest(_message.Message):
    __slots__ = ("consumer_group", "subscriber_id", "event_cursors", "lease_seconds")
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_CURSORS_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    consumer_group: str
    subscriber_id: str
    event_cursors: _containers.RepeatedScalarFieldContainer[str]
    lease_seconds: int
    def __init__(self, consumer_group: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., event_cursors: _Optional[_Iterable[str]] = ..., lease_seconds: _Optional[int] = ...) -> None: ...

class ExtendEventLeasesResponse(_message.Message):
    __slots__ = ("extended_cursors", "expire_time")
    EXTENDED_CURSORS_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    extended_cursors: _containers.RepeatedScalarFieldContainer[str]
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, extended_cursors: _Optional[_Iterable[str]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpdateMatchingItemsRequest(_message.Message):
    __slots__ = ("dataset_id", "filter", "user_metadata", "update_mask")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    filter: _filters_pb2.ItemFilter
    user_metadata: _struct_pb2.Struct
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, dataset_id: _Optional[str] = ..., filter: _Optional[_Union[_filters_pb2.ItemFilter, _Mapping]] = ..., user_metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateMatchingItemsResponse(_message.Message):
    __slots__ = ("updated_items",)
    UPDATED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    updated_items: int
    def __init__(self, updated_items: _Optional[int] = ...) -> None: ...

class SetDatasetPreprocessingRequest(_message.Message):
    __slots__ = ("dataset_id", "mode")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    mode: _resources_pb2.PreprocessingMode
    def __init__(self, dataset_id: _Optional[str] = ..., mode: _Optional[_Union[_resources_pb2.PreprocessingMode, str]] = ...) -> None: ...

class SetDatasetPreprocessingResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: _resources_pb2.Dataset
    def __init__(self, dataset: _Optional[_Union[_resources_pb2.Dataset, _Mapping]] = ...) -> None: ...
