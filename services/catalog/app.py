"""Wiring: database + migrations + blob store -> servicer, as a `register` for
services.common.server (used by __main__ and by in-process tests)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import grpc

from corral.catalog.v1 import admin_service_pb2_grpc as admin_grpc
from corral.catalog.v1 import catalog_service_pb2_grpc as api_grpc
from services.blobstore.base import BlobStore
from services.catalog import admin_servicer, metadata_indexes, migrate, orphans, retention
from services.catalog.access import Access
from services.catalog.db import Database
from services.catalog.notify import CommitSignal
from services.catalog.repository import Store
from services.catalog.servicer import NEEDS as CATALOG_NEEDS
from services.catalog.servicer import SERVICE_NAME, CatalogServicer
from services.catalog.writer import BatchWriter
from services.common.remote_auth import LocalAuthenticator
from services.common.server import Cleanup, Register, ServerSecurity

log = logging.getLogger("corral.catalog")


def open_database(url: str, metadata_index_paths: str = "") -> Database:
    """Connects, applies the migrations and creates the metadata.user indexes asked for
    (all idempotent; safe with several replicas)."""
    db = Database(url)
    migrate.upgrade(db)
    metadata_indexes.ensure(db, metadata_indexes.parse_paths(metadata_index_paths))
    log.info("database ready", extra={"dialect": db.engine.dialect.name,
                                      "revision": migrate.current_revision(db)})
    return db


@dataclass(frozen=True)
class RetentionPolicy:
    """Events older than `seconds` are deleted every `sweep_seconds`; 0 seconds keeps all."""
    seconds: float = 0.0
    sweep_seconds: float = 60.0


def catalog_security(db: Database, service_key: str,
                     tls: grpc.ServerCredentials | None = None) -> ServerSecurity:
    """The catalog checks keys against its own table (and the services' key)."""
    authenticator = LocalAuthenticator(Access(db).resolve, service_key)
    return ServerSecurity(authenticator, {**CATALOG_NEEDS, **admin_servicer.NEEDS}, tls)


def make_register(db: Database, blob_store: BlobStore | None,
                  security: ServerSecurity,
                  poll_seconds: float = 0.25,
                  event_retention: RetentionPolicy = RetentionPolicy(),
                  orphan_policy: orphans.OrphanPolicy | None = None) -> Register:
    """`security` from catalog_security(). `orphan_policy`: collect orphan blobs (needs
    `blob_store`); None or a sweep interval of 0 never does."""
    async def register(server: grpc.aio.Server) -> tuple[list[str], Cleanup, Cleanup]:
        signal = CommitSignal(asyncio.get_running_loop())
        store = Store(db, on_commit=signal.notify_threadsafe)
        writer = BatchWriter(store, signal)
        api_grpc.add_CatalogServiceServicer_to_server(
            CatalogServicer(store, writer, blob_store, signal, poll_seconds), server)
        assert isinstance(security.authenticator, LocalAuthenticator)
        admin_grpc.add_AdminServiceServicer_to_server(
            admin_servicer.AdminServicer(Access(db), security.authenticator), server)

        sweepers: list[asyncio.Task] = []
        if event_retention.seconds > 0:
            sweepers.append(asyncio.create_task(retention.run_periodically(
                store, event_retention.seconds, event_retention.sweep_seconds)))
        if blob_store is not None and orphan_policy is not None \
                and orphan_policy.sweep_seconds > 0:
            sweepers.append(asyncio.create_task(
                orphans.run_periodically(store, blob_store, orphan_policy)))

        async def cleanup() -> None:
            for sweeper in sweepers:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await asyncio.to_thread(writer.stop)
            await asyncio.to_thread(db.dispose)

        async def end_subscriptions() -> None:
            # Subscribe streams never end by themselves; without this a stop would wait out
            # the whole grace period. Subscribers reconnect and resume from their cursors.
            signal.close()

        return [SERVICE_NAME, admin_servicer.SERVICE_NAME], cleanup, end_subscriptions

    return register
