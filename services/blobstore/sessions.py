"""Resumable upload sessions in a blob store: where an unfinished object's bytes and its
session record live, and what "persisted" means for each store.

Bytes are persisted once they survive a crash of the upload service *and* of the machine: for
the filesystem store, bytes fsynced with their count recorded durably beside them; for S3,
bytes in completed multipart parts. A writer reopened after a restart starts exactly at the
persisted size, whatever it had received beyond it.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Any

from services.blobstore.base import BlobWriter

# Store-specific state of one session's data (JSON-serializable), kept in the session record.
DataState = dict[str, Any]


class ResumableWriter(BlobWriter):
    """A BlobWriter whose bytes outlive it until commit() or abort(): close() keeps what is
    persisted and drops the rest."""

    @property
    @abc.abstractmethod
    def persisted_size(self) -> int:
        """Bytes that survive a crash; a new writer for the session starts here."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Bytes received so far (persisted or not)."""

    @abc.abstractmethod
    def persist(self) -> int:
        """Persists as much of what was received as the store allows; returns persisted_size."""

    @abc.abstractmethod
    def close(self) -> None:
        """Releases local resources; persisted bytes stay for the next writer."""


class SessionStorage(abc.ABC):
    """One store's session records and session data. Records are small JSON documents,
    replaced whole; they live where every upload replica sharing the store can read them."""

    @abc.abstractmethod
    def save_record(self, upload_id: str, record: bytes) -> None:
        """Writes the record durably, replacing any previous one."""

    @abc.abstractmethod
    def load_record(self, upload_id: str) -> bytes | None: ...

    @abc.abstractmethod
    def delete_record(self, upload_id: str) -> None:
        """A missing record is not an error."""

    @abc.abstractmethod
    def record_ids(self) -> Iterator[str]:
        """The upload ids of every stored record."""

    @abc.abstractmethod
    def create_data(self, upload_id: str, key: str) -> DataState:
        """Prepares empty session data for the object at `key`; returns its state."""

    @abc.abstractmethod
    def open_writer(self, upload_id: str, key: str, state: DataState,
                    persist_every: int) -> ResumableWriter:
        """A writer positioned at the persisted size; it persists on its own at least every
        `persist_every` received bytes (S3: at every part). Raises corral.errors.NotFound if
        the data is gone (discarded or expired)."""

    @abc.abstractmethod
    def persisted_size(self, upload_id: str, key: str, state: DataState) -> int:
        """The persisted size, read without disturbing a writer that is open meanwhile.
        Raises corral.errors.NotFound if the data is gone."""

    @abc.abstractmethod
    def discard_data(self, upload_id: str, key: str, state: DataState) -> None:
        """Removes the session's unfinished data (temp files, a multipart upload); never the
        object at `key`. Safe to call when it is already gone."""
