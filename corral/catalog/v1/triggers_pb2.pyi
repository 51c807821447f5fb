import datetime

from corral.catalog.v1 import filters_pb2 as _filters_pb2
from corral.catalog.v1 import resources_pb2 as _resources_pb2
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

class TriggerMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIGGER_MODE_UNSPECIFIED: _ClassVar[TriggerMode]
    TRIGGER_MODE_ONCE: _ClassVar[TriggerMode]
    TRIGGER_MODE_ALWAYS: _ClassVar[TriggerMode]
TRIGGER_MODE_UNSPECIFIED: TriggerMode
TRIGGER_MODE_ONCE: TriggerMode
TRIGGER_MODE_ALWAYS: TriggerMode

class Trigger(_message.Message):
    __slots__ = ("name", "project", "dataset_id", "filter", "actions", "mode", "paused", "consumer_group", "create_time", "update_time", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    project: str
    dataset_id: str
    filter: _filters_pb2.ItemFilter
    actions: _containers.RepeatedScalarFieldContainer[_resources_pb2.EventType]
    mode: TriggerMode
    paused: bool
    consumer_group: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    description: str
    def __init__(self, name: _Optional[str] = ..., project: _Optional[str] = ..., dataset_id: _Optional[str] = ..., filter: _Optional[_Union[_filters_pb2.ItemFilter, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[_resources_pb2.EventType, str]]] = ..., mode: _Optional[_Union[TriggerMode, str]] = ..., paused: _Optional[bool] = ..., consumer_group: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class CreateTriggerRequest(_message.Message):
    __slots__ = ("trigger",)
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    trigger: Trigger
    def __init__(self, trigger: _Optional[_Union[Trigger, _Mapping]] = ...) -> None: ...

class CreateTriggerResponse(_message.Message):
    __slots__ = ("trigger",)
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    trigger: Trigger
    def __init__(self, trigger: _Optional[_Union[Trigger, _Mapping]] = ...) -> None: ...

class GetTriggerRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetTriggerResponse(_message.Message):
    __slots__ = ("trigger",)
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    trigger: Trigger
    def __init__(self, trigger: _Optional[_Union[Trigger, _Mapping]] = ...) -> None: ...

class ListTriggersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTriggersResponse(_message.Message):
    __slots__ = ("triggers", "next_page_token")
    TRIGGERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    triggers: _containers.RepeatedCompositeFieldContainer[Trigger]
    next_page_token: str
    def __init__(self, triggers: _Optional[_Iterable[_Union[Trigger, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateTriggerRequest(_message.Message):
    __slots__ = ("trigger", "update_mask")
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    trigger: Trigger
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, trigger: _Optional[_Union[Trigger, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateTriggerResponse(_message.Message):
    __slots__ = ("trigger",)
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    trigger: Trigger
    def __init__(self, trigger: _Optional[_Union[Trigger, _Mapping]] = ...) -> None: ...

class DeleteTriggerRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTriggerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartTriggerRunRequest(_message.Message):
    __slots__ = ("trigger", "item_id", "event_cursor")
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    trigger: str
    item_id: str
    event_cursor: str
    def __init__(self, trigger: _Optional[str] = ..., item_id: _Optional[str] = ..., event_cursor: _Optional[str] = ...) -> None: ...

class StartTriggerRunResponse(_message.Message):
    __slots__ = ("proceed",)
    PROCEED_FIELD_NUMBER: _ClassVar[int]
    proceed: bool
    def __init__(self, proceed: _Optional[bool] = ...) -> None: ...

class TriggerRun(_message.Message):
    __slots__ = ("status", "attempts", "duration_ms", "error", "finish_time")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    status: str
    attempts: int
    duration_ms: int
    error: str
    finish_time: _timestamp_pb2.Timestamp
    def __init__(self, status: _Optional[str] = ..., attempts: _Optional[int] = ..., duration_ms: _Optional[int] = ..., error: _Optional[str] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompleteTriggerRunRequest(_message.Message):
    __slots__ = ("trigger", "item_id", "event_cursor", "run", "system")
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    trigger: str
    item_id: str
    event_cursor: str
    run: TriggerRun
    system: _struct_pb2.Struct
    def __init__(self, trigger: _Optional[str] = ..., item_id: _Optional[str] = ..., event_cursor: _Optional[str] = ..., run: _Optional[_Union[TriggerRun, _Mapping]] = ..., system: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CompleteTriggerRunResponse(_message.Message):
    __slots__ = ("found", "item")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    found: bool
    item: _resources_pb2.Item
    def __init__(self, found: _Optional[bool] = ..., item: _Optional[_Union[_resources_pb2.Item, _Mapping]] = ...) -> None: ...
