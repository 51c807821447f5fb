"""python -m services.catalog [--addr HOST:PORT] [--port-file F] [--database-url URL] ..."""

from __future__ import annotations

import sys

from services.blobstore import open_blob_store
from services.catalog.access import Access
from services.catalog.app import RetentionPolicy, catalog_security, make_register, open_database
from services.catalog.bootstrap import bootstrap_admin_key
from services.catalog.config import CatalogConfig
from services.catalog.orphans import OrphanPolicy
from services.common.config import load
from services.common.limit_settings import apply_limits
from services.common.logs import setup_logging
from services.common.server import run


def main(argv: list[str] | None = None) -> None:
    config = load(CatalogConfig, sys.argv[1:] if argv is None else argv,
                  description="corral catalog service")
    setup_logging(config.log_level, config.log_format)
    server_limits = apply_limits(config)
    catalog_limits = config.catalog_limits()
    db = open_database(config.resolved_database_url(), config.metadata_indexes)
    bootstrap_admin_key(Access(db), config.data_path, config.bootstrap_admin_key)
    security = catalog_security(
        db, config.resolve_service_key(config.data_path, create=True), config.server_tls())
    blob_store = open_blob_store(config, config.data_path)
    register = make_register(db, blob_store, security, config.event_poll_seconds,
                             RetentionPolicy(config.event_retention_seconds,
                                             config.event_retention_sweep_seconds),
                             OrphanPolicy(config.orphan_sweep_seconds,
                                          config.orphan_grace_seconds),
                             catalog_limits)
    run("catalog", config.addr, register, security, grace=config.grace_seconds,
        port_file=config.port_file, limits=server_limits,
        switch_interval_ms=config.switch_interval_ms)


if __name__ == "__main__":
    main()
