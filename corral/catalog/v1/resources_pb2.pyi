import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ItemType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ITEM_TYPE_UNSPECIFIED: _ClassVar[ItemType]
    ITEM_TYPE_FILE: _ClassVar[ItemType]
    ITEM_TYPE_DIR: _ClassVar[ItemType]
    ITEM_TYPE_LINK: _ClassVar[ItemType]

class DuplicatePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DUPLICATE_POLICY_UNSPECIFIED: _ClassVar[DuplicatePolicy]
    DUPLICATE_POLICY_SKIP: _ClassVar[DuplicatePolicy]
    DUPLICATE_POLICY_OVERWRITE: _ClassVar[DuplicatePolicy]
    DUPLICATE_POLICY_FAIL: _ClassVar[DuplicatePolicy]

class CreateOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREATE_OUTCOME_UNSPECIFIED: _ClassVar[CreateOutcome]
    CREATE_OUTCOME_CREATED: _ClassVar[CreateOutcome]
    CREATE_OUTCOME_SKIPPED: _ClassVar[CreateOutcome]
    CREATE_OUTCOME_OVERWRITTEN: _ClassVar[CreateOutcome]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_CREATED: _ClassVar[EventType]
    EVENT_TYPE_UPDATED: _ClassVar[EventType]
    EVENT_TYPE_DELETED: _ClassVar[EventType]

class PreprocessingMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREPROCESSING_MODE_UNSPECIFIED: _ClassVar[PreprocessingMode]
    PREPROCESSING_MODE_GLOBAL: _ClassVar[PreprocessingMode]
    PREPROCESSING_MODE_PRIVATE: _ClassVar[PreprocessingMode]
    PREPROCESSING_MODE_OFF: _ClassVar[PreprocessingMode]
ITEM_TYPE_UNSPECIFIED: ItemType
ITEM_TYPE_FILE: ItemType
ITEM_TYPE_DIR: ItemType
ITEM_TYPE_LINK: ItemType
DUPLICATE_POLICY_UNSPECIFIED: DuplicatePolicy
DUPLICATE_POLICY_SKIP: DuplicatePolicy
DUPLICATE_POLICY_OVERWRITE: DuplicatePolicy
DUPLICATE_POLICY_FAIL: DuplicatePolicy
CREATE_OUTCOME_UNSPECIFIED: CreateOutcome
CREATE_OUTCOME_CREATED: CreateOutcome
CREATE_OUTCOME_SKIPPED: CreateOutcome
CREATE_OUTCOME_OVERWRITTEN: CreateOutcome
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_CREATED: EventType
EVENT_TYPE_UPDATED: EventType
EVENT_TYPE_DELETED: EventType
PREPROCESSING_MODE_UNSPECIFIED: PreprocessingMode
PREPROCESSING_MODE_GLOBAL: PreprocessingMode
PREPROCESSING_MODE_PRIVATE: PreprocessingMode
PREPROCESSING_MODE_OFF: PreprocessingMode

class Dataset(_message.Message):
    __slots__ = ("id", "name", "description", "project", "create_time", "item_count", "preprocessing")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    project: str
    create_time: _timestamp_pb2.Timestamp
    item_count: int
    preprocessing: PreprocessingMode
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., project: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., item_count: _Optional[int] = ..., preprocessing: _Optional[_Union[PreprocessingMode, str]] = ...) -> None: ...

class ItemMetadata(_message.Message):
    __slots__ = ("system", "user")
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    system: _struct_pb2.Struct
    user: _struct_pb2.Struct
    def __init__(self, system: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., user: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("id", "dataset_id", "dir", "name", "filename", "type", "size", "sha256", "blob_key", "description", "metadata", "create_time", "update_time", "link")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    BLOB_KEY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    id: str
    dataset_id: str
    dir: str
    name: str
    filename: str
    type: ItemType
    size: int
    sha256: str
    blob_key: str
    description: str
    metadata: ItemMetadata
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    link: LinkInfo
    def __init__(self, id: _Optional[str] = ..., dataset_id: _Optional[str] = ..., dir: _Optional[str] = ..., name: _Optional[str] = ..., filename: _Optional[str] = ..., type: _Optional[_Union[ItemType, str]] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., blob_key: _Optional[str] = ..., description: _Optional[str] = ..., metadata: _Optional[_Union[ItemMetadata, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., link: _Optional[_Union[LinkInfo, _Mapping]] = ...) -> None: ...

class LinkInfo(_message.Message):
    __slots__ = ("url", "mimetype")
    URL_FIELD_NUMBER: _ClassVar[int]
    MIMETYPE_FIELD_NUMBER: _ClassVar[int]
    url: str
    mimetype: str
    def __init__(self, url: _Optional[str] = ..., mimetype: _Optional[str] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ItemEvent(_message.Message):
    __slots__ = ("cursor", "type", "item_id", "dataset_id", "item", "create_time")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    type: EventType
    item_id: str
    dataset_id: str
    item: Item
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, cursor: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., item_id: _Optional[str] = ..., dataset_id: _Optional[str] = ..., item: _Optional[_Union[Item, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
