"""Settings every service shares; each service's config dataclass inherits the ones it needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.common.config import setting


@dataclass
class CommonSettings:
    data_dir: str = setting("CORRAL_DATA_DIR", "corral-data",
                            "Data directory of the embedded default (SQLite file, blobs)")
    log_level: str = setting("CORRAL_LOG_LEVEL", "info", "debug, info, warning or error")
    log_format: str = setting("CORRAL_LOG_FORMAT", "json", "json (one object per line) or text")
    grace_seconds: float = setting("CORRAL_GRACE_SECONDS", 10.0,
                                   "On SIGTERM, how long in-flight calls may take to finish")
    port_file: str = setting("CORRAL_PORT_FILE", "",
                             "Write the bound port to this file (useful with port 0)")

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
