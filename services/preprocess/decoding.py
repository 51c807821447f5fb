"""What runs inside a decoding process: read one blob, describe it, make its thumbnail.

Each process limits its own address space first, so a hostile file that makes a decoder
allocate without bound gets a MemoryError (or dies) there, never in the service. The process
only reads: it returns the thumbnail's bytes, and the service stores them (see pool.py), so
the processes spend their time decoding rather than waiting for fsync.
"""

from __future__ import annotations

import os
import pickle
import resource
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from corral.errors import CorralError
from services.blobstore.base import BlobStore
from services.fetch import Fetcher, FetchPolicy
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
    # Link items have no blob: their content is fetched from here.
    link_url: str = ""
    link_mimetype: str = ""
    # The blob's size, if known: small files are decoded several to a task (see pool.py).
    size: int | None = None


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


class LinkFailed(Exception):
    """A link's content could not be fetched, or is not what the link claims."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message, retryable)  # both in args, so it survives pickling
        self.message, self.retryable = message, retryable

    def __str__(self) -> str:
        return self.message


# Pillow's image memory kept for reuse in each decoding process (see reuse_image_memory).
IMAGE_BLOCK_BYTES = 1024 * 1024
BLOCKS_KEPT = 16

_store: BlobStore | None = None
_limits: DecodeLimits | None = None
_fetcher: Fetcher | None = None


def limit_memory(megabytes: int) -> None:
    """Lets the process map `megabytes` more than it has mapped now. Relative, because what a
    process starts with is libraries, not decoding: OpenCV alone maps ~170 MB of address
    space, and an absolute limit would have to know that."""
    if megabytes > 0:
        limit = address_space_bytes() + megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def address_space_bytes() -> int:
    """This process's mapped address space (VmSize); 0 where /proc is not there."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def reuse_image_memory() -> None:
    """Pillow returns each image's memory to the system once the image is freed (blocks_max
    0), so every image of a stream of thumbnails maps and page-faults fresh memory: a third
    of the CPU a small JPEG costs, all of it in the kernel. Keeping a few 1 MiB blocks for
    the next image costs at most BLOCKS_KEPT MiB; larger images still get (and give back)
    memory of their own, within the process's memory limit."""
    Image.core.set_block_size(IMAGE_BLOCK_BYTES)
    Image.core.set_blocks_max(BLOCKS_KEPT)


def init_process(store_factory: Callable[[], BlobStore], limits: DecodeLimits,
                 fetch_policy: FetchPolicy | None = None) -> None:
    """Pool initializer: runs once in each new decoding process."""
    global _store, _limits, _fetcher
    limit_memory(limits.memory_limit_mb)
    reuse_image_memory()
    _store, _limits = store_factory(), limits
    _fetcher = Fetcher(fetch_policy) if fetch_policy is not None else None


def describe(name: str, blob_key: str) -> Described:
    """Describes the blob and makes its thumbnail. A bad file is a result with an error;
    blob store failures raise (they may be worth a retry)."""
    if _store is None or _limits is None:
        raise RuntimeError("decoding process was not initialised")
    with _store.local_path(blob_key) as path:
        info = describe_file(path, name, _limits.thumbnail_size, _limits.max_image_pixels)
    return Described(info.system, info.thumbnail, info.error)


def describe_many(jobs: list[tuple[str, str]]) -> list[Described | Exception]:
    """describe() for each `(name, blob_key)`, in one task. What describe() would raise for
    an item comes back in its place, so one bad item never costs the others their result."""
    outcomes: list[Described | Exception] = []
    for name, blob_key in jobs:
        try:
            outcomes.append(describe(name, blob_key))
        except Exception as exc:  # noqa: BLE001 - returned to the service as the item's
            outcomes.append(_picklable(exc))
    return outcomes


def _picklable(exc: Exception) -> Exception:
    """`exc`, or a stand-in saying the same if it cannot cross to the service: one exception
    that does not pickle would lose the results of the whole batch."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def describe_link(name: str, url: str, claimed_mimetype: str) -> Described:
    """Fetches a link's content through the SSRF-safe fetcher into a temporary file, then
    describes it like a blob. Unreachable content, or content that is not what the link
    claims (an "image" that is HTML), raises LinkFailed."""
    if _fetcher is None or _limits is None:
        raise LinkFailed("this preprocess service cannot fetch links")
    with tempfile.NamedTemporaryFile(prefix="corral-link-") as file:
        try:
            with _fetcher.open(url) as body:
                for chunk in body.iter_chunks():
                    file.write(chunk)
        except CorralError as exc:
            raise LinkFailed(exc.message, retryable=exc.code == "UNAVAILABLE") from None
        file.flush()
        info = describe_file(Path(file.name), name, _limits.thumbnail_size,
                             _limits.max_image_pixels)
    found = info.system.get("mimetype", "")
    if claimed_mimetype and not _same_type(claimed_mimetype, found):
        raise LinkFailed(f"the link claims {claimed_mimetype} but its content is {found}")
    return Described(info.system, info.thumbnail, info.error)


def _same_type(claimed: str, found: str) -> bool:
    """"image" matches any image/*; a full type must match exactly, except that a sniffer
    cannot tell every subtype apart (image/jpg vs image/jpeg), so the family decides."""
    return claimed.split("/")[0] == found.split("/")[0]
