"""Collecting orphan blobs: committed objects under `items/` and `thumbnails/` that no item
references. They appear when the upload service commits a blob but never learns whether the
catalog registered it (it keeps the blob: a dangling item is worse than an orphan blob), when
the upload service crashes between commit and registration, when a preprocess run stores a
thumbnail and fails to write its result, or when a released blob's delete failed.

Why deleting is safe, i.e. never removes a blob an item refers to or is about to refer to:

1. Grace period. Only objects last modified more than `grace_seconds` ago are candidates.
   Every writer registers a key right after writing it: one-call and bulk uploads commit a
   fresh, never reused key and call CreateItem with a few seconds of retries; preprocessing
   stores a thumbnail and then writes the item's metadata. The grace period (hours) is far
   longer than any of those, so a key whose registration is in flight or being retried is
   never old enough to be looked at.
2. Resumable sessions. A resumable upload is the exception: its blob may be committed long
   after its bytes were written (the filesystem keeps the last write's time; S3 may keep
   the multipart start), and a session left "committing" registers its blob when the client
   retries the finish, up to the session TTL later. So every key a session record names is
   kept. Records are read after the listing, and a record is created (with its key) before
   any byte is written and deleted only after the item exists or the blob was deleted, so a
   listed key whose session was gone by then is either referenced or truly abandoned.
3. Re-check under a lock, then delete. Candidates are re-checked in a write transaction
   that holds off every item write (SQLite: the write transaction; PostgreSQL: a SHARE lock
   on items), and deleted before that transaction ends. A registration racing the sweep
   therefore either committed before the re-check (the key is kept) or commits after the
   delete. The latter cannot name the key: by (1) its writer would have to have stored it
   hours ago. The object's time is read again under the lock too, so a thumbnail rewritten
   meanwhile (a re-run of the same item and content reuses its key) is young again and kept.
   What remains is a thumbnail rewritten in the milliseconds between that read and the
   delete, by a re-run that started hours after an earlier failed one: the item would then
   show no thumbnail until it is processed again, and no file content is ever at risk.

Anything unexpected (an unreadable session record, a database or store error) ends the
sweep without deleting more; the next sweep starts over.

The sweep also discards unfinished writes that a dead writer left (BlobStore.
unfinished_writes: named temporary files, multipart uploads of one-call uploads) once nothing
has been written to them for the grace period; a live upload writes at least every part
(or its stream's idle limit ends it). Multipart uploads a session record names are kept:
session TTL cleanup owns those.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from corral.errors import FailedPrecondition, NotFound
from services.blobstore.base import BlobInfo, BlobStore, UnfinishedWrite
from services.catalog.repository import Repository, Store

log = logging.getLogger("corral.catalog.orphans")

# Where the platform writes blobs that items refer to; nothing else in the store is touched.
BLOB_PREFIXES = ("items/", "thumbnails/")
BATCH = 500
# Orphans are rare; a backlog larger than this is worked off over several sweeps.
MAX_CANDIDATES_PER_SWEEP = 100_000
LOCK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class OrphanPolicy:
    """Sweep every `sweep_seconds` (0: never) for objects older than `grace_seconds`."""
    sweep_seconds: float = 3600.0
    grace_seconds: float = 6 * 3600.0


@dataclass(frozen=True)
class SweepResult:
    deleted: int = 0
    deleted_bytes: int = 0
    # Unfinished writes of dead writers.
    discarded: int = 0
    discarded_bytes: int = 0


def _batches(infos: Iterable[BlobInfo], size: int) -> Iterator[list[BlobInfo]]:
    batch: list[BlobInfo] = []
    for info in infos:
        batch.append(info)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _old_objects(blob_store: BlobStore, cutoff: float) -> Iterator[BlobInfo]:
    for prefix in BLOB_PREFIXES:
        for info in blob_store.list_keys(prefix):
            if info.modified < cutoff:
                yield info


def _unreferenced(store: Store, infos: list[BlobInfo]) -> list[BlobInfo]:
    with store.read() as repo:
        used = repo.referenced_blob_keys([info.key for info in infos])
    return [info for info in infos if info.key not in used]


def session_blob_keys(blob_store: BlobStore) -> set[str]:
    """The blob key of every resumable upload session record, whatever its phase (the record
    format is services/upload/session_records.py). A record that cannot be read raises: the
    key it protects is unknown, so nothing may be deleted."""
    try:
        sessions = blob_store.session_storage()
    except FailedPrecondition:  # a store without resumable sessions
        return set()
    keys: set[str] = set()
    for upload_id in sessions.record_ids():
        raw = sessions.load_record(upload_id)
        if raw is None:  # finished and removed meanwhile
            continue
        key = json.loads(raw)["blob_key"]
        if not isinstance(key, str):
            raise ValueError(f"session record {upload_id} has no blob_key")
        keys.add(key)
    return keys


def _delete_if_still_orphaned(store: Store, blob_store: BlobStore, infos: list[BlobInfo],
                              cutoff: float) -> SweepResult:
    """Re-checks and deletes while no item can be written (see the module docstring, 3)."""
    deleted = deleted_bytes = 0
    with store.db.begin_write() as conn:
        repo = Repository(conn, store.db)
        repo.hold_off_item_writes(LOCK_TIMEOUT_SECONDS)
        used = repo.referenced_blob_keys([info.key for info in infos])
        for info in infos:
            if info.key in used:
                continue
            try:
                current = blob_store.stat(info.key)
            except NotFound:
                continue
            if current.modified >= cutoff:
                continue
            blob_store.delete(info.key)
            log.debug("deleted orphan blob", extra={"key": info.key, "bytes": current.size})
            deleted += 1
            deleted_bytes += current.size
    return SweepResult(deleted, deleted_bytes)


def sweep(store: Store, blob_store: BlobStore, grace_seconds: float,
          clock: Callable[[], float] = time.time) -> SweepResult:
    """Deletes the orphan blobs, and discards the unfinished writes, untouched for
    `grace_seconds`; returns how many and their size."""
    cutoff = clock() - grace_seconds
    abandoned = list(blob_store.unfinished_writes(untouched_before=cutoff))
    candidates: list[BlobInfo] = []
    for batch in _batches(_old_objects(blob_store, cutoff), BATCH):
        candidates.extend(_unreferenced(store, batch))
        if len(candidates) >= MAX_CANDIDATES_PER_SWEEP:
            break
    if not candidates and not abandoned:
        return SweepResult()
    # Read after both listings (see the module docstring, 2).
    in_sessions = session_blob_keys(blob_store)
    discarded = _discard_unfinished(blob_store, abandoned, in_sessions)
    orphans = [info for info in candidates if info.key not in in_sessions]
    deleted = deleted_bytes = 0
    for batch in _batches(orphans, BATCH):
        result = _delete_if_still_orphaned(store, blob_store, batch, cutoff)
        deleted += result.deleted
        deleted_bytes += result.deleted_bytes
    return SweepResult(deleted, deleted_bytes, discarded.discarded, discarded.discarded_bytes)


def _discard_unfinished(blob_store: BlobStore, abandoned: list[UnfinishedWrite],
                        in_sessions: set[str]) -> SweepResult:
    count = size = 0
    for write in abandoned:
        if write.key and write.key in in_sessions:
            continue
        blob_store.discard_unfinished(write)
        log.debug("discarded an unfinished write",
                  extra={"key": write.key, "handle": write.handle, "bytes": write.size})
        count += 1
        size += write.size
    return SweepResult(discarded=count, discarded_bytes=size)


async def run_periodically(store: Store, blob_store: BlobStore, policy: OrphanPolicy) -> None:
    """Sweeps every `policy.sweep_seconds` until cancelled; a failed sweep is retried next
    time."""
    while True:
        try:
            result = await asyncio.to_thread(sweep, store, blob_store, policy.grace_seconds)
            if result.deleted:
                log.info("deleted orphan blobs", extra={"count": result.deleted,
                                                        "bytes": result.deleted_bytes})
            if result.discarded:
                log.info("discarded unfinished writes of dead writers",
                         extra={"count": result.discarded, "bytes": result.discarded_bytes})
        except Exception:  # the database or the store may be briefly unreachable
            log.warning("orphan blob sweep failed", exc_info=True)
        await asyncio.sleep(policy.sweep_seconds)
