"""Catalog settings: flags, then environment variables, then defaults."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import setting
from services.common.limit_settings import (
    MetadataLimitSettings,
    PathLimitSettings,
    ServerLimitSettings,
)
from services.common.settings import BlobStoreSettings, CommonSettings


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

    orphan_sweep_seconds: float = setting(
        "CORRAL_CATALOG_ORPHAN_SWEEP_SECONDS", 3600.0,
        "How often the catalog deletes orphan blobs (stored but referenced by no item, e.g. "
        "after an upload whose registration failed); 0: never")
    orphan_grace_seconds: float = setting(
        "CORRAL_CATALOG_ORPHAN_GRACE_SECONDS", 6 * 3600.0,
        "Only blobs older than this may be collected as orphans: keep it far above the "
        "longest upload registration or preprocessing run")

    bootstrap_admin_key: str = setting(
        "CORRAL_BOOTSTRAP_ADMIN_KEY", "",
        "An instance-admin API key (corral_<16 hex>_<43 characters>) registered on start if "
        "unknown; without it a catalog with no keys writes a new one to "
        "<data dir>/keys/admin.key (mode 0600)", secret=True)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.data_path.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_path / 'catalog.db'}"
