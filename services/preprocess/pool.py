"""A pool of decoding processes where one bad task costs one task, never the pool.

pebble's ProcessPool gives each task its own timeout, kills the process of a task that runs
over, and replaces any process that dies (crash, SIGKILL, the kernel's OOM killer). Processes
come from a forkserver: forking the service itself is unsafe once gRPC threads run.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from pebble import ProcessExpired, ProcessPool

from corral.errors import CorralError, NotFound
from services.blobstore.base import BlobStore
from services.fetch import FetchPolicy
from services.preprocess import decoding
from services.preprocess.decoding import DecodeJob, DecodeLimits, DecodeResult

log = logging.getLogger("corral.preprocess.pool")

T = TypeVar("T")

# A recycled process returns whatever a decoder leaked.
TASKS_PER_PROCESS = 500
WRITER_THREADS = 8


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


class DecodePool:
    def __init__(self, processes: int, store_factory: Callable[[], BlobStore],
                 limits: DecodeLimits, task_timeout: float,
                 fetch_policy: FetchPolicy | None = None) -> None:
        self.processes = processes
        self._fetch_policy = fetch_policy
        self.limits, self.task_timeout = limits, task_timeout
        self._store_factory = store_factory
        self._pool = self._new_pool()
        # Thumbnails are written here, not in the pool processes: a durable write mostly waits
        # for fsync, and concurrent fsyncs share the journal's commits.
        self._store = store_factory()
        self._writers = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="thumbnail-writer")

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
        else:
            described = await self.run(decoding.describe, job.name, job.blob_key)
        thumbnail = described.thumbnail
        if thumbnail is None:
            return DecodeResult(described.system, None, described.error)
        key = f"{job.thumbnail_key_stem}.{thumbnail.extension}"
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writers, self._store.put_bytes, key,
                                       thumbnail.data, thumbnail.mimetype)
        except (CorralError, OSError) as exc:
            raise TaskFailed(f"blob store: storing the thumbnail: {exc}",
                             retryable=True) from None
        described.system["thumbnail"]["key"] = key
        return DecodeResult(described.system, key, described.error)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Runs `function(*args)` in a pool process; raises TaskFailed when it cannot."""
        future = self._pool.schedule(function, args=args, timeout=self.task_timeout)
        try:
            return await asyncio.wrap_future(future)
        except FutureTimeout:
            raise TaskFailed(f"timed out after {self.task_timeout:g} s") from None
        except ProcessExpired as exc:
            raise TaskFailed(_death_reason(exc), retryable=True) from None
        except BrokenProcessPool as exc:
            # pebble gives up when new processes keep dying at start; start over.
            log.error("decoding pool broke; restarting it", extra={"error": str(exc)})
            self._pool.stop()
            self._pool = self._new_pool()
            raise TaskFailed(f"decoding pool broke: {exc}", retryable=True) from None
        except Exception as exc:
            raise _failure(exc, self.limits.memory_limit_mb) from None

    def stop(self) -> None:
        """Kills the processes at once; tasks still running fail (their items stay unacked)."""
        self._pool.stop()
        self._pool.join(timeout=5)
        self._writers.shutdown(wait=False, cancel_futures=True)

    def close(self, timeout: float) -> None:
        """Lets running tasks finish within `timeout`, then kills what is left."""
        self._pool.close()
        try:
            self._pool.join(timeout=timeout)
        except TimeoutError:
            self.stop()
        self._writers.shutdown(wait=True)
