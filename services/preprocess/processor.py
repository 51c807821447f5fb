"""Preprocesses one item: decide whether it needs work, decode it in the pool, write the
result back onto exactly the blob it was computed from."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from corral.errors import (
    Aborted,
    CorralError,
    DeadlineExceeded,
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from services.blobstore.base import BlobStore
from services.preprocess.catalog import Catalog, CatalogItem
from services.preprocess.decoding import DecodeJob, DecodeResult
from services.preprocess.fileinfo import TEXT_SAMPLE_BYTES, basic_system, sniff
from services.preprocess.pool import DecodePool, TaskFailed


def thumbnail_key_stem(item_id: str, content_key: str) -> str:
    """"thumbnails/<2 hex>/<item id>-<content digest>": 256 shared folders, so storing a
    thumbnail never creates (and fsyncs) a folder of its own. The name depends only on the item
    and its content, so a second run of the same content (a re-delivered event, after a worker
    died between storing the thumbnail and writing the result) overwrites the same bytes
    instead of leaving a second thumbnail; new content gets a new name, so the old thumbnail
    stays readable until the catalog has switched to the new one."""
    digest = hashlib.sha256(content_key.encode()).hexdigest()[:16]
    return f"thumbnails/{item_id[:2]}/{item_id}-{digest}"

log = logging.getLogger("corral.preprocess")

T = TypeVar("T")

# Keys only images and videos have: cleared when new content is neither, so nothing stale
# remains.
IMAGE_KEYS = ("exifOrientation", "width", "height", "displayWidth", "displayHeight", "mode",
              "thumbnail", "codec", "duration", "fps", "frameCount")
TRANSIENT_ERRORS = (Unavailable, DeadlineExceeded, Aborted, ResourceExhausted)
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


class Outcome(enum.Enum):
    PROCESSED = "processed"
    FAILED = "failed"
    # Deleted, overwritten meanwhile, not a file, or already processed.
    SKIPPED = "skipped"


class ItemProcessor:
    def __init__(self, catalog: Catalog, pool: DecodePool, store: BlobStore,
                 max_attempts: int = 2, consumer_group: str = "") -> None:
        """`consumer_group` is recorded in each item's execution log (who processed it)."""
        self.catalog, self.pool, self.store = catalog, pool, store
        self.max_attempts = max(1, max_attempts)
        self.consumer_group = consumer_group

    async def process(self, item_id: str, snapshot: CatalogItem | None = None) -> Outcome:
        """Preprocesses the item's current content, or `snapshot` (the item as its event
        carries it) without asking the catalog: the caller passes one only when nothing can
        have processed that content yet. Either way the result lands only while the item still
        has the blob it was computed from. Raises CancelledError, or an unexpected
        (non-transient) catalog error."""
        started = time.perf_counter()
        if snapshot is not None:
            item = snapshot
        else:
            try:
                item = await self._with_retries(lambda: self.catalog.get_item(item_id))
            except NotFound:
                return Outcome.SKIPPED  # deleted since the event
        if not item.content_key or item.preprocessed_blob_key == item.content_key:
            return Outcome.SKIPPED
        result, attempts = await self._decode(item)
        if result is None:
            return Outcome.SKIPPED  # its blob vanished: the item was deleted or overwritten
        system = self._system_update(item, result, attempts, started)
        try:
            await self._with_retries(lambda: self.catalog.update_system_metadata(
                item.id, system, expected_blob_key=item.content_key))
        except (FailedPrecondition, NotFound):
            # Overwritten (its new content has its own event) or deleted meanwhile. The
            # thumbnail is named after the old content, which only a duplicate run racing
            # this one (a lease lost mid-run) could have committed.
            await self._delete_blob(result.thumbnail_key)
            return Outcome.SKIPPED
        # A replaced thumbnail is the catalog's to delete: clones may share it.
        log.debug("preprocessed", extra={"item_id": item.id, "error": result.error,
                                         "ms": system["executionLogs"]["preprocess"]["durationMs"]})
        return Outcome.PROCESSED if result.error is None else Outcome.FAILED

    async def _decode(self, item: CatalogItem) -> tuple[DecodeResult | None, int]:
        attempts = 0
        while True:
            attempts += 1
            job = DecodeJob(name=item.name, blob_key=item.blob_key,
                            thumbnail_key_stem=thumbnail_key_stem(item.id, item.content_key),
                            link_url=item.link_url, link_mimetype=item.link_mimetype,
                            size=item.size)
            try:
                return await self.pool.decode(job), attempts
            except TaskFailed as failure:
                if failure.blob_missing and not await self._still_current(item):
                    return None, attempts
                if failure.retryable and attempts < self.max_attempts:
                    log.warning("retrying item", extra={"item_id": item.id,
                                                        "reason": failure.reason})
                    continue
                log.warning("item failed", extra={"item_id": item.id, "reason": failure.reason})
                return DecodeResult(await self._fallback_system(item), None,
                                    failure.reason), attempts

    def _system_update(self, item: CatalogItem, result: DecodeResult, attempts: int,
                       started: float) -> dict[str, Any]:
        system: dict[str, Any] = {key: None for key in IMAGE_KEYS}
        system.update(result.system)
        record = {
            "status": "success" if result.error is None else "failed",
            "error": result.error,
            "durationMs": round((time.perf_counter() - started) * 1000, 1),
            "finishedAt": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "blobKey": item.content_key,
            "attempts": attempts,
        }
        if self.consumer_group:
            record["consumerGroup"] = self.consumer_group
        system["executionLogs"] = {**item.execution_logs, "preprocess": record}
        return system

    async def _fallback_system(self, item: CatalogItem) -> dict[str, Any]:
        """Name, size and the sniffed type of an item whose decoding produced nothing.
        Sniffing reads the first bytes only, which no hostile file can turn into a crash."""
        if not item.blob_key:  # a link: its content could not be fetched or decoded
            return {"name": item.name, "size": item.size}
        try:
            sample = await asyncio.to_thread(self._read_head, item.blob_key)
        except (CorralError, OSError):
            return {"name": item.name, "size": item.size}
        return basic_system(item.name, item.size, sniff(sample, len(sample) >= item.size))

    def _read_head(self, key: str) -> bytes:
        chunks = self.store.iter_chunks(key, 0, TEXT_SAMPLE_BYTES)
        try:
            return next(iter(chunks), b"")
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    async def _still_current(self, item: CatalogItem) -> bool:
        try:
            current = await self._with_retries(lambda: self.catalog.get_item(item.id))
        except NotFound:
            return False
        return current.blob_key == item.blob_key

    async def _delete_blob(self, key: str | None) -> None:
        if not key:
            return
        try:
            await asyncio.to_thread(self.store.delete, key)
        except (CorralError, OSError) as exc:
            log.warning("cannot delete thumbnail", extra={"key": key, "error": str(exc)})

    @staticmethod
    async def _with_retries(call: Callable[[], Awaitable[T]]) -> T:
        """Retries for as long as the catalog is unreachable or busy (the item stays in flight
        and unacked, so it is never lost); other errors propagate."""
        attempt = 0
        while True:
            try:
                return await call()
            except TRANSIENT_ERRORS as exc:
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                attempt += 1
                log.info("catalog call failed; retrying",
                         extra={"error": exc.message, "delay_s": delay})
                await asyncio.sleep(delay)
