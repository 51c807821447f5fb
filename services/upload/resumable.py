"""Resumable upload sessions after google.storage.v2 (StartResumableWrite, WriteObject with an
upload_id, QueryWriteStatus, CancelResumableWrite).

What must survive a restart is durable in the blob store's session storage: the session
record (spec, blob key, expiry, phase; session_records.py) and the data with its persisted
size (services/blobstore/sessions.py). This process only adds, per session, a lock (one write
stream at a time) and the sha256 state of the persisted bytes.

The whole-object sha256: hashlib's state cannot be saved, so it lives in memory while this
process writes the session. A session resumed without it (after a restart, on another
replica, or after S3 dropped a tail shorter than a part) is hashed once at finish by reading
back its committed blob, which no item references yet; a mismatch deletes it. So an
uninterrupted upload never reads its bytes twice, and an interrupted one reads them once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from google.protobuf import timestamp_pb2

from corral.catalog.v1 import resources_pb2
from corral.errors import (
    Aborted,
    AlreadyExists,
    CorralError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from services.blobstore.base import BlobStore
from services.blobstore.sessions import SessionStorage
from services.common.caller import caller_or_none
from services.upload.receiving import receive
from services.upload.registration import Registrar, blob_key_for, check_content, shielded
from services.upload.session_records import (
    COMMITTING,
    FINISHED,
    OPEN,
    SessionRecord,
    check_upload_id,
    spec_bytes,
    upload_id_for_request,
)
from services.upload.sink import HashingBlobSink, run_blocking
from services.upload.spec import (
    DEFAULT_MAX_UPLOAD_BYTES,
    UploadTooLarge,
    ValidSpec,
    validate_spec,
)

log = logging.getLogger("corral.upload")

MIB = 1024 * 1024
SKIPPED = resources_pb2.CreateOutcome.CREATE_OUTCOME_SKIPPED
_READ_BACK_CHUNK = 4 * MIB


@dataclass(frozen=True)
class SessionSettings:
    ttl_seconds: float = 24 * 3600.0
    # The fs store fsyncs at least this often; S3 persists whole parts.
    persist_bytes: int = 32 * MIB


@dataclass
class LiveSession:
    """What this process knows beyond the durable state; kept only while useful."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # sha256 state of exactly the first hashed_size bytes, which are persisted.
    hasher: hashlib._Hash | None = None
    hashed_size: int = 0
    task: asyncio.Task | None = None


def hash_blob(store: BlobStore, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in store.iter_chunks(key, chunk_size=_READ_BACK_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _not_found(upload_id: str) -> NotFound:
    return NotFound(f"upload_id {upload_id} not found: it was cancelled, expired, or "
                    "finished long ago")


def _check_visible(record: SessionRecord) -> None:
    """Another project's session answers exactly like a missing one."""
    principal = caller_or_none()
    if principal is not None and not principal.sees(record.project):
        raise _not_found(record.upload_id)


class ResumableUploads:
    def __init__(self, registrar: Registrar, write_batch_bytes: int,
                 settings: SessionSettings, clock=time.time,
                 max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> None:
        self._registrar = registrar
        self._max_bytes = max_bytes
        self._store = registrar.store
        self._batch_bytes = write_batch_bytes
        self._settings = settings
        self._clock = clock
        self._live: dict[str, LiveSession] = {}
        self._stopping = False
        self._session_storage: SessionStorage | None = None

    @property
    def _storage(self) -> SessionStorage:
        # Opened on first use: a store without sessions still serves one-call uploads.
        if self._session_storage is None:
            self._session_storage = self._store.session_storage()
        return self._session_storage

    # The RPCs

    async def start(self, request: upload_pb2.StartResumableUploadRequest,
                    ) -> upload_pb2.StartResumableUploadResponse:
        self._refuse_when_stopping()
        spec = validate_spec(request.spec, self._max_bytes)
        project = await self._registrar.check_dataset(spec.dataset_id)
        upload_id = (upload_id_for_request(spec.dataset_id, spec.request_id)
                     if spec.request_id else uuid.uuid4().hex)
        live = self._live_session(upload_id)
        try:
            async with live.lock:
                record = await self._load(upload_id) if spec.request_id else None
                if record is not None and record.expired(self._clock()):
                    await self._expire(record)
                    record = None
                if record is not None:
                    _check_visible(record)
                if record is None:
                    existing = await self._registrar.existing_item(spec)
                    if existing is not None:
                        return upload_pb2.StartResumableUploadResponse(item=existing,
                                                                       outcome=SKIPPED)
                    record = await self._create(upload_id, request.spec, spec, project)
                    live.hasher, live.hashed_size = hashlib.sha256(), 0
                elif record.spec != spec_bytes(request.spec):
                    raise AlreadyExists(f"spec.request_id {spec.request_id!r} was already used "
                                        "for a different upload")
        finally:
            self._forget_if_idle(upload_id, live)
        return upload_pb2.StartResumableUploadResponse(
            upload_id=upload_id, expire_time=timestamp_pb2.Timestamp(seconds=int(record.expires)))

    async def query(self, request: upload_pb2.QueryUploadStatusRequest,
                    ) -> upload_pb2.QueryUploadStatusResponse:
        record = await self._load_current(check_upload_id(request.upload_id))
        if record.phase == FINISHED:
            item = await self._registrar.catalog.get_item(record.item_id)
            return upload_pb2.QueryUploadStatusResponse(item=item, outcome=record.outcome)
        if record.phase == COMMITTING:
            return upload_pb2.QueryUploadStatusResponse(persisted_size=record.size)
        size = await run_blocking(self._storage.persisted_size, record.upload_id,
                                  record.blob_key, record.data_state)
        return upload_pb2.QueryUploadStatusResponse(persisted_size=size)

    async def cancel(self, request: upload_pb2.CancelResumableUploadRequest,
                     ) -> upload_pb2.CancelResumableUploadResponse:
        upload_id = check_upload_id(request.upload_id)
        # Another project's session must look absent, not "busy".
        await self._load_current(upload_id)
        live = self._lock_free_session(upload_id)
        try:
            async with live.lock:
                record = await self._load_current(upload_id)
                if record.phase != OPEN:
                    raise FailedPrecondition(f"upload {upload_id} is {record.phase}; only an "
                                             "unfinished upload can be cancelled")
                await self._discard(record)
        finally:
            self._forget_if_idle(upload_id, live)
        return upload_pb2.CancelResumableUploadResponse()

    async def write(self, first: upload_pb2.UploadItemRequest,
                    messages: AsyncIterator[upload_pb2.UploadItemRequest],
                    ) -> upload_pb2.UploadItemResponse:
        """An UploadItem stream whose first message carries an upload_id."""
        upload_id = check_upload_id(first.upload_id)
        self._refuse_when_stopping()
        # Another project's session must look absent, not "busy".
        await self._load_current(upload_id)
        live = self._lock_free_session(upload_id)
        try:
            async with live.lock:
                live.task = asyncio.current_task()
                try:
                    return await self._write_locked(upload_id, live, first, messages)
                finally:
                    live.task = None
        finally:
            self._forget_if_idle(upload_id, live)

    # Expiry and shutdown

    async def sweep(self) -> int:
        """Removes every expired session not being written here; returns how many."""
        now = self._clock()
        upload_ids = await run_blocking(lambda: list(self._storage.record_ids()))
        removed = 0
        for upload_id in upload_ids:
            live = self._live.get(upload_id)
            if live is not None and live.lock.locked():
                continue
            try:
                record = await self._load(upload_id)
                if record is not None and record.expired(now):
                    await self._expire(record)
                    removed += 1
            except Exception:
                log.warning("could not remove an expired upload session", exc_info=True,
                            extra={"upload_id": upload_id})
        return removed

    async def run_sweeper(self, interval_seconds: float) -> None:
        while True:
            try:
                removed = await self.sweep()
                if removed:
                    log.info("expired upload sessions removed", extra={"sessions": removed})
            except Exception:
                log.warning("upload session sweep failed", exc_info=True)
            await asyncio.sleep(interval_seconds)

    def stop_streams(self) -> None:
        """On shutdown: new session calls are refused, and streams in progress persist what
        they received and end with UNAVAILABLE, so clients resume elsewhere at once instead of
        holding the grace period."""
        self._stopping = True
        for live in self._live.values():
            if live.task is not None:
                live.task.cancel()

    # Writing

    async def _write_locked(self, upload_id: str, live: LiveSession,
                            first: upload_pb2.UploadItemRequest,
                            messages: AsyncIterator[upload_pb2.UploadItemRequest],
                            ) -> upload_pb2.UploadItemResponse:
        record = await self._load_current(upload_id)
        spec = validate_spec(record.spec_message(), self._max_bytes)
        if record.phase != OPEN:
            return await self._write_after_commit(record, spec, live, first)
        if first.write_offset < 0:
            raise InvalidArgument(f"write_offset must not be negative, got {first.write_offset}")
        writer = await run_blocking(self._storage.open_writer, upload_id, record.blob_key,
                                    record.data_state, self._settings.persist_bytes)
        persisted = writer.persisted_size
        if first.write_offset != persisted:
            await run_blocking(writer.close)
            raise FailedPrecondition(
                f"write_offset {first.write_offset} does not match the persisted_size "
                f"{persisted} of upload {upload_id}; resume from persisted_size")
        hasher = live.hasher if live.hashed_size == persisted else None
        if hasher is None and persisted == 0:
            hasher = hashlib.sha256()
        live.hasher = None  # valid again only once the sink pauses at a persisted size
        sink = HashingBlobSink(lambda: writer, functools.partial(self._store.delete,
                                                                 record.blob_key),
                               self._batch_bytes, hasher=hasher, start_size=persisted,
                               hash_content=hasher is not None)
        try:
            finish_sha256 = await receive(first, messages, sink, spec.declared_size,
                                          self._max_bytes)
        except UploadTooLarge:
            # Past CORRAL_UPLOAD_MAX_BYTES: the session can never finish, so nothing of it
            # may stay behind.
            with contextlib.suppress(Exception):
                await sink.close()
            await self._discard(record)
            raise
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                persisted = await self._pause(live, sink)
            task = asyncio.current_task()
            if not self._stopping or task is None:
                raise
            task.uncancel()
            raise Unavailable(f"the upload service is stopping; resume upload {upload_id} "
                              f"from persisted_size {persisted}") from None
        except BaseException:
            with contextlib.suppress(Exception):
                await self._pause(live, sink)
            raise
        if finish_sha256 is None:
            return upload_pb2.UploadItemResponse(persisted_size=await self._pause(live, sink))
        return await shielded(self._finish(record, spec, sink, finish_sha256))

    async def _pause(self, live: LiveSession, sink: HashingBlobSink) -> int:
        """Persists what the sink received (also when the call is being cancelled) and keeps
        the hash state if it covers exactly the persisted bytes."""
        persisted = await asyncio.shield(sink.pause())
        if sink.hasher is not None and sink.size == persisted:
            live.hasher, live.hashed_size = sink.hasher, persisted
        return persisted

    async def _finish(self, record: SessionRecord, spec: ValidSpec, sink: HashingBlobSink,
                      finish_sha256: str) -> upload_pb2.UploadItemResponse:
        storage = self._storage

        def verify_then_mark_committing(size: int, sha256: str | None) -> None:
            # Runs in the I/O thread just before the commit.
            check_content(spec, size, sha256, finish_sha256)
            record.phase, record.size, record.sha256 = COMMITTING, size, sha256 or ""
            storage.save_record(record.upload_id, record.to_json())

        try:
            sha256 = await sink.complete(verify_then_mark_committing)
        except BaseException:
            # Refused content, or a commit that failed halfway: nothing may become visible.
            await sink.abort()
            await self._discard_record(record)
            raise
        if sha256 is None:
            sha256 = await self._verify_committed(record, spec, finish_sha256)
        return await self._register(record, spec, sha256)

    async def _write_after_commit(self, record: SessionRecord, spec: ValidSpec,
                                  live: LiveSession, first: upload_pb2.UploadItemRequest,
                                  ) -> upload_pb2.UploadItemResponse:
        """A retried finish (no data, write_offset = the size): the first result once the
        session finished; else completes a finish that an earlier call began."""
        upload_id = record.upload_id
        if not (first.finish_write and not first.data and first.write_offset == record.size):
            raise FailedPrecondition(
                f"upload {upload_id} is {record.phase}; only finish_write without data at "
                f"write_offset {record.size} may be sent again")
        if record.phase == FINISHED:
            item = await self._registrar.catalog.get_item(record.item_id)
            return upload_pb2.UploadItemResponse(item=item, outcome=record.outcome)
        if not await run_blocking(self._store.exists, record.blob_key):
            # The earlier finish stopped before its commit: the data is still in the session.
            record.phase = OPEN
            await run_blocking(self._save, record)
            raise Aborted(f"upload {upload_id} was not committed; query its persisted_size and "
                          "resume from there")
        sha256 = record.sha256 or await self._verify_committed(record, spec,
                                                               first.sha256.lower())
        return await shielded(self._register(record, spec, sha256))

    async def _verify_committed(self, record: SessionRecord, spec: ValidSpec,
                                finish_sha256: str) -> str:
        """Hashes a committed blob whose hash state was lost, before anything refers to it."""
        sha256 = await run_blocking(hash_blob, self._store, record.blob_key)
        try:
            check_content(spec, record.size, sha256, finish_sha256)
        except CorralError:
            await self._registrar.delete_blob(record.blob_key)
            await self._discard_record(record)
            raise
        record.sha256 = sha256
        await run_blocking(self._save, record)
        return sha256

    async def _register(self, record: SessionRecord, spec: ValidSpec,
                        sha256: str) -> upload_pb2.UploadItemResponse:
        try:
            response = await self._registrar.register(spec, record.blob_key, record.size, sha256)
        except Unavailable:
            raise  # outcome unknown: the record stays "committing", a retried finish registers
        except CorralError:
            await self._discard_record(record)  # refused: the registrar deleted the blob
            raise
        record.phase, record.item_id, record.outcome = (
            FINISHED, response.item.id, response.outcome)
        await run_blocking(self._save, record)
        return response

    # Records and data

    async def _create(self, upload_id: str, raw_spec: upload_pb2.UploadSpec,
                      spec: ValidSpec, project: str) -> SessionRecord:
        key = blob_key_for(spec.dataset_id)
        state = await run_blocking(self._storage.create_data, upload_id, key)
        now = self._clock()
        record = SessionRecord(upload_id=upload_id, spec=spec_bytes(raw_spec), blob_key=key,
                               created=now, expires=now + self._settings.ttl_seconds,
                               data_state=state, project=project)
        try:
            await run_blocking(self._save, record)
        except BaseException:
            await run_blocking(self._storage.discard_data, upload_id, key, state)
            raise
        return record

    def _save(self, record: SessionRecord) -> None:
        self._storage.save_record(record.upload_id, record.to_json())

    async def _load(self, upload_id: str) -> SessionRecord | None:
        raw = await run_blocking(self._storage.load_record, upload_id)
        return SessionRecord.from_json(raw) if raw is not None else None

    async def _load_current(self, upload_id: str) -> SessionRecord:
        """The live session, if the caller may see it."""
        record = await self._load(upload_id)
        if record is None or record.expired(self._clock()):
            raise _not_found(upload_id)
        _check_visible(record)
        return record

    async def _expire(self, record: SessionRecord) -> None:
        """Removes an expired session. A committed blob is kept if an item refers to it (the
        catalog's answer was lost before the record said "finished")."""
        if record.phase == COMMITTING and await run_blocking(self._store.exists,
                                                             record.blob_key):
            try:
                spec = validate_spec(record.spec_message(), self._max_bytes)
            except CorralError:
                # Limits lowered since it started: whether an item refers to the blob cannot
                # be asked; the catalog's orphan sweep deletes it if none does.
                spec = None
            if spec is not None and not await self._registrar.is_registered(spec,
                                                                            record.blob_key):
                await self._registrar.delete_blob(record.blob_key)
        await self._discard(record)

    async def _discard(self, record: SessionRecord) -> None:
        """Removes the session's unfinished data and its record (never a committed blob)."""
        await run_blocking(self._storage.discard_data, record.upload_id, record.blob_key,
                           record.data_state)
        await self._discard_record(record)

    async def _discard_record(self, record: SessionRecord) -> None:
        await run_blocking(self._storage.delete_record, record.upload_id)
        live = self._live.get(record.upload_id)
        if live is not None:
            live.hasher = None

    # Per-process session state

    def _live_session(self, upload_id: str) -> LiveSession:
        return self._live.setdefault(upload_id, LiveSession())

    def _lock_free_session(self, upload_id: str) -> LiveSession:
        live = self._live_session(upload_id)
        if live.lock.locked():
            raise Aborted(f"upload {upload_id} has a write stream in progress; retry when it "
                          "ended")
        return live

    def _forget_if_idle(self, upload_id: str, live: LiveSession) -> None:
        """An entry is worth keeping only while it is locked or holds a hash state."""
        if not live.lock.locked() and live.hasher is None:
            self._live.pop(upload_id, None)

    def _refuse_when_stopping(self) -> None:
        if self._stopping:
            raise Unavailable("the upload service is stopping; retry the call")
