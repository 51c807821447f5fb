"""Upload service settings (flags, then CORRAL_* environment variables, then defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from corral.addresses import DEFAULT_CATALOG_ADDR, DEFAULT_UPLOAD_ADDR
from services.common.config import setting
from services.common.limit_settings import (
    MetadataLimitSettings,
    PathLimitSettings,
    ServerLimitSettings,
)
from services.common.settings import BlobStoreSettings, CommonSettings, FetchSettings
from services.upload.spec import DEFAULT_MAX_UPLOAD_BYTES

MIB = 1024 * 1024


@dataclass
class UploadConfig(MetadataLimitSettings, PathLimitSettings, ServerLimitSettings,
                   CommonSettings, BlobStoreSettings, FetchSettings):
    addr: str = setting("CORRAL_UPLOAD_ADDR", DEFAULT_UPLOAD_ADDR,
                        "Address the upload service binds (port 0 picks a free port)")
    catalog_addr: str = setting("CORRAL_CATALOG_ADDR", DEFAULT_CATALOG_ADDR,
                                "Address of the catalog service")
    catalog_timeout_seconds: float = setting("CORRAL_UPLOAD_CATALOG_TIMEOUT_SECONDS", 10.0,
                                             "Deadline of each call to the catalog")
    upload_max_bytes: int = setting(
        "CORRAL_UPLOAD_MAX_BYTES", DEFAULT_MAX_UPLOAD_BYTES,
        "Largest file one upload may store, in bytes (a declared spec.size above it is refused "
        "before any byte is stored; an undeclared upload is cut off once it passes it)")
    download_chunk_bytes: int = setting("CORRAL_UPLOAD_DOWNLOAD_CHUNK_BYTES", MIB,
                                        "Bytes per Download message")
    write_batch_bytes: int = setting("CORRAL_UPLOAD_WRITE_BATCH_BYTES", MIB,
                                     "Received bytes handed to the blob store per write")
    io_threads: int = setting("CORRAL_UPLOAD_IO_THREADS", 16,
                              "Threads for blocking blob store I/O, shared by all calls")
    dataset_cache_seconds: float = setting("CORRAL_UPLOAD_DATASET_CACHE_SECONDS", 10.0,
                                           "How long a dataset found in the catalog is "
                                           "remembered (0 asks every time)")
    session_ttl_seconds: float = setting(
        "CORRAL_UPLOAD_SESSION_TTL_SECONDS", 24 * 3600.0,
        "How long a resumable upload session lives after it starts; then its unfinished "
        "data (temp file or multipart upload) is removed")
    session_sweep_seconds: float = setting(
        "CORRAL_UPLOAD_SESSION_SWEEP_SECONDS", 60.0,
        "How often the upload service looks for expired resumable upload sessions")
    session_persist_bytes: int = setting(
        "CORRAL_UPLOAD_SESSION_PERSIST_BYTES", 32 * MIB,
        "A resumable upload on the fs store fsyncs at least every this many bytes (S3 "
        "persists whole parts of CORRAL_S3_PART_SIZE)")
    import_fetch_concurrency: int = setting(
        "CORRAL_IMPORT_FETCH_CONCURRENCY", 16,
        "Most URLs one CSV import fetches at once (action=upload rows)")
    bulk_max_open_files: int = setting(
        "CORRAL_UPLOAD_BULK_MAX_OPEN_FILES", 32,
        "Most files one UploadItems stream may be sending at once (spec sent, finish_write "
        "not yet); more ends the stream with RESOURCE_EXHAUSTED")
    bulk_max_finishing_files: int = setting(
        "CORRAL_UPLOAD_BULK_MAX_FINISHING_FILES", 128,
        "Most files of one UploadItems stream being stored and catalogued at once; at the "
        "limit the service stops reading the stream until one completes")
