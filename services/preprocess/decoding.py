"""What runs inside a decoding process: read one blob, describe it, make its thumbnail.

Each process limits its own address space first, so a hostile file that makes a decoder
allocate without bound gets a MemoryError (or dies) there, never in the service. The process
only reads: it returns the thumbnail's bytes, and the service stores them (see pool.py), so
the processes spend their time decoding rather than waiting for fsync.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.blobstore.base import BlobStore
from services.preprocess.fileinfo import describe_file
from services.preprocess.thumbnails import Thumbnail


@dataclass(frozen=True)
class DecodeLimits:
    thumbnail_size: int
    max_image_pixels: int
    memory_limit_mb: int


@dataclass(frozen=True)
class DecodeJob:
    name: str
    blob_key: str
    # "thumbnails/<item id>/<uuid hex>"; the extension follows the thumbnail's format.
    thumbnail_key_stem: str


@dataclass(frozen=True)
class Described:
    """A decoding process's answer: `system` without the thumbnail's key, which the service
    adds once it has stored `thumbnail`."""
    system: dict[str, Any]
    thumbnail: Thumbnail | None
    error: str | None


@dataclass(frozen=True)
class DecodeResult:
    system: dict[str, Any]
    thumbnail_key: str | None
    error: str | None


_store: BlobStore | None = None
_limits: DecodeLimits | None = None


def limit_memory(megabytes: int) -> None:
    if megabytes > 0:
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def init_process(store_factory: Callable[[], BlobStore], limits: DecodeLimits) -> None:
    """Pool initializer: runs once in each new decoding process."""
    global _store, _limits
    limit_memory(limits.memory_limit_mb)
    _store, _limits = store_factory(), limits


def describe(name: str, blob_key: str) -> Described:
    """Describes the blob and makes its thumbnail. A bad file is a result with an error;
    blob store failures raise (they may be worth a retry)."""
    if _store is None or _limits is None:
        raise RuntimeError("decoding process was not initialised")
    with _store.local_path(blob_key) as path:
        info = describe_file(path, name, _limits.thumbnail_size, _limits.max_image_pixels)
    return Described(info.system, info.thumbnail, info.error)
