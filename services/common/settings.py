"""Settings every service shares; each service's config dataclass inherits the ones it needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.common.config import setting
from services.common.interpreter import DEFAULT_SWITCH_INTERVAL_MS
from services.common.security import SecuritySettings
from services.fetch.policy import FetchPolicy, parse_allow_rules


@dataclass
class CommonSettings(SecuritySettings):
    data_dir: str = setting("CORRAL_DATA_DIR", "corral-data",
                            "Data directory of the embedded default (SQLite file, blobs)")
    log_level: str = setting("CORRAL_LOG_LEVEL", "info", "debug, info, warning or error")
    log_format: str = setting("CORRAL_LOG_FORMAT", "json", "json (one object per line) or text")
    grace_seconds: float = setting("CORRAL_GRACE_SECONDS", 10.0,
                                   "On SIGTERM, how long in-flight calls may take to finish")
    port_file: str = setting("CORRAL_PORT_FILE", "",
                             "Write the bound port to this file (useful with port 0)")
    switch_interval_ms: float = setting(
        "CORRAL_SWITCH_INTERVAL_MS", DEFAULT_SWITCH_INTERVAL_MS,
        "How long one Python thread may keep the interpreter lock while another waits for "
        "it, in milliseconds (sys.setswitchinterval; Python's own default is 5)")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()


@dataclass
class BlobStoreSettings:
    blob_store: str = setting("CORRAL_BLOB_STORE", "fs", "Blob store: fs (a directory) or s3")
    blob_dir: str = setting("CORRAL_BLOB_DIR", "",
                            "Root of the fs blob store (default: <data dir>/blobs)")
    s3_endpoint: str = setting("CORRAL_S3_ENDPOINT", "127.0.0.1:9000",
                               "S3/MinIO endpoint host:port")
    s3_bucket: str = setting("CORRAL_S3_BUCKET", "corral", "Bucket; created if missing")
    s3_access_key: str = setting("CORRAL_S3_ACCESS_KEY", "", "S3 access key")
    s3_secret_key: str = setting("CORRAL_S3_SECRET_KEY", "", "S3 secret key", secret=True)
    s3_secure: bool = setting("CORRAL_S3_SECURE", False, "Use TLS to reach the S3 endpoint")
    s3_region: str = setting("CORRAL_S3_REGION", "", "S3 region (optional)")
    s3_part_size: int = setting("CORRAL_S3_PART_SIZE", 16 * 1024 * 1024,
                                "Multipart part size in bytes (at least 5 MiB)")


@dataclass
class FetchSettings:
    """How corral fetches linked URLs (downloads, preprocessing, CSV imports). Private and
    reserved addresses are always refused unless CORRAL_FETCH_ALLOW lists them."""

    fetch_allow: str = setting(
        "CORRAL_FETCH_ALLOW", "",
        "Comma-separated exceptions to the private-address block: CIDR networks (10.0.0.0/8) "
        "or exact IP:port endpoints (127.0.0.1:9000) that links may point to")
    fetch_max_bytes: int = setting("CORRAL_FETCH_MAX_BYTES", 2 * 1024 ** 3,
                                   "Largest remote body corral will read, in bytes")
    fetch_connect_timeout_seconds: float = setting(
        "CORRAL_FETCH_CONNECT_TIMEOUT_SECONDS", 5.0, "Connect timeout of a fetch")
    fetch_read_timeout_seconds: float = setting(
        "CORRAL_FETCH_READ_TIMEOUT_SECONDS", 15.0,
        "A fetch whose remote sends nothing for this long is cut off")
    fetch_total_timeout_seconds: float = setting(
        "CORRAL_FETCH_TOTAL_TIMEOUT_SECONDS", 600.0, "Longest time one fetch may take")
    fetch_min_bytes_per_second: int = setting(
        "CORRAL_FETCH_MIN_BYTES_PER_SECOND", 1024,
        "A fetch slower than this on average (after 5 s) is cut off (slow drip)")

    def fetch_policy(self) -> FetchPolicy:
        return FetchPolicy(
            allow=parse_allow_rules(self.fetch_allow), max_bytes=self.fetch_max_bytes,
            connect_timeout=self.fetch_connect_timeout_seconds,
            read_timeout=self.fetch_read_timeout_seconds,
            total_timeout=self.fetch_total_timeout_seconds,
            min_bytes_per_second=self.fetch_min_bytes_per_second)
