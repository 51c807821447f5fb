"""Blob stores: where item binaries and thumbnails live (a directory, or an S3 bucket)."""

from __future__ import annotations

from pathlib import Path

from services.blobstore.base import BlobStore, BlobWriter
from services.common.settings import BlobStoreSettings

__all__ = ["BlobStore", "BlobWriter", "open_blob_store"]


def open_blob_store(settings: BlobStoreSettings, data_path: Path) -> BlobStore:
    """The store chosen by CORRAL_BLOB_STORE: "fs" (default root <data dir>/blobs) or "s3"."""
    kind = settings.blob_store.strip().lower()
    if kind == "fs":
        from services.blobstore.fs import FsBlobStore

        root = Path(settings.blob_dir).expanduser() if settings.blob_dir else data_path / "blobs"
        return FsBlobStore(root)
    if kind == "s3":
        from minio import Minio

        from services.blobstore.s3 import S3BlobStore

        client = Minio(settings.s3_endpoint, access_key=settings.s3_access_key or None,
                       secret_key=settings.s3_secret_key or None, secure=settings.s3_secure,
                       region=settings.s3_region or None)
        return S3BlobStore(client, settings.s3_bucket, part_size=settings.s3_part_size)
    raise ValueError(f"CORRAL_BLOB_STORE must be fs or s3, got {settings.blob_store!r}")
