from corral.catalog.v1 import resources_pb2 as _resources_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UploadSpec(_message.Message):
    __slots__ = ("dataset_id", "remote_dir", "name", "user_metadata", "description", "size", "sha256", "duplicate_policy", "request_id")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    REMOTE_DIR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_POLICY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    remote_dir: str
    name: str
    user_metadata: _struct_pb2.Struct
    description: str
    size: int
    sha256: str
    duplicate_policy: _resources_pb2.DuplicatePolicy
    request_id: str
    def __init__(self, dataset_id: _Optional[str] = ..., remote_dir: _Optional[str] = ..., name: _Optional[str] = ..., user_metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., description: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., duplicate_policy: _Optional[_Union[_resources_pb2.DuplicatePolicy, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class UploadItemRequest(_message.Message):
    __slots__ = ("upload_id", "spec", "write_offset", "data", "finish_write")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    WRITE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FINISH_WRITE_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    spec: UploadSpec
    write_offset: int
    data: bytes
    finish_write: bool
    def __init__(self, upload_id: _Optional[str] = ..., spec: _Optional[_Union[UploadSpec, _Mapping]] = ..., write_offset: _Optional[int] = ..., data: _Optional[bytes] = ..., finish_write: _Optional[bool] = ...) -> None: ...

class UploadItemResponse(_message.Message):
    __slots__ = ("persisted_size", "item", "outcome")
    PERSISTED_SIZE_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    persisted_size: int
    item: _resources_pb2.Item
    outcome: _resources_pb2.CreateOutcome
    def __init__(self, persisted_size: _Optional[int] = ..., item: _Optional[_Union[_resources_pb2.Item, _Mapping]] = ..., outcome: _Optional[_Union[_resources_pb2.CreateOutcome, str]] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("item_id", "thumbnail", "read_offset")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    READ_OFFSET_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    thumbnail: bool
    read_offset: int
    def __init__(self, item_id: _Optional[str] = ..., thumbnail: _Optional[bool] = ..., read_offset: _Optional[int] = ...) -> None: ...

class DownloadResponse(_message.Message):
    __slots__ = ("data", "total_size", "content_type")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    total_size: int
    content_type: str
    def __init__(self, data: _Optional[bytes] = ..., total_size: _Optional[int] = ..., content_type: _Optional[str] = ...) -> None: ...
