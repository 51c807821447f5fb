"""A blob store in an S3-compatible bucket (MinIO at scale), through the `minio` SDK.

Writers hold at most one part in memory: an object smaller than a part is one PutObject, a
larger one is a multipart upload driven part by part, completed on commit and aborted
otherwise, so nothing is ever visible at a key before commit.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from minio import Minio
from minio.datatypes import Part
from minio.error import S3Error

from corral.errors import NotFound, OutOfRange
from services.blobstore.base import BlobInfo, BlobStore, BlobWriter, UnfinishedWrite
from services.blobstore.keys import check_key

if TYPE_CHECKING:
    from services.blobstore.s3_sessions import S3SessionStorage

MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# Where resumable upload session records live (s3_sessions.py); not blobs, so never listed.
RECORD_PREFIX = "upload-sessions/"
_MISSING_CODES = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}


def _is_missing(exc: S3Error) -> bool:
    return exc.code in _MISSING_CODES


def _timestamp(modified: datetime | None) -> float:
    # A store that omits the time makes the object look new, so nothing old is assumed.
    return modified.timestamp() if modified is not None else time.time()


class S3BlobWriter(BlobWriter):
    def __init__(self, client: Minio, bucket: str, key: str, part_size: int) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._part_size = part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Part] = []
        self._closed = False

    def write(self, data: bytes) -> None:
        if self._closed:
            raise ValueError("blob writer is closed")
        view = memoryview(data)
        while view:
            # A full buffer is sent only once more data arrives, so an object of exactly one
            # part stays a single PutObject.
            if len(self._buffer) == self._part_size:
                self._send_part()
            room = self._part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]

    def _send_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._client._create_multipart_upload(
                self._bucket, self._key, {"Content-Type": DEFAULT_CONTENT_TYPE})
        number = len(self._parts) + 1
        etag = self._client._upload_part(
            self._bucket, self._key, bytes(self._buffer), None, self._upload_id, number)
        self._parts.append(Part(number, etag))
        self._buffer = bytearray()

    def commit(self) -> None:
        if self._closed:
            raise ValueError("blob writer is closed")
        try:
            if self._upload_id is None:
                size = len(self._buffer)
                self._client.put_object(
                    self._bucket, self._key, io.BytesIO(self._buffer), size,
                    content_type=DEFAULT_CONTENT_TYPE,
                    part_size=max(size, MIN_PART_SIZE, self._part_size))
            else:
                if self._buffer:
                    self._send_part()
                self._client._complete_multipart_upload(
                    self._bucket, self._key, self._upload_id, self._parts)
                self._upload_id = None
            self._closed = True
            self._buffer = bytearray()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self._closed = True
        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            with contextlib.suppress(S3Error):
                self._client._abort_multipart_upload(self._bucket, self._key, upload_id)


class S3BlobStore(BlobStore):
    def __init__(self, client: Minio, bucket: str, part_size: int = 16 * 1024 * 1024,
                 create_bucket: bool = True) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"CORRAL_S3_PART_SIZE must be at least {MIN_PART_SIZE} bytes, "
                             f"got {part_size}")
        self.client, self.bucket, self.part_size = client, bucket, part_size
        if create_bucket:
            self._ensure_bucket()

    def _ensure_bucket(self) -> None:
        if self.client.bucket_exists(self.bucket):
            return
        try:
            self.client.make_bucket(self.bucket)
        except S3Error as exc:  # another replica created it first
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def open_writer(self, key: str) -> S3BlobWriter:
        return S3BlobWriter(self.client, self.bucket, check_key(key), self.part_size)

    def session_storage(self) -> S3SessionStorage:
        from services.blobstore.s3_sessions import S3SessionStorage

        return S3SessionStorage(self)

    def put_bytes(self, key: str, data: bytes,
                  content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        self.client.put_object(self.bucket, check_key(key), io.BytesIO(data), len(data),
                               content_type=content_type,
                               part_size=max(len(data), MIN_PART_SIZE))

    def iter_chunks(self, key: str, offset: int = 0,
                    chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        if offset < 0:
            raise OutOfRange(f"offset {offset} is negative")
        check_key(key)
        try:
            response = self.client.get_object(self.bucket, key, offset=offset)
        except S3Error as exc:
            if _is_missing(exc):
                raise NotFound(f"blob {key} not found") from None
            if exc.code == "InvalidRange":  # offset at or past the end
                self.size(key)
                return iter(())
            raise
        return self._stream(response, chunk_size)

    @staticmethod
    def _stream(response, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from response.stream(chunk_size)
        finally:
            response.close()
            response.release_conn()

    def size(self, key: str) -> int:
        try:
            return int(self.client.stat_object(self.bucket, check_key(key)).size or 0)
        except S3Error as exc:
            if _is_missing(exc):
                raise NotFound(f"blob {key} not found") from None
            raise

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except NotFound:
            return False
        return True

    def stat(self, key: str) -> BlobInfo:
        try:
            obj = self.client.stat_object(self.bucket, check_key(key))
        except S3Error as exc:
            if _is_missing(exc):
                raise NotFound(f"blob {key} not found") from None
            raise
        return BlobInfo(key, int(obj.size or 0), _timestamp(obj.last_modified))

    def list_keys(self, prefix: str) -> Iterator[BlobInfo]:
        """Completed objects only (ListObjects never shows pending multipart uploads), and
        no session records."""
        for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
            if obj.is_dir or not obj.object_name or obj.object_name.startswith(RECORD_PREFIX):
                continue
            yield BlobInfo(obj.object_name, int(obj.size or 0), _timestamp(obj.last_modified))

    def unfinished_writes(self, untouched_before: float) -> Iterator[UnfinishedWrite]:
        """Pending multipart uploads (sessions' too), each last written to when its newest
        part arrived (its start if it has none): a live upload of any size sends a part
        every part_size bytes, however long it runs. Only uploads started before
        `untouched_before` have their parts listed: a later start is young already."""
        key_marker: str | None = None
        upload_id_marker: str | None = None
        while True:
            page = self.client._list_multipart_uploads(
                self.bucket, key_marker=key_marker, upload_id_marker=upload_id_marker)
            for upload in page.uploads:
                started = _timestamp(upload.initiated_time)
                if not upload.object_name or not upload.upload_id or started >= untouched_before:
                    continue
                size, newest = self._parts_summary(upload.object_name, upload.upload_id)
                if max(started, newest) < untouched_before:
                    yield UnfinishedWrite(upload.object_name, upload.upload_id, size,
                                          max(started, newest))
            if not page.is_truncated:
                return
            key_marker, upload_id_marker = page.next_key_marker, page.next_upload_id_marker

    def _parts_summary(self, key: str, upload_id: str) -> tuple[int, float]:
        """(bytes in parts, time of the newest part or 0)."""
        size, newest = 0, 0.0
        marker: str | None = None
        while True:
            try:
                page = self.client._list_parts(self.bucket, key, upload_id,
                                               part_number_marker=marker)
            except S3Error as exc:
                if exc.code == "NoSuchUpload":  # completed or aborted meanwhile
                    return size, time.time()
                raise
            for part in page.parts:
                size += part.size or 0
                newest = max(newest, _timestamp(part.last_modified))
            if not page.is_truncated:
                return size, newest
            marker = page.next_part_number_marker

    def discard_unfinished(self, write: UnfinishedWrite) -> None:
        try:
            self.client._abort_multipart_upload(self.bucket, write.key, write.handle)
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise

    def delete(self, key: str) -> None:
        try:
            self.client.remove_object(self.bucket, check_key(key))
        except S3Error as exc:
            if not _is_missing(exc):
                raise

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        fd, name = tempfile.mkstemp(prefix="corral-blob-")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as file:
                for chunk in self.iter_chunks(key):
                    file.write(chunk)
            yield path
        finally:
            path.unlink(missing_ok=True)
