import datetime

from corral.catalog.v1 import resources_pb2 as _resources_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
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
    __slots__ = ("upload_id", "spec", "write_offset", "data", "finish_write", "crc32c", "sha256")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    WRITE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FINISH_WRITE_FIELD_NUMBER: _ClassVar[int]
    CRC32C_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    spec: UploadSpec
    write_offset: int
    data: bytes
    finish_write: bool
    crc32c: int
    sha256: str
    def __init__(self, upload_id: _Optional[str] = ..., spec: _Optional[_Union[UploadSpec, _Mapping]] = ..., write_offset: _Optional[int] = ..., data: _Optional[bytes] = ..., finish_write: _Optional[bool] = ..., crc32c: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class UploadItemResponse(_message.Message):
    __slots__ = ("persisted_size", "item", "outcome")
    PERSISTED_SIZE_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    persisted_size: int
    item: _resources_pb2.Item
    outcome: _resources_pb2.CreateOutcome
    def __init__(self, persisted_size: _Optional[int] = ..., item: _Optional[_Union[_resources_pb2.Item, _Mapping]] = ..., outcome: _Optional[_Union[_resources_pb2.CreateOutcome, str]] = ...) -> None: ...

class UploadItemsRequest(_message.Message):
    __slots__ = ("file_index", "spec", "write_offset", "data", "finish_write", "crc32c", "sha256", "batched")
    FILE_INDEX_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    WRITE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FINISH_WRITE_FIELD_NUMBER: _ClassVar[int]
    CRC32C_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    BATCHED_FIELD_NUMBER: _ClassVar[int]
    file_index: int
    spec: UploadSpec
    write_offset: int
    data: bytes
    finish_write: bool
    crc32c: int
    sha256: str
    batched: _containers.RepeatedCompositeFieldContainer[UploadItemsRequest]
    def __init__(self, file_index: _Optional[int] = ..., spec: _Optional[_Union[UploadSpec, _Mapping]] = ..., write_offset: _Optional[int] = ..., data: _Optional[bytes] = ..., finish_write: _Optional[bool] = ..., crc32c: _Optional[int] = ..., sha256: _Optional[str] = ..., batched: _Optional[_Iterable[_Union[UploadItemsRequest, _Mapping]]] = ...) -> None: ...

class UploadItemsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[UploadItemsResult]
    def __init__(self, results: _Optional[_Iterable[_Union[UploadItemsResult, _Mapping]]] = ...) -> None: ...

class UploadItemsResult(_message.Message):
    __slots__ = ("file_index", "item", "outcome", "error")
    FILE_INDEX_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    file_index: int
    item: _resources_pb2.Item
    outcome: _resources_pb2.CreateOutcome
    error: _resources_pb2.ItemError
    def __init__(self, file_index: _Optional[int] = ..., item: _Optional[_Union[_resources_pb2.Item, _Mapping]] = ..., outcome: _Optional[_Union[_resources_pb2.CreateOutcome, str]] = ..., error: _Optional[_Union[_resources_pb2.ItemError, _Mapping]] = ...) -> None: ...

class StartResumableUploadRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: UploadSpec
    def __init__(self, spec: _Optional[_Union[UploadSpec, _Mapping]] = ...) -> None: ...

class StartResumableUploadResponse(_message.Message):
    __slots__ = ("upload_id", "item", "outcome", "expire_time")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    item: _resources_pb2.Item
    outcome: _resources_pb2.CreateOutcome
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, upload_id: _Optional[str] = ..., item: _Optional[_Union[_resources_pb2.Item, _Mapping]] = ..., outcome: _Optional[_Union[_resources_pb2.CreateOutcome, str]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QueryUploadStatusRequest(_message.Message):
    __slots__ = ("upload_id",)
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    def __init__(self, upload_id: _Optional[str] = ...) -> None: ...

class QueryUploadStatusResponse(_message.Message):
    __slots__ = ("persisted_size", "item", "outcome")
    PERSISTED_SIZE_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    persisted_size: int
    item: _resources_pb2.Item
    outcome: _resources_pb2.CreateOutcome
    def __init__(self, persisted_size: _Optional[int] = ..., item: _Optional[_Union[_resources_pb2.Item, _Mapping]] = ..., outcome: _Optional[_Union[_resources_pb2.CreateOutcome, str]] = ...) -> None: ...

class CancelResumableUploadRequest(_message.Message):
    __slots__ = ("upload_id",)
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    def __init__(self, upload_id: _Optional[str] = ...) -> None: ...

class CancelResumableUploadResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

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

class ImportCsvSpec(_message.Message):
    __slots__ = ("dataset_id", "remote_dir", "csv_name", "fetch_concurrency")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    REMOTE_DIR_FIELD_NUMBER: _ClassVar[int]
    CSV_NAME_FIELD_NUMBER: _ClassVar[int]
    FETCH_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    remote_dir: str
    csv_name: str
    fetch_concurrency: int
    def __init__(self, dataset_id: _Optional[str] = ..., remote_dir: _Optional[str] = ..., csv_name: _Optional[str] = ..., fetch_concurrency: _Optional[int] = ...) -> None: ...

class ImportCsvRequest(_message.Message):
    __slots__ = ("spec", "data")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    spec: ImportCsvSpec
    data: bytes
    def __init__(self, spec: _Optional[_Union[ImportCsvSpec, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ImportCsvRowResult(_message.Message):
    __slots__ = ("row", "line", "id", "action", "item", "outcome", "error")
    ROW_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    row: int
    line: int
    id: str
    action: str
    item: _resources_pb2.Item
    outcome: _resources_pb2.CreateOutcome
    error: _resources_pb2.ItemError
    def __init__(self, row: _Optional[int] = ..., line: _Optional[int] = ..., id: _Optional[str] = ..., action: _Optional[str] = ..., item: _Optional[_Union[_resources_pb2.Item, _Mapping]] = ..., outcome: _Optional[_Union[_resources_pb2.CreateOutcome, str]] = ..., error: _Optional[_Union[_resources_pb2.ItemError, _Mapping]] = ...) -> None: ...

class ImportCsvSummary(_message.Message):
    __slots__ = ("folder", "rows", "created", "skipped", "failed", "fetch_concurrency")
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FETCH_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    folder: str
    rows: int
    created: int
    skipped: int
    failed: int
    fetch_concurrency: int
    def __init__(self, folder: _Optional[str] = ..., rows: _Optional[int] = ..., created: _Optional[int] = ..., skipped: _Optional[int] = ..., failed: _Optional[int] = ..., fetch_concurrency: _Optional[int] = ...) -> None: ...

class ImportCsvResponse(_message.Message):
    __slots__ = ("row", "summary")
    ROW_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    row: ImportCsvRowResult
    summary: ImportCsvSummary
    def __init__(self, row: _Optional[_Union[ImportCsvRowResult, _Mapping]] = ..., summary: _Optional[_Union[ImportCsvSummary, _Mapping]] = ...) -> None: ...
