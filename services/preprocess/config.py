"""Settings of the preprocess service: flags, then CORRAL_* environment variables, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass

from services.common.config import setting
from services.common.limit_settings import ServerLimitSettings
from services.common.settings import BlobStoreSettings, CommonSettings, FetchSettings

SHARED_GROUP = "preprocess"
MAX_IN_FLIGHT = 256
PRIVATE_GROUP_PREFIX = "preprocess:dataset:"


@dataclass
class PreprocessConfig(ServerLimitSettings, CommonSettings, BlobStoreSettings, FetchSettings):
    addr: str = setting("CORRAL_PREPROCESS_ADDR", "127.0.0.1:50053", "Address to bind")
    catalog_addr: str = setting("CORRAL_CATALOG_ADDR", "127.0.0.1:50051",
                                "Catalog service to subscribe to and write results back to")
    catalog_timeout_seconds: float = setting(
        "CORRAL_PREPROCESS_CATALOG_TIMEOUT_SECONDS", 30.0,
        "Deadline of each unary call to the catalog (the event stream has none; keepalive "
        "pings notice a dead catalog)")
    processes: int = setting("CORRAL_PREPROCESS_PROCESSES", 0,
                             "Decoding worker processes (0: one per CPU core)")
    consumer_group: str = setting(
        "CORRAL_PREPROCESS_GROUP", "",
        "Consumer group of the catalog's event stream (empty: preprocess, or "
        "preprocess:dataset:<id> for a private worker)")
    dataset: str = setting(
        "CORRAL_PREPROCESS_DATASET", "",
        "Private worker: serve only this dataset (name or id), and only while its "
        "preprocessing mode is private (empty: the shared pool, every dataset in global mode)")
    lease_seconds: int = setting(
        "CORRAL_PREPROCESS_LEASE_SECONDS", 60,
        "How long an event stays leased to this worker; the worker extends the leases of "
        "items it is working on, and an event whose worker died is re-delivered after this")
    thumbnail_size: int = setting("CORRAL_THUMBNAIL_SIZE", 256,
                                  "Longest side of thumbnails, in pixels")
    max_image_pixels: int = setting("CORRAL_PREPROCESS_MAX_IMAGE_PIXELS", 100_000_000,
                                    "Images with more pixels are refused as decompression bombs")
    task_timeout_seconds: float = setting("CORRAL_PREPROCESS_TASK_TIMEOUT_SECONDS", 60.0,
                                          "An item taking longer than this is marked failed")
    memory_limit_mb: int = setting("CORRAL_PREPROCESS_MEMORY_LIMIT_MB", 1024,
                                   "Address space each decoding process may map beyond what it "
                                   "starts with (0: no limit)")
    max_attempts: int = setting("CORRAL_PREPROCESS_MAX_ATTEMPTS", 2,
                                "Tries per item when its decoding process dies or the blob "
                                "store fails (bad files fail at once)")

    def group_for(self, dataset_id: str) -> str:
        """The consumer group: the configured one, else the shared pool's or the dataset's."""
        if self.consumer_group:
            return self.consumer_group
        return f"{PRIVATE_GROUP_PREFIX}{dataset_id}" if dataset_id else SHARED_GROUP

    @property
    def pool_processes(self) -> int:
        return self.processes if self.processes > 0 else (os.cpu_count() or 1)

    @property
    def max_in_flight(self) -> int:
        """Events worked on at once: enough to keep every process busy while thumbnails are
        stored and results written back (those wait for fsync and the catalog, not for a
        process) and to leave a queue from which small files are decoded in batches (see
        pool.py), few enough that a restart re-delivers little. Results wait up to a few tens
        of milliseconds to be written back together (write_back.py), holding their slot
        meanwhile. Capped so that the events leased ahead (twice this) stay within the
        catalog's limit of 1024 per subscriber."""
        return min(32 * self.pool_processes, MAX_IN_FLIGHT)
