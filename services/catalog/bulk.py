"""Bulk loading: many items per transaction, with their folders and CREATED events.

The path for imports whose blobs are already in place (and for the benchmarks): one
CreateItem call per item costs a round trip and a commit, while a batch of thousands shares
one transaction and multi-row statements. Same guarantees as CreateItem: every item gets its
event in the same transaction, and missing folders are created."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from corral.errors import AlreadyExists, FailedPrecondition, NotFound
from corral.paths import ancestors, check_name, join, normalize_dir
from services.catalog.items import _folder
from services.catalog.records import EventType, Item, ItemType
from services.catalog.repository import Repository, Store
from services.catalog.validation import (
    check_blob_key,
    check_filename_length,
    check_json_object,
    check_sha256,
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


def _item(dataset_id: str, entry: BulkItem, now: datetime) -> Item:
    dir_path = normalize_dir(entry.dir or "/")
    name = check_name(entry.name)
    check_sha256(entry.sha256)
    check_blob_key(entry.blob_key)
    check_json_object(entry.user_metadata, "user_metadata")
    return Item(id=uuid.uuid4().hex, dataset_id=dataset_id, dir=dir_path, name=name,
                filename=check_filename_length(join(dir_path, name)), type=ItemType.FILE,
                size=entry.size, sha256=entry.sha256, blob_key=entry.blob_key, description="",
                metadata_system=entry.system_metadata, metadata_user=entry.user_metadata,
                create_time=now, update_time=now)


def insert_items(store: Store, dataset_id: str, entries: Iterable[BulkItem],
                 batch_size: int = DEFAULT_BATCH) -> int:
    """Inserts new file items, `batch_size` per transaction; returns how many. An item whose
    path is taken fails its whole batch (ALREADY_EXISTS); earlier batches stay committed."""
    require_id(dataset_id, "dataset_id")
    total = 0
    for batch in _batches(entries, batch_size):
        now = datetime.now(UTC)
        new_items = [_item(dataset_id, entry, now) for entry in batch]
        total += store.write(lambda repo, new=new_items, at=now: _insert(repo, new, at))
    return total


def _insert(repo: Repository, new_items: list[Item], now: datetime) -> int:
    dataset_id = new_items[0].dataset_id
    if not repo.dataset_exists(dataset_id, lock=True):
        raise NotFound(f"dataset {dataset_id} not found")
    folders = sorted({folder for item in new_items for folder in ancestors(item.dir)})
    targets = [item.filename for item in new_items]
    existing = repo.item_types_at(dataset_id, [*folders, *targets]) if folders or targets \
        else {}
    for folder in folders:
        if existing.get(folder, ItemType.DIR) != ItemType.DIR:
            raise FailedPrecondition(f"{folder} is a file in dataset {dataset_id}, not a folder")
    taken = [filename for filename in targets if filename in existing]
    if taken or len(set(targets)) != len(targets):
        shown = taken[0] if taken else "a path given twice"
        raise AlreadyExists(f"an item already exists at {shown} in dataset {dataset_id}")
    repo.insert_folders(_folder(dataset_id, f, now) for f in folders if f not in existing)
    repo.insert_items(new_items)
    repo.append_events([(EventType.CREATED, item) for item in new_items], now)
    return len(new_items)

