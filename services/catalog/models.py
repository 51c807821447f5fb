"""Table definitions (SQLAlchemy 2 typed models). The schema itself is created and evolved by
the Alembic migrations in `migrations/`; these models must match the newest revision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Paths are compared and ordered bytewise on both databases, so range scans for recursive
# listings and keyset pagination agree (PostgreSQL's default collation may be linguistic).
Path = String().with_variant(String(collation="C"), "postgresql")
Json = JSON().with_variant(JSONB(), "postgresql")
Seq = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid
Timestamp = DateTime(timezone=True)

# On PostgreSQL the writing transaction's id orders events by commit visibility (see events.py);
# SQLite serialises writers, so its events need no such column and it stays 0 there.
PG_TXID_DEFAULT = "(pg_current_xact_id()::text::bigint)"

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (
        Index("ix_datasets_project_name", "project", "name", unique=True),
        Index("ix_datasets_project_request_id", "project", "request_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(128), server_default="default")
    name: Mapped[str] = mapped_column(Path)
    description: Mapped[str] = mapped_column(Text, server_default="")
    create_time: Mapped[datetime] = mapped_column(Timestamp)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Revision 0006: "global", "private" or "off" (records.PreprocessingMode).
    preprocessing: Mapped[str] = mapped_column(String(16), server_default="global")


class ItemRow(Base):
    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_dataset_filename", "dataset_id", "filename", unique=True),
        Index("ix_items_dataset_dir_filename", "dataset_id", "dir", "filename"),
        Index("ix_items_dataset_request_id", "dataset_id", "request_id", unique=True),
        Index("ix_items_blob_key", "blob_key"),
        Index("ix_items_thumbnail_key", "thumbnail_key"),
        # Revision 0003_queries: sort keys with the id tiebreaker. It also indexes
        # (dataset_id, metadata.system.mimetype) and, on PostgreSQL, metadata_user with GIN
        # (jsonb_path_ops): dialect-specific expressions, defined in the migration only.
        Index("ix_items_dataset_name_id", "dataset_id", "name", "id"),
        Index("ix_items_dataset_size_id", "dataset_id", "size", "id"),
        Index("ix_items_dataset_create_time_id", "dataset_id", "create_time", "id"),
        Index("ix_items_dataset_update_time_id", "dataset_id", "update_time", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("datasets.id", ondelete="CASCADE"))
    dir: Mapped[str] = mapped_column(Path)
    name: Mapped[str] = mapped_column(Path)
    filename: Mapped[str] = mapped_column(Path)
    type: Mapped[str] = mapped_column(String(8))  # "file", "dir" or "link"
    size: Mapped[int] = mapped_column(BigInteger, server_default="0")
    sha256: Mapped[str] = mapped_column(String(64), server_default="")
    blob_key: Mapped[str] = mapped_column(String(512), server_default="")
    description: Mapped[str] = mapped_column(Text, server_default="")
    metadata_system: Mapped[dict[str, Any]] = mapped_column(Json)
    metadata_user: Mapped[dict[str, Any]] = mapped_column(Json)
    create_time: Mapped[datetime] = mapped_column(Timestamp)
    update_time: Mapped[datetime] = mapped_column(Timestamp)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # What the call named by request_id did ("created" or "overwritten"), so its retry can
    # answer with the first call's outcome.
    request_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    link_url: Mapped[str] = mapped_column(Text, server_default="")
    link_mimetype: Mapped[str] = mapped_column(String(255), server_default="")
    # metadata_system's thumbnail.key, as a column so shared thumbnails can be reference-counted.
    thumbnail_key: Mapped[str] = mapped_column(String(512), server_default="")


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_txid_seq", "txid", "seq"),
        {"sqlite_autoincrement": True},  # a deleted newest seq must never be handed out again
    )

    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    # The migration gives PostgreSQL the server default PG_TXID_DEFAULT.
    txid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    type: Mapped[str] = mapped_column(String(16))  # "created", "updated" or "deleted"
    item_id: Mapped[str] = mapped_column(String(32))
    dataset_id: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    create_time: Mapped[datetime] = mapped_column(Timestamp)
    # Revision 0008: the project of the event's dataset when it was written, so a project's
    # subscribers get only its events, those of deleted datasets included. Indexed with the
    # stream order in the migration only: (project, txid, seq) on PostgreSQL, (project, seq)
    # on SQLite.
    project: Mapped[str] = mapped_column(String(128), server_default="default")


# Consumer group names: "<project>/<name>" for project-bound keys (scope.py), so 128 + 1 + 128.
GroupName = String(320)


class ConsumerGroupRow(Base):
    __tablename__ = "consumer_groups"

    name: Mapped[str] = mapped_column(GroupName, primary_key=True)
    committed_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    committed_txid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    update_time: Mapped[datetime] = mapped_column(Timestamp)


datasets = DatasetRow.__table__
items = ItemRow.__table__
events = EventRow.__table__
consumer_groups = ConsumerGroupRow.__table__


class LeasedGroupRow(Base):
    """A consumer group whose subscribers share its events through leases (see leases.py)."""
    __tablename__ = "leased_groups"

    name: Mapped[str] = mapped_column(GroupName, primary_key=True)
    # The group's filter: comma-separated event types ("" = all) and dataset ("" = all).
    event_types: Mapped[str] = mapped_column(String(64), server_default="")
    dataset_id: Mapped[str] = mapped_column(String(32), server_default="")
    # Revision 0006: comma-separated dataset preprocessing modes ("" = all). NULL for a group
    # created before 0006, whose first subscriber after the upgrade sets it.
    dataset_modes: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Every event up to here has a lease row or was acknowledged (or did not match).
    frontier_txid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    frontier_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    create_time: Mapped[datetime] = mapped_column(Timestamp)
    # Revision 0008: events of this project only ("" = every project).
    project: Mapped[str] = mapped_column(String(128), server_default="")


class EventLeaseRow(Base):
    """An event of a leased group not yet acknowledged: pending (no owner, expire 0) or leased
    to `owner` until `lease_expire_ms`. Acknowledging deletes the row."""
    __tablename__ = "event_leases"
    __table_args__ = (
        Index("ix_event_leases_group_txid_seq", "group_name", "txid", "seq"),
        Index("ix_event_leases_group_owner", "group_name", "owner"),
    )

    group_name: Mapped[str] = mapped_column(GroupName, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    txid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    owner: Mapped[str] = mapped_column(String(128), server_default="")
    # Milliseconds since the epoch: compares the same way on both databases.
    lease_expire_ms: Mapped[int] = mapped_column(BigInteger, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")


class EventRetentionRow(Base):
    """One row: the newest event position retention deleted; cursors before it are gone."""
    __tablename__ = "event_retention"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trimmed_txid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    trimmed_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    update_time: Mapped[datetime] = mapped_column(Timestamp)


leased_groups = LeasedGroupRow.__table__
event_leases = EventLeaseRow.__table__
event_retention = EventRetentionRow.__table__


class TriggerRow(Base):
    """A trigger (see triggers.py); its consumer group is "<project>/trigger:<name>"."""
    __tablename__ = "triggers"
    __table_args__ = (Index("ix_triggers_project_name", "project", "name", unique=True),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(128), server_default="default")
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, server_default="")
    dataset_id: Mapped[str] = mapped_column(String(32), server_default="")
    # The filter tree as JSON (triggers.filter_to_json); NULL matches every item.
    filter: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    actions: Mapped[str] = mapped_column(String(64))  # "created,updated"
    mode: Mapped[str] = mapped_column(String(16))  # "once" or "always"
    paused: Mapped[bool] = mapped_column(Boolean, server_default=false())
    create_time: Mapped[datetime] = mapped_column(Timestamp)
    update_time: Mapped[datetime] = mapped_column(Timestamp)


class TriggerRunRow(Base):
    """An item a once-trigger claimed, by the event that claimed it."""
    __tablename__ = "trigger_runs"

    trigger_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_seq: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), server_default="running")
    update_time: Mapped[datetime] = mapped_column(Timestamp)


triggers = TriggerRow.__table__
trigger_runs = TriggerRunRow.__table__


class ProjectRow(Base):
    """A project owns datasets and triggers; API keys are bound to one (or to all)."""
    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(Text, server_default="")
    create_time: Mapped[datetime] = mapped_column(Timestamp)


class ApiKeyRow(Base):
    """An API key: only the SHA-256 of its secret is kept. `project` NULL = every project."""
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_project", "project"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    project: Mapped[str | None] = mapped_column(String(128), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, server_default="")
    create_time: Mapped[datetime] = mapped_column(Timestamp)
    revoke_time: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


projects = ProjectRow.__table__
api_keys = ApiKeyRow.__table__
