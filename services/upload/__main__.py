"""python -m services.upload [--addr HOST:PORT] [--port-file F] [--catalog-addr A] ..."""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc

from corral.upload.v1 import upload_service_pb2_grpc
from services.blobstore import open_blob_store
from services.common.config import load
from services.common.limit_settings import apply_limits
from services.common.logs import setup_logging
from services.common.remote_auth import CatalogAuthenticator
from services.common.server import Cleanup, ServerSecurity, run
from services.fetch import Fetcher
from services.upload.batching import CreateBatcher
from services.upload.bulk import BulkLimits, BulkUploads
from services.upload.catalog_client import GrpcCatalog
from services.upload.config import UploadConfig
from services.upload.downloads import Downloader
from services.upload.imports import CsvImporter, ImportLimits
from services.upload.memory import keep_freed_memory
from services.upload.resumable import SessionSettings
from services.upload.servicer import NEEDS, SERVICE_NAME, UploadServicer
from services.upload.uploads import Uploader


def main(argv: list[str] | None = None) -> None:
    config = load(UploadConfig, sys.argv[1:] if argv is None else argv,
                  description="corral upload service")
    setup_logging(config.log_level, config.log_format)
    server_limits = apply_limits(config)
    keep_freed_memory()
    store = open_blob_store(config, config.data_path)
    credentials = config.service_credentials(config.data_path)
    authenticator = CatalogAuthenticator(config.catalog_addr, credentials,
                                         config.auth_cache_seconds)

    async def register(server: grpc.aio.Server) -> tuple[list[str], Cleanup]:
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=config.io_threads, thread_name_prefix="blob-io"))
        catalog = GrpcCatalog(config.catalog_addr, config.catalog_timeout_seconds, credentials)
        uploader = Uploader(store, catalog, write_batch_bytes=config.write_batch_bytes,
                            dataset_cache_seconds=config.dataset_cache_seconds,
                            sessions=SessionSettings(
                                ttl_seconds=config.session_ttl_seconds,
                                persist_bytes=config.session_persist_bytes),
                            max_bytes=config.upload_max_bytes)
        sweeper = asyncio.ensure_future(
            uploader.resumable.run_sweeper(config.session_sweep_seconds))
        fetcher = Fetcher(config.fetch_policy())
        # A Download message must fit CORRAL_MAX_MESSAGE_BYTES with room for its framing.
        chunk_bytes = min(config.download_chunk_bytes, server_limits.max_message_bytes // 2)
        downloader = Downloader(store, catalog, fetcher, chunk_bytes=chunk_bytes)
        importer = CsvImporter(store, catalog, fetcher, ImportLimits(
            fetch_concurrency=max(1, config.import_fetch_concurrency),
            max_upload_bytes=config.upload_max_bytes))
        bulk = BulkUploads(uploader, CreateBatcher(catalog), BulkLimits(
            max_open_files=max(1, config.bulk_max_open_files),
            max_finishing_files=max(1, config.bulk_max_finishing_files)))
        upload_service_pb2_grpc.add_UploadServiceServicer_to_server(
            UploadServicer(uploader, bulk, downloader, importer), server)

        async def on_stopping() -> None:
            uploader.resumable.stop_streams()

        async def cleanup() -> None:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await bulk.batcher.close()
            await catalog.close()
            await authenticator.close()

        return [SERVICE_NAME], cleanup, on_stopping

    security = ServerSecurity(authenticator, NEEDS, config.server_tls())
    run("upload", config.addr, register, security, grace=config.grace_seconds,
        port_file=config.port_file, limits=server_limits,
        switch_interval_ms=config.switch_interval_ms)


if __name__ == "__main__":
    main()
