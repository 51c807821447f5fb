"""Isolation: hostile files and misbehaving tasks cost one task, never the pool."""

from __future__ import annotations

import asyncio
import functools
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from services.blobstore import open_blob_store
from services.blobstore.base import BlobStore
from services.common.settings import BlobStoreSettings
from services.preprocess.decoding import DecodeJob, DecodeLimits, DecodeResult
from services.preprocess.pool import DecodePool, TaskFailed

from .images import encode, garbage_with_png_header, gradient, png_declaring, truncated_jpeg

MEMORY_LIMIT_MB = 400


@pytest.fixture(scope="module")
def blob_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("blobs")


@pytest.fixture(scope="module")
def store(blob_root: Path) -> BlobStore:
    return open_blob_store(BlobStoreSettings(blob_dir=str(blob_root)), blob_root)


@pytest.fixture(scope="module")
def pool(blob_root: Path) -> Iterator[DecodePool]:
    # Pixel limit far above the memory limit, so the memory limit is what stops big images.
    limits = DecodeLimits(thumbnail_size=256, max_image_pixels=2_000_000_000,
                          memory_limit_mb=MEMORY_LIMIT_MB)
    factory = functools.partial(open_blob_store, BlobStoreSettings(blob_dir=str(blob_root)),
                                blob_root)
    decode_pool = DecodePool(2, factory, limits, task_timeout=3.0)
    yield decode_pool
    decode_pool.stop()


def decode(pool: DecodePool, store: BlobStore, data: bytes, name: str = "x.jpg") -> DecodeResult:
    key = f"items/test/{time.monotonic_ns()}"
    store.put_bytes(key, data)
    job = DecodeJob(name=name, blob_key=key, thumbnail_key_stem=f"thumbnails/t/{key[-8:]}")
    return asyncio.run(pool.decode(job))


def run(pool: DecodePool, function, *args):
    return asyncio.run(pool.run(function, *args))


def assert_pool_still_works(pool: DecodePool, store: BlobStore) -> None:
    result = decode(pool, store, encode(gradient(640, 480), "JPEG"))
    assert result.error is None
    assert result.thumbnail_key and store.exists(result.thumbnail_key)
    assert result.system["thumbnail"]["key"] == result.thumbnail_key


def test_good_image_gets_a_stored_thumbnail(pool: DecodePool, store: BlobStore) -> None:
    result = decode(pool, store, encode(gradient(1200, 900), "JPEG"), "cat.jpg")
    assert result.error is None
    assert result.system["name"] == "cat.jpg"
    key = result.thumbnail_key
    assert key is not None and key.startswith("thumbnails/t/") and key.endswith(".jpg")
    with store.local_path(key) as path:
        assert Image.open(path).size == (256, 192)


@pytest.mark.parametrize(("data", "reason"), [
    (truncated_jpeg(), "truncated"),
    (garbage_with_png_header(), "corrupt image/png"),
    (png_declaring(200_000, 200_000), "decompression bomb"),
    # 30000 x 30000 RGB is 2.7 GB once decoded: more than the process may allocate.
    (png_declaring(30_000, 30_000), "out of memory"),
])
def test_hostile_files_fail_one_item(pool: DecodePool, store: BlobStore, data: bytes,
                                     reason: str) -> None:
    result = decode(pool, store, data)
    assert result.error is not None and reason in result.error, result.error
    assert result.thumbnail_key is None
    assert result.system["mimetype"].startswith("image/")
    assert_pool_still_works(pool, store)


def test_task_over_the_memory_limit_fails(pool: DecodePool, store: BlobStore) -> None:
    with pytest.raises(TaskFailed, match="out of memory") as failure:
        run(pool, bytearray, 2 * MEMORY_LIMIT_MB * 1024 * 1024)
    assert not failure.value.retryable
    assert_pool_still_works(pool, store)


def test_task_over_the_timeout_is_killed(pool: DecodePool, store: BlobStore) -> None:
    started = time.monotonic()
    with pytest.raises(TaskFailed, match="timed out after 3 s"):
        run(pool, time.sleep, 60)
    assert time.monotonic() - started < 15
    assert_pool_still_works(pool, store)


def test_crashed_process_fails_its_task_only(pool: DecodePool, store: BlobStore) -> None:
    with pytest.raises(TaskFailed, match="killed") as failure:
        run(pool, signal.raise_signal, signal.SIGKILL)
    assert failure.value.retryable
    assert_pool_still_works(pool, store)


def test_missing_blob_is_reported(pool: DecodePool) -> None:
    job = DecodeJob(name="gone", blob_key="items/test/never-written",
                    thumbnail_key_stem="thumbnails/t/gone")
    with pytest.raises(TaskFailed) as failure:
        asyncio.run(pool.decode(job))
    assert failure.value.blob_missing


def test_both_processes_work_at_once(pool: DecodePool, store: BlobStore) -> None:
    async def sleep_twice() -> float:
        started = time.monotonic()
        await asyncio.gather(pool.run(time.sleep, 1.0), pool.run(time.sleep, 1.0))
        return time.monotonic() - started

    assert asyncio.run(sleep_twice()) < 1.9
