"""Catalog settings: flags, then environment variables, then defaults."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import setting
from services.common.limit_settings import (
    MAX_MESSAGE_BYTES_ENV,
    MetadataLimitSettings,
    PathLimitSettings,
    ServerLimitSettings,
)
from services.common.settings import BlobStoreSettings, CommonSettings

MAX_SUBSCRIPTIONS_PER_KEY_ENV = "CORRAL_CATALOG_MAX_SUBSCRIPTIONS_PER_KEY"
MAX_PAGE_BYTES_ENV = "CORRAL_CATALOG_MAX_PAGE_BYTES"


@dataclass(frozen=True)
class CatalogLimits:
    """Limits of the catalog's own calls (README "Limits")."""

    # Each open subscription polls the event table: one key must not hold hundreds.
    max_subscriptions_per_key: int = 64  # 0: no cap
    # A list response ends its page early at this many bytes of entries, so it always
    # fits in a gRPC message (half of CORRAL_MAX_MESSAGE_BYTES's default).
    max_page_bytes: int = 8 * 1024 * 1024
    # Batches whose answer repeats every item they write are refused (INVALID_ARGUMENT) when it
    # could not be delivered, before anything is written: a BatchCreateItems request larger
    # than this, a BatchUpdateSystemMetadata whose items (unless omit_items) add up to more.
    # Half of CORRAL_MAX_MESSAGE_BYTES, so the rest of the answer fits the other half.
    max_batch_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_subscriptions_per_key < 0:
            raise ValueError(f"{MAX_SUBSCRIPTIONS_PER_KEY_ENV} must not be negative, got "
                             f"{self.max_subscriptions_per_key}")
        if self.max_page_bytes < 1:
            raise ValueError(f"{MAX_PAGE_BYTES_ENV} must be positive, got "
                             f"{self.max_page_bytes}")


DEFAULT_LIMITS = CatalogLimits()


@dataclass
class CatalogConfig(MetadataLimitSettings, PathLimitSettings, ServerLimitSettings,
                    CommonSettings, BlobStoreSettings):
    addr: str = setting("CORRAL_CATALOG_ADDR", "127.0.0.1:50051", "Address the catalog binds")
    database_url: str = setting(
        "CORRAL_DATABASE_URL", "",
        "SQLAlchemy URL: sqlite:///path or postgresql+psycopg://... "
        "(default: sqlite:///<data dir>/catalog.db)")
    event_poll_seconds: float = setting(
        "CORRAL_CATALOG_EVENT_POLL_SECONDS", 0.25,
        "How often Subscribe polls the database for events written by other replicas")
    metadata_indexes: str = setting(
        "CORRAL_CATALOG_METADATA_INDEXES", "",
        "Comma-separated metadata.user paths to index (e.g. camera,lot.number): fast equality "
        "and range filters on them")
    event_retention_seconds: float = setting(
        "CORRAL_CATALOG_EVENT_RETENTION_SECONDS", 7 * 24 * 3600.0,
        "Events older than this are deleted; a cursor older than the retention answers "
        "OUT_OF_RANGE (0: keep every event)")
    event_retention_sweep_seconds: float = setting(
        "CORRAL_CATALOG_EVENT_RETENTION_SWEEP_SECONDS", 60.0,
        "How often the catalog deletes events past the retention")

    max_subscriptions_per_key: int = setting(
        MAX_SUBSCRIPTIONS_PER_KEY_ENV, CatalogLimits.max_subscriptions_per_key,
        "Most Subscribe streams one API key may hold open at once (the services' own key is "
        "exempt); more are refused with RESOURCE_EXHAUSTED (0: no cap)")
    max_page_bytes: int = setting(
        MAX_PAGE_BYTES_ENV, 0,
        "A ListItems, ListDatasets or ListTriggers page ends early once its entries reach this "
        "many bytes, and its next_page_token continues after the last one (0: half of "
        "CORRAL_MAX_MESSAGE_BYTES, also the most)")

    orphan_sweep_seconds: float = setting(
        "CORRAL_CATALOG_ORPHAN_SWEEP_SECONDS", 3600.0,
        "How often the catalog deletes orphan blobs (stored but referenced by no item, e.g. "
        "after an upload whose registration failed) and unfinished writes of dead writers "
        "(multipart uploads, temporary files); 0: never")
    orphan_grace_seconds: float = setting(
        "CORRAL_CATALOG_ORPHAN_GRACE_SECONDS", 6 * 3600.0,
        "Only blobs older than this may be collected as orphans, and unfinished writes "
        "untouched for this long discarded: keep it far above the longest upload "
        "registration or preprocessing run")

    bootstrap_admin_key: str = setting(
        "CORRAL_BOOTSTRAP_ADMIN_KEY", "",
        "An instance-admin API key (corral_<16 hex>_<43 characters>) registered on start if "
        "unknown; without it a catalog with no keys writes a new one to "
        "<data dir>/keys/admin.key (mode 0600)", secret=True)

    def catalog_limits(self) -> CatalogLimits:
        """The catalog's limits; a value out of range stops the service naming the setting."""
        # The other half is for the rest of the response: a page token holds the last
        # entry's sort key, which can be a long metadata value.
        most = self.max_message_bytes // 2
        page_bytes = self.max_page_bytes or most
        try:
            if page_bytes > most:
                raise ValueError(f"{MAX_PAGE_BYTES_ENV} must be at most half of "
                                 f"{MAX_MESSAGE_BYTES_ENV} ({most}), got {page_bytes}")
            return CatalogLimits(self.max_subscriptions_per_key, page_bytes,
                                 max_batch_bytes=most)
        except ValueError as exc:
            raise SystemExit(f"invalid setting: {exc}") from None

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.data_path.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_path / 'catalog.db'}"
