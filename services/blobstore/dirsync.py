"""Group commit for directory fsyncs.

A rename is durable only once its directory is fsynced. When many uploads commit into the
same directory at once, one fsync of that directory makes every rename that finished before
the fsync *started* durable, so they can share it instead of each paying for its own.

Each caller takes a ticket after its rename. A fsync that starts after ticket T was handed
out covers T's rename, so a caller returns as soon as a fsync started at or after its ticket
has completed (successfully: a failed fsync raises in every caller it was meant to cover, and
the next caller starts a new one). Callers that arrive while a fsync is running wait for it
and then for one more, started after their ticket; all of them share that next one.
Durability is unchanged: nobody returns before a fsync covering their rename succeeded.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _DirState:
    issued: int = 0        # tickets handed out
    synced: int = 0        # every ticket <= synced is durable
    running: bool = False  # a fsync of this directory is in progress
    error: BaseException | None = None
    error_upto: int = 0    # the tickets the failed fsync was meant to cover
    waiters: int = 0
    done: threading.Condition = field(default_factory=threading.Condition)


class DirSyncer:
    """Thread-safe; one per store. sync(path) returns once the directory's entries as they
    were when sync was called are durable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dirs: dict[str, _DirState] = {}

    def sync(self, path: Path | str) -> None:
        key = os.fspath(path)
        with self._lock:
            state = self._dirs.get(key)
            if state is None:
                state = self._dirs[key] = _DirState(done=threading.Condition(self._lock))
            state.issued += 1
            ticket = state.issued
            state.waiters += 1
            try:
                self._wait_for(state, key, ticket)
            finally:
                state.waiters -= 1
                if state.waiters == 0 and not state.running:
                    del self._dirs[key]  # keep the table small; a new state starts at 0

    def _wait_for(self, state: _DirState, key: str, ticket: int) -> None:
        """Called and returns with the lock held."""
        while state.synced < ticket:
            if state.error is not None and state.error_upto >= ticket:
                raise state.error
            if state.running:
                state.done.wait()
                continue
            state.running = True
            upto = state.issued
            self._lock.release()
            error: BaseException | None = None
            try:
                fsync_dir(key)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter it covers
                error = exc
            finally:
                self._lock.acquire()
                state.running = False
                if error is None:
                    state.synced = max(state.synced, upto)
                else:
                    state.error, state.error_upto = error, upto
                state.done.notify_all()
            if error is not None:
                raise error
