"""Bulk loading: many items per transaction, with their folders and CREATED events.

The path for imports whose blobs are already in place (and for the benchmarks): one
CreateItem call per item costs a round trip and a commit, while a batch of thousands shares
one transaction and multi-row statements. Same guarantees as CreateItem: every item gets its
event in the same transaction, and missing folders are created."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from corral.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from corral.paths import ancestors, check_name, join, normalize_dir
from services.catalog.blobs import thumbnail_key
from services.catalog.items import _folder
from services.catalog.records import ItemType
from services.catalog.repository import Repository, Store
from services.catalog.validation import (
    check_blob_key,
    check_filename_length,
    check_sha256,
    json_object_text,
    require_id,
)

DEFAULT_BATCH = 5000


@dataclass(frozen=True)
class BulkItem:
    dir: str
    name: str
    size: int
    sha256: str
    blob_key: str
    user_metadata: dict[str, Any] = field(default_factory=dict)
    # Trusted callers only (an import of already-processed files, benchmarks); never exposed
    # to users, for whom metadata.system is read-only.
    system_metadata: dict[str, Any] = field(default_factory=dict)


def _batches(entries: Iterable[BulkItem], size: int) -> Iterator[list[BulkItem]]:
    iterator = iter(entries)
    while batch := list(islice(iterator, size)):
        yield batch


@dataclass(frozen=True)
class _Batch:
    """A validated batch, encoded for the database ahead of its transaction."""
    dataset_id: str
    now: datetime
    filenames: list[str]
    folders: list[str]
    rows: list[dict[str, Any]]  # item columns, JSON as text; times added by the repository
    payloads: list[str]  # each item's event payload (Item.to_payload) as JSON text


def _prepare(dataset_id: str, entries: list[BulkItem]) -> _Batch:
    """Validates like CreateItem and encodes every JSON document once: the event payload is
    spliced from the metadata texts instead of encoding them a second time (the dominant CPU
    cost of a load; tests check it equals Item.to_payload)."""
    now = datetime.now(UTC)
    stamp = json.dumps(now.isoformat())
    dirs: dict[str, str] = {}
    rows, payloads, filenames = [], [], []
    for entry in entries:
        dir_path = dirs.get(entry.dir) or dirs.setdefault(entry.dir, normalize_dir(entry.dir))
        name = check_name(entry.name)
        filename = check_filename_length(join(dir_path, name))
        check_sha256(entry.sha256)
        check_blob_key(entry.blob_key)
        if entry.size < 0:
            raise InvalidArgument(f"size of {filename} must not be negative")
        user = json_object_text(entry.user_metadata, f"user_metadata of {filename}")
        system = json_object_text(entry.system_metadata, f"system_metadata of {filename}")
        row = {"id": _ordered_id(), "dataset_id": dataset_id, "dir": dir_path, "name": name,
               "filename": filename, "type": str(ItemType.FILE), "size": entry.size,
               "sha256": entry.sha256, "blob_key": entry.blob_key, "description": "",
               "link_url": "", "link_mimetype": ""}
        rows.append({**row, "metadata_system": system, "metadata_user": user,
                     "thumbnail_key": thumbnail_key(entry.system_metadata)})
        payloads.append(f'{json.dumps(row)[:-1]}, "metadata": {{"system": {system}, '
                        f'"user": {user}}}, "create_time": {stamp}, "update_time": {stamp}}}')
        filenames.append(filename)
    folders = sorted({folder for d in dirs.values() for folder in ancestors(d)})
    return _Batch(dataset_id, now, filenames, folders, rows, payloads)


def _ordered_id() -> str:
    """32 hex characters like uuid4().hex, but led by the time in milliseconds (as UUIDv7):
    a batch's ids land next to each other in the primary key index instead of all over it,
    which keeps a large load's index writes in cache."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.randbits(80):020x}"


def insert_items(store: Store, dataset_id: str, entries: Iterable[BulkItem],
                 batch_size: int = DEFAULT_BATCH) -> int:
    """Inserts new file items, `batch_size` per transaction; returns how many. An item whose
    path is taken fails its whole batch (ALREADY_EXISTS); earlier batches stay committed.
    The next batch is validated and encoded while the previous one is written (the
    database drivers release the GIL while they work)."""
    require_id(dataset_id, "dataset_id")
    total = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="corral-bulk") as writer:
        pending: Future[int] | None = None
        for entries_batch in _batches(entries, batch_size):
            batch = _prepare(dataset_id, entries_batch)
            if pending is not None:
                total += pending.result()
            pending = writer.submit(store.write, lambda repo, b=batch: _insert(repo, b))
        if pending is not None:
            total += pending.result()
    store.write(lambda repo: repo.refresh_statistics())
    return total


def _insert(repo: Repository, batch: _Batch) -> int:
    dataset_id, now = batch.dataset_id, batch.now
    if not repo.dataset_exists(dataset_id, lock=True):
        raise NotFound(f"dataset {dataset_id} not found")
    existing = repo.item_types_at(dataset_id, [*batch.folders, *batch.filenames])
    for folder in batch.folders:
        if existing.get(folder, ItemType.DIR) != ItemType.DIR:
            raise FailedPrecondition(f"{folder} is a file in dataset {dataset_id}, not a folder")
    taken = [filename for filename in batch.filenames if filename in existing]
    if taken or len(set(batch.filenames)) != len(batch.filenames):
        shown = taken[0] if taken else "a path given twice"
        raise AlreadyExists(f"an item already exists at {shown} in dataset {dataset_id}")
    repo.insert_folders(_folder(dataset_id, f, now) for f in batch.folders if f not in existing)
    repo.insert_encoded_items(batch.rows, batch.payloads, now)
    return len(batch.rows)
