"""Plain values the domain functions take and return; no database or gRPC types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from services.catalog.filters import Checked, SortKey

T = TypeVar("T")


class ItemType(StrEnum):
    FILE = "file"
    DIR = "dir"
    LINK = "link"


class EventType(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


class DuplicatePolicy(StrEnum):
    SKIP = "skip"
    OVERWRITE = "overwrite"
    FAIL = "fail"


class Outcome(StrEnum):
    CREATED = "created"
    SKIPPED = "skipped"
    OVERWRITTEN = "overwritten"


class PreprocessingMode(StrEnum):
    """Who preprocesses a dataset's new items: the shared pool, a private worker, nobody."""
    GLOBAL = "global"
    PRIVATE = "private"
    OFF = "off"


class StartPosition(StrEnum):
    EARLIEST = "earliest"
    LATEST = "latest"


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    description: str
    project: str
    create_time: datetime
    item_count: int = 0
    preprocessing: PreprocessingMode = PreprocessingMode.GLOBAL


@dataclass(frozen=True)
class Item:
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
    metadata_system: dict[str, Any]
    metadata_user: dict[str, Any]
    create_time: datetime
    update_time: datetime
    # Link items only: the remote URL and its declared mimetype.
    link_url: str = ""
    link_mimetype: str = ""

    @property
    def content_key(self) -> str:
        """What the item's content is: its blob, or for a link its URL. Results computed from
        the content (preprocessing) apply only while it is unchanged."""
        return self.blob_key or (f"link:{self.link_url}" if self.link_url else "")

    def to_payload(self) -> dict[str, Any]:
        """The JSON snapshot stored with events."""
        return {
            "link_url": self.link_url, "link_mimetype": self.link_mimetype,
            "id": self.id, "dataset_id": self.dataset_id, "dir": self.dir, "name": self.name,
            "filename": self.filename, "type": str(self.type), "size": self.size,
            "sha256": self.sha256, "blob_key": self.blob_key, "description": self.description,
            "metadata": {"system": self.metadata_system, "user": self.metadata_user},
            "create_time": self.create_time.isoformat(),
            "update_time": self.update_time.isoformat(),
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Item:
        metadata = data.get("metadata") or {}
        return cls(
            id=data["id"], dataset_id=data["dataset_id"], dir=data["dir"], name=data["name"],
            filename=data["filename"], type=ItemType(data["type"]), size=data["size"],
            sha256=data["sha256"], blob_key=data["blob_key"], description=data["description"],
            metadata_system=metadata.get("system") or {}, metadata_user=metadata.get("user") or {},
            create_time=datetime.fromisoformat(data["create_time"]),
            update_time=datetime.fromisoformat(data["update_time"]),
            link_url=data.get("link_url", ""), link_mimetype=data.get("link_mimetype", ""),
        )


@dataclass(frozen=True)
class NewItem:
    """What CreateItem asks for, after conversion from the request (not yet validated)."""
    dataset_id: str
    dir: str
    name: str
    type: ItemType
    size: int
    sha256: str
    blob_key: str
    description: str = ""
    user_metadata: dict[str, Any] = field(default_factory=dict)
    duplicate_policy: DuplicatePolicy = DuplicatePolicy.SKIP
    request_id: str = ""
    link_url: str = ""
    link_mimetype: str = ""


@dataclass(frozen=True)
class CreateItemResult:
    item: Item
    outcome: Outcome
    released_blob_keys: list[str] = field(default_factory=list)
    # The request_id matched an earlier call; item and outcome are that call's.
    replayed: bool = False


@dataclass(frozen=True)
class CloneRequest:
    """What CloneItem asks for; user_metadata None copies the source's."""
    item_id: str
    dataset_id: str = ""
    dir: str = "/"
    name: str = ""
    user_metadata: dict[str, Any] | None = None
    duplicate_policy: DuplicatePolicy = DuplicatePolicy.SKIP
    request_id: str = ""


@dataclass(frozen=True)
class ItemChanges:
    """UpdateItem's new values; only the fields named in `paths` apply."""
    item_id: str
    paths: frozenset[str]
    name: str = ""
    dir: str = ""
    description: str = ""
    metadata_user: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, order=True)
class Position:
    """A place in the event stream. Events are delivered in (txid, seq) order; txid is always
    0 on SQLite."""
    txid: int
    seq: int


@dataclass(frozen=True)
class Event:
    position: Position
    type: EventType
    item_id: str
    dataset_id: str
    item: Item
    create_time: datetime


@dataclass(frozen=True)
class EventFilter:
    types: frozenset[EventType] = frozenset()
    dataset_id: str = ""
    # Leased groups only: events of datasets in one of these preprocessing modes (empty: all).
    dataset_modes: frozenset[PreprocessingMode] = frozenset()
    # Events of this project's datasets only (None: of every project); set from the caller's
    # scope, never from the request.
    project: str | None = None


@dataclass(frozen=True)
class ConsumerGroupState:
    name: str
    committed: Position | None
    head: Position | None
    pending_events: int


@dataclass(frozen=True)
class Page(Generic[T]):
    entries: list[T]
    next_page_token: str = ""
    total_size: int | None = None


@dataclass(frozen=True)
class ItemQuery:
    """One page of a listing: a folder (its children, or everything below it when
    `recursive`), narrowed by a validated filter, in the order of `order` (filename when
    empty), starting after the sort key values `after` of the previous page's last item."""
    dataset_id: str
    dir: str = "/"
    recursive: bool = False
    filter: Checked | None = None
    order: tuple[SortKey, ...] = ()
    after: tuple[Any, ...] | None = None
    limit: int = 100


@dataclass(frozen=True)
class Deletion:
    """What a delete removed, and the blobs it left unreferenced (deleted after commit)."""
    deleted_items: int
    released_blob_keys: list[str] = field(default_factory=list)
