"""Isolation: hostile files and misbehaving tasks cost one task, never the pool."""

from __future__ import annotations

import asyncio
import functools
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from PIL import Image

from services.blobstore import open_blob_store
from services.blobstore.base import BlobStore
from services.blobstore.fs import FsBlobStore
from services.common.settings import BlobStoreSettings
from services.preprocess.decoding import DecodeJob, DecodeLimits, DecodeResult, describe_many
from services.preprocess.pool import DecodePool, TaskFailed, ThumbnailWriter, _LoopRelay

from .images import encode, garbage_with_png_header, gradient, png_declaring, truncated_jpeg

MEMORY_LIMIT_MB = 400


@pytest.fixture(scope="module")
def blob_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("blobs")


@pytest.fixture(scope="module")
def store(blob_root: Path) -> BlobStore:
    return open_blob_store(BlobStoreSettings(blob_dir=str(blob_root)), blob_root)


def running_pool(pool_class: type[DecodePool], blob_root: Path) -> Iterator[DecodePool]:
    # Pixel limit far above the memory limit, so the memory limit is what stops big images.
    limits = DecodeLimits(thumbnail_size=256, max_image_pixels=2_000_000_000,
                          memory_limit_mb=MEMORY_LIMIT_MB)
    factory = functools.partial(open_blob_store, BlobStoreSettings(blob_dir=str(blob_root)),
                                blob_root)
    decode_pool = pool_class(2, factory, limits, task_timeout=3.0)
    yield decode_pool
    decode_pool.stop()


@pytest.fixture(scope="module")
def pool(blob_root: Path) -> Iterator[DecodePool]:
    yield from running_pool(DecodePool, blob_root)


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


def describe_or_misbehave(jobs: list[tuple[str, str]]) -> list:
    """The batch function, except that a job named "die" kills its process and one named
    "hang" runs over any timeout."""
    for name, _ in jobs:
        if name == "die":
            signal.raise_signal(signal.SIGKILL)
        if name == "hang":
            time.sleep(60)
    return describe_many(jobs)


class MisbehavingPool(DecodePool):
    describe_many = staticmethod(describe_or_misbehave)


@pytest.fixture(scope="module")
def batch_pool(blob_root: Path) -> Iterator[DecodePool]:
    yield from running_pool(MisbehavingPool, blob_root)


def decode_together(pool: DecodePool, store: BlobStore,
                    files: list[tuple[str, bytes]]) -> tuple[list, list[list[str]]]:
    """Decodes the files at once (so that they queue up and share tasks); returns each one's
    result or TaskFailed, and the names of the jobs each task was given."""
    jobs = []
    for name, data in files:
        key = f"items/test/{time.monotonic_ns()}"
        store.put_bytes(key, data)
        jobs.append(DecodeJob(name=name, blob_key=key, size=len(data),
                              thumbnail_key_stem=f"thumbnails/b/{key[-10:]}"))
    batches: list[list[str]] = []
    schedule = pool._schedule

    def recording_schedule(batch) -> None:
        batches.append([pending.job.name for pending in batch])
        schedule(batch)

    async def all_of_them() -> list:
        return await asyncio.gather(*(pool.decode(job) for job in jobs), return_exceptions=True)

    pool._schedule = recording_schedule  # type: ignore[method-assign]
    try:
        return asyncio.run(all_of_them()), batches
    finally:
        del pool._schedule


def test_small_files_share_tasks_and_each_gets_its_thumbnail(batch_pool: DecodePool,
                                                             store: BlobStore) -> None:
    files = [(f"photo{i}.jpg", encode(gradient(640 + i, 480), "JPEG")) for i in range(30)]
    results, batches = decode_together(batch_pool, store, files)
    assert max(len(batch) for batch in batches) > 1
    assert sorted(name for batch in batches for name in batch) == sorted(n for n, _ in files)
    for (name, _), result in zip(files, results, strict=True):
        assert isinstance(result, DecodeResult), result
        assert result.error is None and result.system["name"] == name
        assert result.system["width"] == 640 + int(name[5:-4])
        with store.local_path(result.thumbnail_key) as path:
            assert Image.open(path).width == 256


def test_a_bad_file_in_a_batch_fails_alone(batch_pool: DecodePool, store: BlobStore) -> None:
    files = [(f"photo{i}.jpg", encode(gradient(640, 480), "JPEG")) for i in range(12)]
    files[6] = ("bomb.png", png_declaring(30_000, 30_000))
    files[8] = ("truncated.jpg", truncated_jpeg())
    results, _ = decode_together(batch_pool, store, files)
    by_name = dict(zip((name for name, _ in files), results, strict=True))
    assert "out of memory" in by_name.pop("bomb.png").error
    assert "truncated" in by_name.pop("truncated.jpg").error
    assert all(isinstance(r, DecodeResult) and r.error is None and r.thumbnail_key
               for r in by_name.values()), by_name


@pytest.mark.parametrize(("culprit", "reason"), [("die", "killed"), ("hang", "timed out")])
def test_a_batch_whose_process_fails_is_retried_one_by_one(
        batch_pool: DecodePool, store: BlobStore, culprit: str, reason: str) -> None:
    files = [(f"photo{i}.jpg", encode(gradient(640, 480), "JPEG")) for i in range(12)]
    files[5] = (culprit, encode(gradient(640, 480), "JPEG"))
    results, batches = decode_together(batch_pool, store, files)
    assert any(culprit in batch and len(batch) > 1 for batch in batches), batches
    assert [culprit] in batches  # tried again alone
    by_name = dict(zip((name for name, _ in files), results, strict=True))
    failure = by_name.pop(culprit)
    assert isinstance(failure, TaskFailed) and reason in failure.reason
    assert all(isinstance(r, DecodeResult) and r.error is None and r.thumbnail_key
               for r in by_name.values()), by_name
    assert_pool_still_works(batch_pool, store)


def test_a_missing_blob_in_a_batch_is_reported_alone(batch_pool: DecodePool,
                                                     store: BlobStore) -> None:
    files = [(f"photo{i}.jpg", encode(gradient(640, 480), "JPEG")) for i in range(10)]
    results, _ = decode_together(batch_pool, store, files[:4])
    jobs = [DecodeJob(name=name, blob_key=f"items/test/{time.monotonic_ns()}-{name}", size=100,
                      thumbnail_key_stem=f"thumbnails/b/{name}") for name, _ in files[4:]]
    for job, (_, data) in zip(jobs[1:], files[5:], strict=True):
        store.put_bytes(job.blob_key, data)  # all but the first exist

    async def all_of_them() -> list:
        return await asyncio.gather(*(batch_pool.decode(job) for job in jobs),
                                    return_exceptions=True)

    gone, *others = asyncio.run(all_of_them())
    assert isinstance(gone, TaskFailed) and gone.blob_missing
    assert all(isinstance(r, DecodeResult) and r.thumbnail_key for r in results + others)


def test_cancelled_jobs_leave_the_others_alone(batch_pool: DecodePool, store: BlobStore) -> None:
    data = encode(gradient(640, 480), "JPEG")
    jobs = []
    for i in range(20):
        key = f"items/test/{time.monotonic_ns()}"
        store.put_bytes(key, data)
        jobs.append(DecodeJob(name=f"p{i}.jpg", blob_key=key, size=len(data),
                              thumbnail_key_stem=f"thumbnails/c/{key[-10:]}"))

    async def cancel_half() -> list:
        tasks = [asyncio.create_task(batch_pool.decode(job)) for job in jobs]
        await asyncio.sleep(0)
        for task in tasks[1::2]:
            task.cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(cancel_half())
    for i, result in enumerate(results):
        if i % 2:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert isinstance(result, DecodeResult) and result.thumbnail_key, result
    assert_pool_still_works(batch_pool, store)


def test_thumbnails_queued_when_the_writer_stops_are_cancelled_not_failed(
        tmp_path: Path) -> None:
    class SlowStore(FsBlobStore):
        def put_many(self, objects):
            time.sleep(0.3)
            return super().put_many(objects)

    writer = ThumbnailWriter(SlowStore(tmp_path), threads=1)
    first = writer.submit_many([("thumbnails/aa/1.jpg", b"1", "image/jpeg")])
    queued = writer.submit_many([("thumbnails/aa/2.jpg", b"2", "image/jpeg")])
    time.sleep(0.1)  # the first group is being stored
    writer.shutdown(wait=False)
    assert first[0].result(timeout=5) is None
    assert queued[0].cancelled()


def test_loop_relay_settles_a_batch_in_one_wake_up() -> None:
    # Futures completed together in another thread reach the loop in one wake-up, each with
    # its own outcome; a cancelled waiter cancels its source (so its job is skipped).
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        wake_ups = 0
        call_soon_threadsafe = loop.call_soon_threadsafe

        def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal wake_ups
            wake_ups += 1
            return call_soon_threadsafe(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        relay = _LoopRelay(loop)
        sources: list[Future[int]] = [Future() for _ in range(3)]
        waiting = [relay.watch(source) for source in sources]

        def complete() -> None:
            sources[0].set_result(1)
            sources[1].set_exception(ValueError("bad"))
            sources[2].cancel()

        thread = threading.Thread(target=complete)
        thread.start()
        thread.join()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert results[0] == 1
        assert isinstance(results[1], ValueError)
        assert isinstance(results[2], asyncio.CancelledError)
        assert wake_ups == 1

        source: Future[int] = Future()
        waiter = relay.watch(source)
        waiter.cancel()
        await asyncio.sleep(0)
        assert source.cancelled()

    asyncio.run(scenario())
