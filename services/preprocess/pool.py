"""A pool of decoding processes where one bad task costs one task, never the pool.

pebble's ProcessPool gives each task its own timeout, kills the process of a task that runs
over, and replaces any process that dies (crash, SIGKILL, the kernel's OOM killer). Processes
come from a forkserver: forking the service itself is unsafe once gRPC threads run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import multiprocessing
import signal
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, InvalidStateError, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from pebble import ProcessExpired, ProcessPool

from corral.errors import CorralError, NotFound
from services.blobstore.base import BlobStore
from services.fetch import FetchPolicy
from services.preprocess import decoding
from services.preprocess.decoding import DecodeJob, DecodeLimits, DecodeResult, Described
from services.preprocess.thumbnails import Thumbnail

log = logging.getLogger("corral.preprocess.pool")

T = TypeVar("T")

# A recycled process returns whatever a decoder leaked.
TASKS_PER_PROCESS = 500
# Jobs per task (see DecodePool), and the largest file that shares a task.
MAX_BATCH = 8
BATCH_MAX_BYTES = 4 * 1024 * 1024
# Thumbnails are stored in groups (see ThumbnailWriter): while groups are being made durable,
# the next ones gather. A group's fsyncs run one after the other, so several groups at once
# keep fsyncs in flight together where the disk is slow to flush (concurrent ones share
# journal commits and cache flushes).
WRITER_THREADS = 4
MAX_WRITE_GROUP = 16


class TaskFailed(Exception):
    """A task produced no result. `retryable`: another try may succeed (the process died,
    the blob store failed); `blob_missing`: the blob is gone (likely deleted meanwhile)."""

    def __init__(self, reason: str, *, retryable: bool = False, blob_missing: bool = False):
        super().__init__(reason)
        self.reason, self.retryable, self.blob_missing = reason, retryable, blob_missing


def _failure(exc: Exception, memory_limit_mb: int) -> TaskFailed:
    """What the exception a task raised in its process means."""
    if isinstance(exc, decoding.LinkFailed):
        return TaskFailed(f"link: {exc.message}", retryable=exc.retryable)
    if isinstance(exc, MemoryError):
        return TaskFailed(f"out of memory (limit {memory_limit_mb} MiB)")
    if isinstance(exc, NotFound):
        return TaskFailed(f"blob store: {exc.message}", retryable=True, blob_missing=True)
    if isinstance(exc, CorralError):
        return TaskFailed(f"blob store: {exc.message}", retryable=True)
    if isinstance(exc, OSError):  # reading or writing the blob store
        return TaskFailed(f"blob store: {exc}", retryable=True)
    return TaskFailed(f"{type(exc).__name__}: {exc}")


def _death_reason(exc: ProcessExpired) -> str:
    code = exc.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"decoding process was killed ({name}; out of memory or crashed)"
    return f"decoding process exited with code {code}"


class ThumbnailWriter:
    """Group commit for thumbnails. Per thumbnail, a durable write is a temp file, a fsync,
    a rename and a folder fsync; done one by one from many threads it cost the service more
    CPU in thread hand-offs and system calls than decoding the image did. Instead, the
    thumbnails of a decoded batch, and any that arrive while a group is being stored, are
    stored together by BlobStore.put_many, which shares the folder fsyncs. Nobody is told a
    thumbnail is stored before it is durable."""

    def __init__(self, store: BlobStore, threads: int = WRITER_THREADS,
                 max_group: int = MAX_WRITE_GROUP) -> None:
        self._store, self._threads, self._max_group = store, threads, max_group
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="thumbnail-writer")
        self._lock = threading.Lock()
        self._pending: collections.deque[tuple[str, bytes, str, Future[None]]] = (
            collections.deque())
        self._running = 0  # threads draining the queue

    def submit_many(self, objects: list[tuple[str, bytes, str]]) -> list[Future[None]]:
        """Queues `(key, data, mimetype)` objects; each future completes once its object is
        durable, or with what kept it from being stored. Thread-safe."""
        futures: list[Future[None]] = [Future() for _ in objects]
        with self._lock:
            self._pending.extend((key, data, mimetype, future) for (key, data, mimetype), future
                                 in zip(objects, futures, strict=True))
            start = self._running < self._threads
            if start:
                self._running += 1
        if start:
            try:
                self._executor.submit(self._drain)
            except RuntimeError as exc:  # shut down
                with self._lock:
                    self._running -= 1
                for future in futures:
                    _settle(future, exception=exc)
        return futures

    def _drain(self) -> None:
        while True:
            with self._lock:
                count = min(len(self._pending), self._max_group)
                group = [self._pending.popleft() for _ in range(count)]
                if not group:
                    self._running -= 1
                    return
            try:
                results = self._store.put_many([(key, data, mimetype)
                                                for key, data, mimetype, _ in group])
            except Exception as exc:  # noqa: BLE001 - every thumbnail of the group failed
                results = [exc] * len(group)
            for (_, _, _, future), error in zip(group, results, strict=True):
                _settle(future, exception=error)

    def shutdown(self, wait: bool) -> None:
        """Stores what is queued first (`wait`), or cancels it: its items stay unacknowledged
        and come back, rather than fail."""
        if not wait:
            with self._lock:
                queued, self._pending = list(self._pending), collections.deque()
            for _, _, _, future in queued:
                future.cancel()
        self._executor.shutdown(wait=wait, cancel_futures=not wait)


class _LoopRelay:
    """Hands the outcomes of concurrent futures to asyncio futures of one event loop, all
    that complete before the loop gets to them in one wake-up. asyncio.wrap_future wakes the
    loop once per future (a write to its self-pipe, a loop iteration, a callback chain); a
    batch's items are stored and settled together, so here they cost the loop one."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._ready: list[tuple[Future[Any], asyncio.Future[Any]]] = []

    def watch(self, source: Future[T]) -> asyncio.Future[T]:
        """An asyncio future with `source`'s outcome; cancelling it cancels `source` (which
        then skips its decoding if it has not started), like asyncio.wrap_future."""
        target: asyncio.Future[T] = self._loop.create_future()
        target.add_done_callback(functools.partial(_cancel_source, source))
        source.add_done_callback(functools.partial(self._post, target))
        return target

    def _post(self, target: asyncio.Future[Any], source: Future[Any]) -> None:
        """Runs in whichever thread completed `source`."""
        with self._lock:
            self._ready.append((source, target))
            wake = len(self._ready) == 1  # else a wake-up is already on its way
        if wake:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for source, target in ready:
            if target.done():
                continue
            if source.cancelled():
                target.cancel()
            elif (error := source.exception()) is not None:
                target.set_exception(error)
            else:
                target.set_result(source.result())


def _cancel_source(source: Future[Any], target: asyncio.Future[Any]) -> None:
    if target.cancelled():
        source.cancel()


@dataclass
class _Pending:
    job: DecodeJob
    future: Future[DecodeResult]
    # Retried in a task of its own after its batch failed as a whole.
    alone: bool = False


class DecodePool:
    """Blob jobs of small files are described several to a task (decoding.describe_many):
    one round trip through pebble (pickling, pipes and three of its threads each way) then
    serves a batch, and their thumbnails are stored as one group. Batches form only under
    load: at most `processes` tasks are out at once, and jobs that arrive meanwhile wait for
    the next free process, so a lone job still goes at once.

    Isolation is per item, as with one job per task: an item's exception comes back in its
    place; a batch whose process dies or runs over the task timeout is run again one job per
    task, so only the culprit fails (after one more timeout at worst) and its batch-mates
    succeed."""

    # What a pool process runs for a batch (a seam for tests that need one to misbehave).
    describe_many: Callable[[list[tuple[str, str]]], list[Described | Exception]] = (
        staticmethod(decoding.describe_many))

    def __init__(self, processes: int, store_factory: Callable[[], BlobStore],
                 limits: DecodeLimits, task_timeout: float,
                 fetch_policy: FetchPolicy | None = None) -> None:
        self.processes = processes
        self._fetch_policy = fetch_policy
        self.limits, self.task_timeout = limits, task_timeout
        self._store_factory = store_factory
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self._queue: collections.deque[_Pending] = collections.deque()
        self._outstanding = 0  # batch tasks scheduled and not finished
        # No task waits for a process: jobs that arrive while every process is busy wait
        # here instead, and go as one batch to the next process that frees up.
        self._max_outstanding = processes
        # Thumbnails are written here, not in the pool processes: a durable write mostly waits
        # for fsync, and thumbnails stored together share the folder fsyncs.
        self._writer = ThumbnailWriter(store_factory())
        self._relays: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopRelay] = (
            weakref.WeakKeyDictionary())

    def _new_pool(self) -> ProcessPool:
        context = multiprocessing.get_context("forkserver")
        # Imported once in the forkserver, so each new process starts in milliseconds.
        context.set_forkserver_preload(["services.preprocess.decoding"])
        return ProcessPool(max_workers=self.processes, max_tasks=TASKS_PER_PROCESS,
                           initializer=decoding.init_process,
                           initargs=(self._store_factory, self.limits, self._fetch_policy),
                           context=context)

    async def decode(self, job: DecodeJob) -> DecodeResult:
        """Describes the blob in a pool process, then stores its thumbnail from a thread of
        this process; raises TaskFailed when either fails."""
        if job.link_url:
            described = await self.run(decoding.describe_link, job.name, job.link_url,
                                       job.link_mimetype)
            return await self._store_thumbnail(job, described)
        if job.size is None or job.size > BATCH_MAX_BYTES:
            # Decoding a large file dwarfs a round trip; alone, it cannot make a batch run
            # over the timeout either.
            described = await self.run(decoding.describe, job.name, job.blob_key)
            return await self._store_thumbnail(job, described)
        pending = _Pending(job, Future())
        waiting = self._relay().watch(pending.future)
        self._enqueue([pending])
        return await waiting

    def _relay(self) -> _LoopRelay:
        loop = asyncio.get_running_loop()
        with self._lock:
            relay = self._relays.get(loop)
            if relay is None:
                relay = self._relays[loop] = _LoopRelay(loop)
        return relay

    async def _store_thumbnail(self, job: DecodeJob, described: Described) -> DecodeResult:
        if described.thumbnail is None:
            return DecodeResult(described.system, None, described.error)
        key = _thumbnail_key(job, described.thumbnail)
        [stored] = self._writer.submit_many([(key, described.thumbnail.data,
                                              described.thumbnail.mimetype)])
        # Shielded: a cancelled caller must not cancel a write others share (its thumbnail
        # is named after its content, so storing it anyway is harmless).
        try:
            await asyncio.shield(asyncio.wrap_future(stored))
        except (CorralError, OSError) as exc:
            raise _store_failure(exc) from None
        return _stored_result(described, key)

    def _enqueue(self, items: list[_Pending], front: bool = False) -> None:
        with self._lock:
            if front:
                self._queue.extendleft(reversed(items))
            else:
                self._queue.extend(items)
            batches = self._take_batches()
        for batch in batches:
            self._schedule(batch)

    def _take_batches(self) -> list[list[_Pending]]:
        """Called with the lock held: the batches to schedule now."""
        batches = []
        while self._queue and self._outstanding < self._max_outstanding:
            batch: list[_Pending] = []
            while self._queue and len(batch) < MAX_BATCH:
                head = self._queue[0]
                if head.future.cancelled():  # its caller gave up: nothing to decode
                    self._queue.popleft()
                    continue
                if head.alone and batch:
                    break
                batch.append(self._queue.popleft())
                if head.alone:
                    break
            if batch:
                batches.append(batch)
                self._outstanding += 1
        return batches

    def _schedule(self, batch: list[_Pending]) -> None:
        pool = self._pool
        try:
            future = pool.schedule(self.describe_many,
                                   args=([(p.job.name, p.job.blob_key) for p in batch],),
                                   timeout=self.task_timeout)
        except Exception as exc:  # noqa: BLE001 - the pool is closed or broken
            self._batch_done(batch, pool, None, exc)
            return
        future.add_done_callback(functools.partial(self._batch_done, batch, pool))

    def _batch_done(self, batch: list[_Pending], pool: ProcessPool,
                    future: Future[list[Described | Exception]] | None,
                    error: BaseException | None = None) -> None:
        """Runs in a pebble thread (or wherever the task's future completed)."""
        retry: list[_Pending] = []
        try:
            if future is not None:
                try:
                    outcomes = future.result()
                except BaseException as exc:  # noqa: BLE001 - handled below
                    error = exc
            if error is None:
                self._deliver(batch, outcomes)
            elif isinstance(error, CancelledError):  # the pool was stopped
                for pending in batch:
                    pending.future.cancel()
            elif isinstance(error, FutureTimeout | ProcessExpired) and len(batch) > 1:
                # One of them is to blame: each goes again alone, so only it fails.
                log.warning("decoding batch failed; retrying its items one by one",
                            extra={"items": len(batch), "error": str(error)})
                for pending in batch:
                    pending.alone = True
                retry = batch
            else:
                failure = self._task_failure(error, pool)
                for pending in batch:
                    _settle(pending.future, exception=failure)
        finally:
            with self._lock:
                self._outstanding -= 1
            self._enqueue(retry, front=True)

    def _deliver(self, batch: list[_Pending], outcomes: list[Described | Exception]) -> None:
        writes: list[tuple[_Pending, Described, str]] = []
        objects: list[tuple[str, bytes, str]] = []
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                _settle(pending.future,
                        exception=_failure(outcome, self.limits.memory_limit_mb))
            elif outcome.thumbnail is None:
                _settle(pending.future, DecodeResult(outcome.system, None, outcome.error))
            else:
                key = _thumbnail_key(pending.job, outcome.thumbnail)
                writes.append((pending, outcome, key))
                objects.append((key, outcome.thumbnail.data, outcome.thumbnail.mimetype))
        if not writes:
            return
        for (pending, described, key), future in zip(writes, self._writer.submit_many(objects),
                                                     strict=True):
            future.add_done_callback(functools.partial(_on_stored, pending, described, key))

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Runs `function(*args)` in a pool process; raises TaskFailed when it cannot."""
        pool = self._pool
        future = pool.schedule(function, args=args, timeout=self.task_timeout)
        try:
            return await asyncio.wrap_future(future)
        except Exception as exc:
            raise self._task_failure(exc, pool) from None

    def _task_failure(self, exc: BaseException, pool: ProcessPool) -> TaskFailed:
        if isinstance(exc, FutureTimeout):
            return TaskFailed(f"timed out after {self.task_timeout:g} s")
        if isinstance(exc, ProcessExpired):
            return TaskFailed(_death_reason(exc), retryable=True)
        if isinstance(exc, BrokenProcessPool):
            # pebble gives up when new processes keep dying at start; start over (once, if
            # several tasks of the broken pool fail at once).
            with self._lock:
                if self._pool is pool:
                    log.error("decoding pool broke; restarting it", extra={"error": str(exc)})
                    pool.stop()
                    self._pool = self._new_pool()
            return TaskFailed(f"decoding pool broke: {exc}", retryable=True)
        if isinstance(exc, Exception):
            return _failure(exc, self.limits.memory_limit_mb)
        raise exc

    def stop(self) -> None:
        """Kills the processes at once; tasks still running fail (their items stay unacked)."""
        with self._lock:
            queued, self._queue = list(self._queue), collections.deque()
        for pending in queued:
            pending.future.cancel()
        self._pool.stop()
        self._pool.join(timeout=5)
        self._writer.shutdown(wait=False)

    def close(self, timeout: float) -> None:
        """Lets running tasks finish within `timeout`, then kills what is left."""
        self._pool.close()
        try:
            self._pool.join(timeout=timeout)
        except TimeoutError:
            self.stop()
        self._writer.shutdown(wait=True)


def _thumbnail_key(job: DecodeJob, thumbnail: Thumbnail) -> str:
    return f"{job.thumbnail_key_stem}.{thumbnail.extension}"


def _store_failure(exc: Exception) -> TaskFailed:
    return TaskFailed(f"blob store: storing the thumbnail: {exc}", retryable=True)


def _stored_result(described: Described, key: str) -> DecodeResult:
    described.system["thumbnail"]["key"] = key
    return DecodeResult(described.system, key, described.error)


def _on_stored(pending: _Pending, described: Described, key: str,
               stored: Future[None]) -> None:
    if stored.cancelled():  # the writer was shut down
        pending.future.cancel()
        return
    error = stored.exception()
    if error is None:
        _settle(pending.future, _stored_result(described, key))
    elif isinstance(error, CorralError | OSError):
        _settle(pending.future, exception=_store_failure(error))
    else:
        _settle(pending.future, exception=error)


def _settle(future: Future[Any], result: Any = None,
            exception: BaseException | None = None) -> None:
    """Completes `future` unless its caller cancelled it meanwhile."""
    with contextlib.suppress(InvalidStateError):
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
