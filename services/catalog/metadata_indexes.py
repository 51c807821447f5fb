"""Expression indexes on chosen metadata.user paths (CORRAL_CATALOG_METADATA_INDEXES).

User metadata is free-form, so no fixed schema can index its keys. On PostgreSQL the GIN
index (migration 0003_queries) answers equality on any key; ranges, and on SQLite equality
too, need an index on the key's own expression. The operator names the keys worth it; the
catalog creates their indexes at start (idempotent) and filters on those keys then spell the
indexed expression out (filter_sql.py)."""

from __future__ import annotations

import hashlib
import logging
import re

from sqlalchemy import text

from services.catalog.db import Database
from services.catalog.filter_sql import json_path_literal, json_value_sql
from services.catalog.filters import metadata_path

log = logging.getLogger("corral.catalog.indexes")


def parse_paths(setting: str, field: str = "CORRAL_CATALOG_METADATA_INDEXES"
                ) -> list[tuple[str, ...]]:
    """"camera, lot.number" -> [("camera",), ("lot", "number")], each strictly checked."""
    return [metadata_path(part.strip(), field) for part in setting.split(",") if part.strip()]


def index_name(path: tuple[str, ...]) -> str:
    """A readable name within PostgreSQL's 63 characters, unique per path."""
    slug = re.sub(r"[^a-z0-9_]", "_", "_".join(path).lower())[:30]
    digest = hashlib.sha256(".".join(path).encode()).hexdigest()[:8]
    return f"ix_items_user_{slug}_{digest}"


def ensure(db: Database, paths: list[tuple[str, ...]]) -> None:
    """Creates the missing indexes (several replicas may race: IF NOT EXISTS) and tells the
    query compiler which paths have one. Indexes of paths no longer listed are kept: dropping
    is the operator's call."""
    pg = db.is_postgres
    for path in paths:
        expression = json_value_sql("metadata_user", json_path_literal(path, pg), pg)
        with db.begin_write() as conn:
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS {index_name(path)} "
                              f"ON items (dataset_id, {expression})"))
        log.info("metadata index ready", extra={"path": ".".join(path)})
    db.indexed_metadata = frozenset(paths)
