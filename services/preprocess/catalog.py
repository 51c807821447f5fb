"""What the worker needs from the catalog, in plain Python: the adapter in catalog_client.py
speaks gRPC, tests may pass anything with the same methods."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from corral.errors import CorralError


@dataclass(frozen=True)
class CatalogItem:
    id: str
    name: str
    size: int
    blob_key: str
    system: dict[str, Any] = field(default_factory=dict)
    # Link items: the remote content and its declared mimetype.
    link_url: str = ""
    link_mimetype: str = ""

    @property
    def content_key(self) -> str:
        """What the content is: the blob, or for a link its URL ("" for folders). Matches the
        catalog's check of UpdateSystemMetadata's expected_blob_key."""
        return self.blob_key or (f"link:{self.link_url}" if self.link_url else "")

    @property
    def execution_logs(self) -> dict[str, Any]:
        logs = self.system.get("executionLogs")
        return logs if isinstance(logs, dict) else {}

    @property
    def preprocessed_blob_key(self) -> str | None:
        """The blob the last preprocessing result (success or failure) was computed from."""
        record = self.execution_logs.get("preprocess")
        return record.get("blobKey") if isinstance(record, dict) else None

    @property
    def thumbnail_key(self) -> str | None:
        thumbnail = self.system.get("thumbnail")
        return thumbnail.get("key") if isinstance(thumbnail, dict) else None


@dataclass(frozen=True)
class ItemEvent:
    cursor: str
    item_id: str
    # The item as the event was written (None if the catalog sent none), and when, in seconds
    # since the epoch by the catalog's clock (0.0 if unknown).
    item: CatalogItem | None = None
    create_time: float = 0.0
    # 1 on the first delivery to the group; more after a lease expired unacknowledged, when
    # another worker may have handled it already.
    delivery_attempt: int = 1


@dataclass(frozen=True)
class LeaseSettings:
    """How a worker subscribes to its leased consumer group."""
    consumer_group: str
    subscriber_id: str
    lease_seconds: int
    max_in_flight: int
    # A private worker's dataset: its events while it is in private preprocessing mode.
    # Empty: the shared pool, events of every dataset in global mode.
    dataset_id: str = ""


@dataclass(frozen=True)
class DatasetInfo:
    id: str
    name: str
    # "global", "private" or "off".
    preprocessing: str


@dataclass(frozen=True)
class SystemUpdate:
    """One result to write back (update_system_metadata's arguments)."""
    item_id: str
    system: dict[str, Any]
    expected_blob_key: str = ""


@dataclass(frozen=True)
class BatchOutcome:
    """What a batch_update_system_metadata call did: per update None (written) or its error;
    with acknowledgements, the group's committed cursor or why they failed."""
    errors: list[CorralError | None]
    committed_cursor: str = ""
    ack_error: CorralError | None = None


@dataclass(frozen=True)
class ConsumerGroupState:
    committed_cursor: str
    head_cursor: str
    pending_events: int


class Catalog(Protocol):
    """Raises corral.errors.CorralError subclasses (NotFound, FailedPrecondition, Unavailable)."""

    def subscribe_leased(self, lease: LeaseSettings,
                         on_connected: Callable[[], None]) -> AsyncIterator[ItemEvent]:
        """CREATED events leased to this subscriber of the group; `on_connected()` is called
        once the stream is open."""
        ...

    async def get_item(self, item_id: str) -> CatalogItem: ...

    async def get_dataset(self, name_or_id: str) -> DatasetInfo:
        """By id (32 hex characters) or else by name."""
        ...

    async def update_system_metadata(self, item_id: str, system: dict[str, Any],
                                     expected_blob_key: str) -> None: ...

    async def ack_event_cursors(self, consumer_group: str, cursors: list[str]) -> str:
        """Acknowledges these events; returns the group's committed cursor."""
        ...

    async def extend_leases(self, lease: LeaseSettings, cursors: list[str],
                            lease_seconds: int) -> list[str]:
        """Extends the leases (0: gives them back); returns the cursors still held."""
        ...

    async def get_consumer_group(self, consumer_group: str) -> ConsumerGroupState: ...

    async def close(self) -> None: ...
