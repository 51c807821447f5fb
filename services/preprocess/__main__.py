"""python -m services.preprocess [--addr HOST:PORT] [--catalog-addr A] [--processes N] ...

Subscribes to the catalog's CREATED events, writes file info and thumbnails back, and serves
GetStats. On SIGTERM: stop taking events, let in-flight items finish within the grace
period, give the rest back to the consumer group, acknowledge what finished, stop the decoding
processes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time

import grpc

from corral.errors import Unavailable
from corral.preprocess.v1 import preprocess_service_pb2_grpc as pb_grpc
from services.blobstore import open_blob_store
from services.common.config import load
from services.common.limit_settings import apply_limits
from services.common.logs import setup_logging
from services.common.remote_auth import worker_credentials
from services.common.server import ServerSecurity, run
from services.preprocess.catalog_client import GrpcCatalog
from services.preprocess.config import PreprocessConfig
from services.preprocess.decoding import DecodeLimits
from services.preprocess.pool import DecodePool
from services.preprocess.processor import ItemProcessor
from services.preprocess.servicer import NEEDS, SERVICE_NAME, PreprocessServicer
from services.preprocess.worker import Worker
from services.preprocess.write_back import BatchingCatalog

log = logging.getLogger("corral.preprocess")

RESOLVE_TIMEOUT_SECONDS = 30.0


def build_pool(config: PreprocessConfig) -> DecodePool:
    limits = DecodeLimits(thumbnail_size=config.thumbnail_size,
                          max_image_pixels=config.max_image_pixels,
                          memory_limit_mb=config.memory_limit_mb)
    store_factory = functools.partial(open_blob_store, config, config.data_path)
    return DecodePool(config.pool_processes, store_factory, limits,
                      config.task_timeout_seconds, config.fetch_policy())


async def resolve_dataset(catalog: GrpcCatalog, name_or_id: str,
                          timeout: float = RESOLVE_TIMEOUT_SECONDS) -> str:
    """The id of a private worker's dataset; waits for the catalog while it is unavailable.
    A dataset that does not exist stops the service (NotFound)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            dataset = await catalog.get_dataset(name_or_id)
            break
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    if dataset.preprocessing != "private":
        log.warning("the dataset is not in private preprocessing mode: this worker gets its "
                    "items once it is (corral datasets set NAME --preprocessing private)",
                    extra={"dataset": dataset.name, "mode": dataset.preprocessing})
    return dataset.id


def main(argv: list[str] | None = None) -> None:
    config = load(PreprocessConfig, sys.argv[1:] if argv is None else argv,
                  description="corral preprocess service")
    setup_logging(config.log_level, config.log_format)
    server_limits = apply_limits(config)
    store = open_blob_store(config, config.data_path)
    pool = build_pool(config)
    credentials, authenticator = worker_credentials(config, config.data_path)

    async def register(server: grpc.aio.Server):
        grpc_catalog = GrpcCatalog(config.catalog_addr, credentials,
                                   config.catalog_timeout_seconds)
        dataset_id = (await resolve_dataset(grpc_catalog, config.dataset)
                      if config.dataset else "")
        group = config.group_for(dataset_id)
        # Half the items in flight may wait for one write-back call; the others keep the
        # decoding processes busy meanwhile.
        catalog = BatchingCatalog(grpc_catalog, max_batch=max(1, config.max_in_flight // 2))
        catalog.start()
        processor = ItemProcessor(catalog, pool, store, config.max_attempts, group)
        worker = Worker(catalog, processor, group, config.max_in_flight, config.lease_seconds,
                        dataset_id)
        catalog.in_flight = worker.in_flight
        pb_grpc.add_PreprocessServiceServicer_to_server(PreprocessServicer(worker), server)
        worker.start()
        log.info("worker started", extra={"catalog": config.catalog_addr, "group": group,
                                          "dataset_id": dataset_id,
                                          "processes": pool.processes})

        async def cleanup() -> None:
            await worker.stop(config.grace_seconds)
            await asyncio.to_thread(pool.stop)
            await catalog.close()
            await authenticator.close()

        return [SERVICE_NAME], cleanup

    security = ServerSecurity(authenticator, NEEDS, config.server_tls())
    run("preprocess", config.addr, register, security, grace=config.grace_seconds,
        port_file=config.port_file, limits=server_limits,
        switch_interval_ms=config.switch_interval_ms)


if __name__ == "__main__":
    main()
