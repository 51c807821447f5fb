"""Resumable upload sessions in the S3 store: one multipart upload per session, driven with
the minio SDK's multipart calls directly (its public put_object aborts the multipart upload
on any error, which would throw away what a resume needs).

Persisted bytes are the bytes in completed parts, and ListParts is their source of truth, so
a restarted service (or another replica) finds them without any local state. Parts are
`part_size` bytes; a stream that stops early also sends its buffered tail as a part when it
reaches S3's 5 MiB minimum, and drops a smaller one (the client resends it). Session records
are small JSON objects under `upload-sessions/`, beside the data every replica shares.
"""

from __future__ import annotations

from collections.abc import Iterator

from minio.datatypes import Part
from minio.error import S3Error

from corral.errors import NotFound
from services.blobstore.keys import check_key
from services.blobstore.s3 import (
    DEFAULT_CONTENT_TYPE,
    MIN_PART_SIZE,
    RECORD_PREFIX,
    S3BlobStore,
    _is_missing,
)
from services.blobstore.sessions import DataState, ResumableWriter, SessionStorage

_NO_UPLOAD = "NoSuchUpload"


class S3ResumableWriter(ResumableWriter):
    def __init__(self, store: S3BlobStore, key: str, multipart_id: str,
                 parts: list[Part]) -> None:
        self._store, self._key, self._multipart_id = store, key, multipart_id
        self._parts = parts
        self._persisted = sum(part.size or 0 for part in parts)
        self._buffer = bytearray()

    @property
    def persisted_size(self) -> int:
        return self._persisted

    @property
    def size(self) -> int:
        return self._persisted + len(self._buffer)

    def write(self, data: bytes) -> None:
        part_size = self._store.part_size
        view = memoryview(data)
        while view:
            room = part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == part_size:
                self._send_part()

    def _send_part(self) -> None:
        number = len(self._parts) + 1
        data = bytes(self._buffer)
        etag = self._store.client._upload_part(
            self._store.bucket, self._key, data, None, self._multipart_id, number)
        self._parts.append(Part(number, etag, size=len(data)))
        self._persisted += len(data)
        self._buffer = bytearray()

    def persist(self) -> int:
        if len(self._buffer) >= MIN_PART_SIZE:
            self._send_part()
        return self._persisted

    def commit(self) -> None:
        if self._buffer or not self._parts:  # the last part may be small (or empty)
            self._send_part()
        self._store.client._complete_multipart_upload(
            self._store.bucket, self._key, self._multipart_id, self._parts)

    def abort(self) -> None:
        self._buffer = bytearray()
        abort_multipart(self._store, self._key, self._multipart_id)

    def close(self) -> None:
        self._buffer = bytearray()


def abort_multipart(store: S3BlobStore, key: str, multipart_id: str) -> None:
    try:
        store.client._abort_multipart_upload(store.bucket, key, multipart_id)
    except S3Error as exc:
        if exc.code != _NO_UPLOAD:
            raise


class S3SessionStorage(SessionStorage):
    def __init__(self, store: S3BlobStore) -> None:
        self._store = store

    @staticmethod
    def _record_key(upload_id: str) -> str:
        return check_key(f"{RECORD_PREFIX}{upload_id}.json")

    def save_record(self, upload_id: str, record: bytes) -> None:
        self._store.put_bytes(self._record_key(upload_id), record, "application/json")

    def load_record(self, upload_id: str) -> bytes | None:
        try:
            return b"".join(self._store.iter_chunks(self._record_key(upload_id)))
        except NotFound:
            return None

    def delete_record(self, upload_id: str) -> None:
        self._store.delete(self._record_key(upload_id))

    def record_ids(self) -> Iterator[str]:
        for obj in self._store.client.list_objects(self._store.bucket, prefix=RECORD_PREFIX):
            name = obj.object_name or ""
            if name.endswith(".json"):
                yield name[len(RECORD_PREFIX):-len(".json")]

    def create_data(self, upload_id: str, key: str) -> DataState:
        multipart_id = self._store.client._create_multipart_upload(
            self._store.bucket, check_key(key), {"Content-Type": DEFAULT_CONTENT_TYPE})
        return {"multipart_upload_id": multipart_id}

    def open_writer(self, upload_id: str, key: str, state: DataState,
                    persist_every: int) -> S3ResumableWriter:
        multipart_id = state["multipart_upload_id"]
        return S3ResumableWriter(self._store, key, multipart_id,
                                 self._persisted_parts(upload_id, key, multipart_id))

    def _persisted_parts(self, upload_id: str, key: str, multipart_id: str) -> list[Part]:
        """Parts 1..n without a gap (a part after a gap is overwritten by the next write)."""
        parts: list[Part] = []
        marker: str | None = None
        while True:
            try:
                page = self._store.client._list_parts(
                    self._store.bucket, key, multipart_id, part_number_marker=marker)
            except S3Error as exc:
                if exc.code == _NO_UPLOAD or _is_missing(exc):
                    raise NotFound(f"the data of upload {upload_id} is gone") from None
                raise
            parts.extend(page.parts)
            if not page.is_truncated:
                break
            marker = page.next_part_number_marker
        contiguous: list[Part] = []
        for part in sorted(parts, key=lambda p: p.part_number):
            if part.part_number != len(contiguous) + 1:
                break
            contiguous.append(part)
        return contiguous

    def persisted_size(self, upload_id: str, key: str, state: DataState) -> int:
        parts = self._persisted_parts(upload_id, key, state["multipart_upload_id"])
        return sum(part.size or 0 for part in parts)

    def discard_data(self, upload_id: str, key: str, state: DataState) -> None:
        abort_multipart(self._store, key, state["multipart_upload_id"])


