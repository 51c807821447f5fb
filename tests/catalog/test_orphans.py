"""The orphan blob collector on both databases and both blob stores: it deletes only old
objects that no item and no resumable session references."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from blobstore.moto_s3 import (  # noqa: F401  (moto_endpoint: a fixture)
    TEST_PART_SIZE,
    moto_endpoint,
    pending_multipart_uploads,
    s3_settings,
)

from services.blobstore import BlobStore, open_blob_store
from services.blobstore.fs import FsBlobStore, FsBlobWriter
from services.blobstore.s3 import S3BlobStore
from services.catalog import orphans
from services.catalog.app import open_database
from services.catalog.datasets import create_dataset
from services.catalog.items import clone_item, create_item, update_system_metadata
from services.catalog.records import CloneRequest, ItemType, NewItem
from services.catalog.repository import Store
from services.common.settings import BlobStoreSettings

GRACE = 3600.0
LATER = 2 * GRACE  # a clock this far ahead makes every object written now old


@pytest.fixture(params=["fs", "s3"])
def blob_store(request, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "fs":
        yield open_blob_store(BlobStoreSettings(), tmp_path)
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        yield open_blob_store(s3_settings(endpoint), tmp_path)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    db = open_database(database_url)
    yield Store(db)
    db.dispose()


def keys(blob_store: BlobStore) -> set[str]:
    return {info.key for prefix in orphans.BLOB_PREFIXES for info in blob_store.list_keys(prefix)}


def add_file(store: Store, blob_store: BlobStore, dataset_id: str, name: str) -> str:
    key = f"items/{dataset_id}/{name}-blob"
    blob_store.put_bytes(key, b"content of " + name.encode())
    result = store.write(create_item(NewItem(dataset_id=dataset_id, dir="/", name=name,
                                             type=ItemType.FILE, size=1, sha256="0" * 64,
                                             blob_key=key)))
    return result.item.id


def test_collects_only_old_unreferenced_blobs(store: Store, blob_store: BlobStore) -> None:
    dataset = create_dataset(store, "orphans")
    item_id = add_file(store, blob_store, dataset.id, "kept.jpg")
    thumbnail = f"thumbnails/{item_id[:2]}/{item_id}-0123.jpg"
    blob_store.put_bytes(thumbnail, b"thumbnail")
    store.write(update_system_metadata(item_id, {"thumbnail": {"key": thumbnail}}))
    # A clone shares the blob and thumbnail; the source is then the only other reference.
    clone = store.write(clone_item(CloneRequest(item_id=item_id, name="clone.jpg"))).item
    shared_only = add_file(store, blob_store, dataset.id, "shared.jpg")
    store.write(clone_item(CloneRequest(item_id=shared_only, name="shared-clone.jpg")))

    orphan_blob = f"items/{dataset.id}/orphan-blob"
    orphan_thumbnail = "thumbnails/ff/ffff-orphan.jpg"
    in_session = f"items/{dataset.id}/committing-session-blob"
    elsewhere = "exports/not-ours.csv"
    for key in (orphan_blob, orphan_thumbnail, in_session, elsewhere):
        blob_store.put_bytes(key, b"x" * 10)
    sessions = blob_store.session_storage()
    sessions.save_record("a" * 32, b'{"blob_key": "%s", "phase": "committing"}'
                         % in_session.encode())
    everything = keys(blob_store)

    # Young orphans are kept: their registration may still be in flight.
    assert orphans.sweep(store, blob_store, GRACE) == orphans.SweepResult(0, 0)
    assert keys(blob_store) == everything

    result = orphans.sweep(store, blob_store, GRACE, clock=lambda: time.time() + LATER)

    assert result == orphans.SweepResult(deleted=2, deleted_bytes=20)
    assert keys(blob_store) == everything - {orphan_blob, orphan_thumbnail}
    assert blob_store.exists(elsewhere)
    assert clone.blob_key in keys(blob_store)

    # Once the session is gone its blob is an orphan like any other.
    sessions.delete_record("a" * 32)
    assert orphans.sweep(store, blob_store, GRACE,
                         clock=lambda: time.time() + LATER).deleted == 1
    assert not blob_store.exists(in_session)


def test_checks_references_in_batches(store: Store, blob_store: BlobStore,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orphans, "BATCH", 3)
    dataset = create_dataset(store, "batches")
    referenced = {add_file(store, blob_store, dataset.id, f"f{n}.jpg") for n in range(4)}
    for n in range(5):
        blob_store.put_bytes(f"items/{dataset.id}/orphan-{n}", b"o")

    result = orphans.sweep(store, blob_store, GRACE, clock=lambda: time.time() + LATER)

    assert result.deleted == 5
    assert len(keys(blob_store)) == len(referenced)


def test_an_object_rewritten_before_the_delete_is_kept(store: Store,
                                                       blob_store: BlobStore) -> None:
    """The time is read again under the lock: a thumbnail re-stored meanwhile is young."""
    blob_store.put_bytes("thumbnails/ab/abcd-rerun.jpg", b"t")
    old = [blob_store.stat("thumbnails/ab/abcd-rerun.jpg")]
    cutoff = old[0].modified - 1  # as if it had been rewritten after the listing

    result = orphans._delete_if_still_orphaned(store, blob_store, old, cutoff)

    assert result.deleted == 0 and blob_store.exists("thumbnails/ab/abcd-rerun.jpg")


def test_an_unreadable_session_record_deletes_nothing(store: Store,
                                                      blob_store: BlobStore) -> None:
    blob_store.put_bytes("items/ds/orphan", b"o")
    blob_store.session_storage().save_record("b" * 32, b"not json")

    with pytest.raises(ValueError):
        orphans.sweep(store, blob_store, GRACE, clock=lambda: time.time() + LATER)
    assert blob_store.exists("items/ds/orphan")


def dead_writer(blob_store: BlobStore, key: str) -> int:
    """Starts a write and walks away from it, as a killed writer does; returns its size. On
    the fs store it is a named temporary file (where the filesystem makes no unnamed ones);
    on S3 a multipart upload with one part sent (and a byte more, which only the writer
    held)."""
    if isinstance(blob_store, FsBlobStore):
        blob_store.unnamed_files = False
        size = 1000
    else:
        size = TEST_PART_SIZE
    writer = blob_store.open_writer(key)
    writer.write(b"u" * (size if isinstance(blob_store, FsBlobStore) else size + 1))
    if isinstance(writer, FsBlobWriter):
        os.close(writer._fd)  # the descriptor dies with the process; the file stays
    return size


def pending(blob_store: BlobStore) -> list[str]:
    if isinstance(blob_store, FsBlobStore):
        return sorted(p.name for p in blob_store.tmp_dir.iterdir())
    assert isinstance(blob_store, S3BlobStore)
    return pending_multipart_uploads(blob_store.client, blob_store.bucket)


def test_unfinished_writes_of_dead_writers_go_once_untouched_for_the_grace_period(
        store: Store, blob_store: BlobStore) -> None:
    size = dead_writer(blob_store, "items/ds/killed-mid-upload")
    sessions = blob_store.session_storage()
    session_key = "items/ds/session-blob"
    sessions.create_data("c" * 32, session_key)
    sessions.save_record("c" * 32, b'{"blob_key": "%s", "phase": "receiving"}'
                         % session_key.encode())
    before = pending(blob_store)
    assert len(before) == (1 if isinstance(blob_store, FsBlobStore) else 2)

    # Untouched for less than the grace period: it may be a live upload.
    assert orphans.sweep(store, blob_store, GRACE) == orphans.SweepResult()
    assert pending(blob_store) == before

    result = orphans.sweep(store, blob_store, GRACE, clock=lambda: time.time() + LATER)
    assert result == orphans.SweepResult(discarded=1, discarded_bytes=size)
    # The session's multipart upload is its TTL cleanup's to remove, not the sweep's.
    assert pending(blob_store) == ([] if isinstance(blob_store, FsBlobStore) else [session_key])
