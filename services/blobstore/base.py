"""The blob store interface. Keys are server-generated ("items/<dataset>/<uuid>",
"thumbnails/<2 hex>/<item>-<uuid>.jpg"), never derived from user-supplied names."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from corral.errors import FailedPrecondition

if TYPE_CHECKING:
    from services.blobstore.sessions import SessionStorage


@dataclass(frozen=True)
class BlobInfo:
    """A committed object: its key, size in bytes and last-modified time (Unix seconds)."""
    key: str
    size: int
    modified: float


@dataclass(frozen=True)
class UnfinishedWrite:
    """Data a writer stored and neither committed nor aborted: left by a writer that died
    (killed, crashed), unless it is still being written. `key` is the key it was meant for
    ("" where the store does not know), `handle` what identifies it to the store (a temporary
    file's name, a multipart upload's id), `modified` when it was last written to."""
    key: str
    handle: str
    size: int
    modified: float


class BlobWriter(abc.ABC):
    """Receives an object's bytes in order. Nothing is visible at the key until commit();
    abort() (or any failure before commit) leaves nothing behind."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None: ...

    def write_many(self, chunks: list[bytes]) -> None:
        """Writes the chunks in order; stores may do it in fewer calls."""
        for data in chunks:
            self.write(data)

    @abc.abstractmethod
    def commit(self) -> None:
        """Makes the object durable and visible at its key."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discards everything written; safe to call more than once or after a failure."""


class BlobStore(abc.ABC):
    # Whether commit_many shares work between its writers (then it pays to commit small
    # objects in groups); a store whose commits are independent round trips keeps them apart.
    shares_commit_work = False

    @abc.abstractmethod
    def open_writer(self, key: str) -> BlobWriter: ...

    def commit_many(self, writers: Sequence[BlobWriter]) -> list[Exception | None]:
        """Commits every writer (opened by this store); each one's failure is its own, given
        in its place (a failed writer is aborted, as commit() leaves it)."""
        errors: list[Exception | None] = []
        for writer in writers:
            try:
                writer.commit()
            except Exception as exc:  # noqa: BLE001 - that writer's failure alone
                errors.append(exc)
            else:
                errors.append(None)
        return errors

    def session_storage(self) -> SessionStorage:
        """Where resumable upload sessions keep their records and unfinished data."""
        raise FailedPrecondition("this blob store does not support resumable uploads")

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes,
                  content_type: str = "application/octet-stream") -> None:
        """Writes a small object (a thumbnail) durably in one call."""

    def put_many(self, objects: list[tuple[str, bytes, str]]) -> list[Exception | None]:
        """Writes small objects `(key, data, content_type)` durably; returns, per object,
        None once it is stored or the error that kept it from being stored (one bad object
        never fails the others). Stores may share the cost of durability among them."""
        results: list[Exception | None] = []
        for key, data, content_type in objects:
            try:
                self.put_bytes(key, data, content_type)
                results.append(None)
            except Exception as exc:  # noqa: BLE001 - reported per object
                results.append(exc)
        return results

    @abc.abstractmethod
    def iter_chunks(self, key: str, offset: int = 0,
                    chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Streams the object's bytes from `offset`. Raises corral.errors.NotFound if missing."""

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """Raises corral.errors.NotFound if missing."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def stat(self, key: str) -> BlobInfo:
        """Raises corral.errors.NotFound if missing."""

    @abc.abstractmethod
    def list_keys(self, prefix: str) -> Iterator[BlobInfo]:
        """Every committed object whose key starts with `prefix`, in no particular order;
        never unfinished data (temp files, session data, pending multipart uploads)."""

    def unfinished_writes(self, untouched_before: float) -> Iterator[UnfinishedWrite]:
        """Every unfinished write last written to before `untouched_before` (Unix seconds),
        outside resumable sessions' own storage where the store keeps it apart (the S3
        store cannot: a session's multipart upload is listed too, and the caller keeps
        those a session record names)."""
        return iter(())

    def discard_unfinished(self, write: UnfinishedWrite) -> None:
        """Removes what `write` stored; gone already is not an error."""
        raise FailedPrecondition("this blob store keeps no unfinished writes")

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Removes the object; a missing key is not an error."""

    @abc.abstractmethod
    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """A readable local file with the object's bytes (the file itself for the fs store, a
        temporary download for S3), for decoders that want a path."""
