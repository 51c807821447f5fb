from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("processed", "failed", "skipped", "in_flight", "lag", "committed_cursor", "subscribed", "pool_processes", "consumer_group", "dataset_id")
    PROCESSED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_CURSOR_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    POOL_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    processed: int
    failed: int
    skipped: int
    in_flight: int
    lag: int
    committed_cursor: str
    subscribed: bool
    pool_processes: int
    consumer_group: str
    dataset_id: str
    def __init__(self, processed: _Optional[int] = ..., failed: _Optional[int] = ..., skipped: _Optional[int] = ..., in_flight: _Optional[int] = ..., lag: _Optional[int] = ..., committed_cursor: _Optional[str] = ..., subscribed: _Optional[bool] = ..., pool_processes: _Optional[int] = ..., consumer_group: _Optional[str] = ..., dataset_id: _Optional[str] = ...) -> None: ...
