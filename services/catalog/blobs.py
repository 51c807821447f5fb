"""Deleting binaries the catalog no longer references. Runs only after the transaction that
dropped the last reference committed, so a rollback can never leave an item without its blob;
a crash in between leaks the blob at worst (garbage, never data loss)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from services.blobstore.base import BlobStore

log = logging.getLogger("corral.catalog.blobs")


def thumbnail_key(metadata_system: dict[str, Any]) -> str:
    thumbnail = metadata_system.get("thumbnail")
    if isinstance(thumbnail, dict) and isinstance(thumbnail.get("key"), str):
        return thumbnail["key"]
    return ""


def release(blob_store: BlobStore | None, keys: Iterable[str]) -> None:
    """Best effort: a failure is logged and leaves an orphan blob, never fails the call."""
    if blob_store is None:
        return
    for key in keys:
        try:
            blob_store.delete(key)
        except Exception:  # any store error; the item change itself has committed
            log.warning("could not delete released blob", exc_info=True, extra={"key": key})
