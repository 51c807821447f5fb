"""One contract for every blob store: the filesystem one and S3 (moto on loopback)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from blobstore.moto_s3 import (
    TEST_PART_SIZE,
    minio_client,
    object_keys,
    pending_multipart_uploads,
    s3_settings,
)
from corral.errors import CorralError, NotFound
from services.blobstore import BlobStore, open_blob_store
from services.blobstore.fs import FsBlobStore
from services.blobstore.s3 import S3BlobStore
from services.common.settings import BlobStoreSettings

MULTIPART_SIZE = 2 * TEST_PART_SIZE + 1234567  # three parts, the last one short


def leftovers(store: BlobStore) -> list[str]:
    """Anything an aborted write could have left: objects, temp files, pending uploads."""
    if isinstance(store, FsBlobStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*")
                      if p.is_file())
    assert isinstance(store, S3BlobStore)
    return (object_keys(store.client, store.bucket)
            + pending_multipart_uploads(store.client, store.bucket))


def write_in_chunks(store: BlobStore, key: str, data: bytes, chunk: int = 1 << 20) -> None:
    writer = store.open_writer(key)
    for start in range(0, len(data), chunk):
        writer.write(data[start:start + chunk])
    writer.commit()


def read_all(store: BlobStore, key: str, offset: int = 0, chunk_size: int = 1 << 20) -> bytes:
    return b"".join(store.iter_chunks(key, offset=offset, chunk_size=chunk_size))


@pytest.mark.parametrize("size", [0, 1, 50_000, MULTIPART_SIZE])
def test_round_trip(store: BlobStore, size: int) -> None:
    data = os.urandom(size)
    key = f"items/ds/{size}"
    write_in_chunks(store, key, data)
    assert store.exists(key)
    assert store.size(key) == size
    assert hashlib.sha256(read_all(store, key)).digest() == hashlib.sha256(data).digest()
    with store.local_path(key) as path:
        assert path.read_bytes() == data
    assert leftovers(store) == [key]


def test_exactly_one_part_and_odd_chunking(store: BlobStore) -> None:
    data = os.urandom(TEST_PART_SIZE)
    write_in_chunks(store, "items/ds/one-part", data, chunk=333_333)
    assert read_all(store, "items/ds/one-part", chunk_size=100_000) == data


def test_nothing_visible_before_commit(store: BlobStore) -> None:
    writer = store.open_writer("items/ds/pending")
    writer.write(os.urandom(1000))
    assert not store.exists("items/ds/pending")
    writer.commit()
    assert store.exists("items/ds/pending")


@pytest.mark.parametrize("size", [1000, MULTIPART_SIZE])
def test_abort_leaves_nothing(store: BlobStore, size: int) -> None:
    writer = store.open_writer("items/ds/aborted")
    data = os.urandom(size)
    for start in range(0, size, 1 << 20):
        writer.write(data[start:start + (1 << 20)])
    writer.abort()
    writer.abort()  # idempotent
    assert not store.exists("items/ds/aborted")
    assert leftovers(store) == []
    with pytest.raises(ValueError):
        writer.write(b"more")


def test_offset_reads(store: BlobStore) -> None:
    data = os.urandom(3_000_000)
    write_in_chunks(store, "items/ds/offsets", data)
    for offset in (0, 1, 1_048_576, 2_999_999, 3_000_000, 4_000_000):
        assert read_all(store, "items/ds/offsets", offset, chunk_size=256 * 1024) == data[offset:]


def test_missing_key_is_not_found(store: BlobStore) -> None:
    with pytest.raises(NotFound):
        store.size("items/ds/missing")
    with pytest.raises(NotFound):
        read_all(store, "items/ds/missing")
    with pytest.raises(NotFound), store.local_path("items/ds/missing"):
        pass
    assert not store.exists("items/ds/missing")


def test_delete_is_idempotent(store: BlobStore) -> None:
    store.put_bytes("thumbnails/i/t.jpg", b"jpeg", "image/jpeg")
    assert store.size("thumbnails/i/t.jpg") == 4
    store.delete("thumbnails/i/t.jpg")
    store.delete("thumbnails/i/t.jpg")
    store.delete("never/existed")
    assert not store.exists("thumbnails/i/t.jpg")


@pytest.mark.parametrize("key", ["", "../x", "a/../../x", "/abs", "a\\b", "a\x00b", "a//b",
                                 "./a", "a/."])
def test_bad_keys_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(CorralError):
        store.open_writer(key)
    with pytest.raises(CorralError):
        store.put_bytes(key, b"x")


def test_fs_refuses_its_temp_dir_and_stays_in_root(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path / "blobs")
    with pytest.raises(CorralError):
        store.open_writer(".tmp/x")
    with pytest.raises(CorralError):
        store.delete("../outside")
    assert not (tmp_path / "outside").exists()


def test_fs_writer_failure_in_commit_leaves_nothing(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path / "blobs")
    (store.root / "items").write_text("a file where a folder should be")
    writer = store.open_writer("items/ds/x")
    writer.write(b"data")
    with pytest.raises(OSError):
        writer.commit()
    assert list(store.tmp_dir.iterdir()) == []


def test_factory_defaults_and_errors(tmp_path: Path) -> None:
    store = open_blob_store(BlobStoreSettings(), tmp_path)
    assert isinstance(store, FsBlobStore) and store.root == (tmp_path / "blobs").resolve()
    custom = open_blob_store(BlobStoreSettings(blob_dir=str(tmp_path / "elsewhere")), tmp_path)
    assert isinstance(custom, FsBlobStore) and custom.root == (tmp_path / "elsewhere").resolve()
    with pytest.raises(ValueError, match="CORRAL_BLOB_STORE"):
        open_blob_store(BlobStoreSettings(blob_store="tape"), tmp_path)


def test_s3_part_size_minimum(moto_endpoint: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CORRAL_S3_PART_SIZE"):
        open_blob_store(s3_settings(moto_endpoint, part_size=1024), tmp_path)


def test_s3_creates_missing_bucket_once(moto_endpoint: str, tmp_path: Path) -> None:
    settings = s3_settings(moto_endpoint)
    open_blob_store(settings, tmp_path)
    open_blob_store(settings, tmp_path)
    assert minio_client(moto_endpoint).bucket_exists(settings.s3_bucket)


def test_put_many_stores_each_and_fails_only_the_bad_ones(store: BlobStore) -> None:
    objects = [(f"thumbnails/{i % 3:02x}/t{i}.jpg", f"jpeg {i}".encode(), "image/jpeg")
               for i in range(7)]
    objects.insert(3, ("../escape", b"x", "image/jpeg"))
    results = store.put_many(objects)
    assert isinstance(results[3], CorralError)
    for (key, data, _), error in zip(objects, results, strict=True):
        if key != "../escape":
            assert error is None
            assert read_all(store, key) == data
    # Storing the same thumbnail again (a re-delivered event) overwrites it in place.
    assert store.put_many([objects[0]]) == [None]
    assert read_all(store, objects[0][0]) == objects[0][1]
    assert sorted(leftovers(store)) == sorted(key for key, _, _ in objects if key != "../escape")


def test_fs_put_many_failure_leaves_nothing(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path / "blobs")
    (store.root / "thumbnails").write_text("a file where a folder should be")
    results = store.put_many([("thumbnails/aa/t.jpg", b"jpeg", "image/jpeg")])
    assert isinstance(results[0], OSError)
    assert list(store.tmp_dir.iterdir()) == []
