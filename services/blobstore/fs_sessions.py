"""Resumable upload sessions in the filesystem store, under `<root>/.sessions/`:

    <upload_id>.json       the session record (written by the upload service)
    <upload_id>.data       the bytes received so far
    <upload_id>.persisted  how many of them are durable (a decimal number)

The data file is fsynced before its count is replaced (write, fsync, rename, fsync folder),
so the count never claims bytes a machine crash could lose. A reopened writer truncates the
data file to the count: bytes written after the last persist are dropped, never trusted.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from corral.errors import InvalidArgument, NotFound
from services.blobstore.fs import SESSIONS_DIR_NAME, FsBlobStore, FsBlobWriter
from services.blobstore.sessions import DataState, ResumableWriter, SessionStorage

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


def write_durably(path: Path, data: bytes, store: FsBlobStore) -> None:
    """Replaces `path` with `data` so that a crash leaves the old or the new content."""
    tmp = path.with_name(f"{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    store.dir_syncer.sync(path.parent)


class FsResumableWriter(FsBlobWriter, ResumableWriter):
    def __init__(self, store: FsBlobStore, final_path: Path, fd: int, data_path: Path,
                 progress_path: Path, persisted: int, persist_every: int) -> None:
        super().__init__(store, final_path, fd, data_path, offset=persisted)
        self._progress_path = progress_path
        self._persisted = persisted
        self._persist_every = max(1, persist_every)

    @property
    def persisted_size(self) -> int:
        return self._persisted

    @property
    def size(self) -> int:
        return self._written

    def write_many(self, chunks: list[bytes]) -> None:
        super().write_many(chunks)
        if self._written - self._persisted >= self._persist_every:
            self.persist()

    def persist(self) -> int:
        if self._fd >= 0 and self._written > self._persisted:
            os.fsync(self._fd)
            write_durably(self._progress_path, str(self._written).encode(), self._store)
            self._persisted = self._written
        return self._persisted

    def commit(self) -> None:
        super().commit()
        self._progress_path.unlink(missing_ok=True)

    def abort(self) -> None:
        super().abort()
        self._progress_path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FsSessionStorage(SessionStorage):
    def __init__(self, store: FsBlobStore) -> None:
        self._store = store
        self.dir = store.root / SESSIONS_DIR_NAME
        self.dir.mkdir(exist_ok=True)

    def _path(self, upload_id: str, suffix: str) -> Path:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise InvalidArgument(f"upload_id is not a valid id: {upload_id!r}")
        return self.dir / f"{upload_id}{suffix}"

    def save_record(self, upload_id: str, record: bytes) -> None:
        write_durably(self._path(upload_id, ".json"), record, self._store)

    def load_record(self, upload_id: str) -> bytes | None:
        try:
            return self._path(upload_id, ".json").read_bytes()
        except FileNotFoundError:
            return None

    def delete_record(self, upload_id: str) -> None:
        self._path(upload_id, ".json").unlink(missing_ok=True)

    def record_ids(self) -> Iterator[str]:
        for path in self.dir.glob("*.json"):
            if _UPLOAD_ID.fullmatch(path.stem):
                yield path.stem

    def create_data(self, upload_id: str, key: str) -> DataState:
        self._store.path_for(key)  # refuse a bad key before anything exists
        fd = os.open(self._path(upload_id, ".data"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        os.close(fd)
        self._path(upload_id, ".persisted").unlink(missing_ok=True)
        self._store.dir_syncer.sync(self.dir)
        return {}

    def open_writer(self, upload_id: str, key: str, state: DataState,
                    persist_every: int) -> FsResumableWriter:
        data_path = self._path(upload_id, ".data")
        progress_path = self._path(upload_id, ".persisted")
        try:
            fd = os.open(data_path, os.O_WRONLY)
        except FileNotFoundError:
            raise NotFound(f"the data of upload {upload_id} is gone") from None
        try:
            persisted = min(self._recorded_size(progress_path), os.fstat(fd).st_size)
            os.ftruncate(fd, persisted)
            os.lseek(fd, persisted, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return FsResumableWriter(self._store, self._store.path_for(key), fd, data_path,
                                 progress_path, persisted, persist_every)

    @staticmethod
    def _recorded_size(progress_path: Path) -> int:
        try:
            return int(progress_path.read_text() or 0)
        except FileNotFoundError:
            return 0

    def persisted_size(self, upload_id: str, key: str, state: DataState) -> int:
        if not self._path(upload_id, ".data").exists():
            raise NotFound(f"the data of upload {upload_id} is gone")
        return self._recorded_size(self._path(upload_id, ".persisted"))

    def discard_data(self, upload_id: str, key: str, state: DataState) -> None:
        for suffix in (".data", ".persisted", ".persisted.tmp"):
            with contextlib.suppress(FileNotFoundError):
                self._path(upload_id, suffix).unlink()
