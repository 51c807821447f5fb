"""Resumable upload sessions in the upload domain, against an in-memory catalog and a real
blob store: the filesystem store, and a bucket on moto's S3 server (multipart parts)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from blobstore.moto_s3 import TEST_PART_SIZE, object_keys, pending_multipart_uploads, s3_settings

from corral.errors import (
    Aborted,
    AlreadyExists,
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from services.blobstore import open_blob_store
from services.blobstore.fs import FsBlobStore
from services.blobstore.s3 import S3BlobStore
from services.common.settings import BlobStoreSettings
from services.upload.registration import Registrar
from services.upload.resumable import ResumableUploads, SessionSettings
from upload.fake_catalog import FakeCatalog
from upload.messages import session_requests

MIB = 1024 * 1024
TTL = 100.0


class Sessions:
    """One "process" of the upload service: a store, a registrar and the sessions over them.
    restart() builds new ones over the same directory or bucket, forgetting all memory."""

    def __init__(self, settings: BlobStoreSettings, data_dir: Path,
                 catalog: FakeCatalog) -> None:
        self.settings, self.data_dir, self.catalog = settings, data_dir, catalog
        self.now = 1_000_000.0
        self.restart()

    def restart(self) -> None:
        self.store = open_blob_store(self.settings, self.data_dir)
        self.resumable = ResumableUploads(
            Registrar(self.store, self.catalog), 300_000,
            SessionSettings(ttl_seconds=TTL, persist_bytes=1 * MIB), clock=lambda: self.now)

    def start(self, dataset_id: str, **spec_fields) -> upload_pb2.StartResumableUploadResponse:
        spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="big.bin", **spec_fields)
        return self.run(self.resumable.start(upload_pb2.StartResumableUploadRequest(spec=spec)))

    def write(self, messages: Iterable[upload_pb2.UploadItemRequest],
              ) -> upload_pb2.UploadItemResponse:
        async def stream() -> AsyncIterator[upload_pb2.UploadItemRequest]:
            for message in messages:
                yield message

        async def call() -> upload_pb2.UploadItemResponse:
            requests = stream()
            first = await anext(requests)
            return await self.resumable.write(first, requests)
        return self.run(call())

    def persisted(self, upload_id: str) -> int:
        reply = self.query(upload_id)
        assert reply.WhichOneof("write_status") == "persisted_size"
        return reply.persisted_size

    def query(self, upload_id: str) -> upload_pb2.QueryUploadStatusResponse:
        return self.run(self.resumable.query(
            upload_pb2.QueryUploadStatusRequest(upload_id=upload_id)))

    def cancel(self, upload_id: str) -> None:
        self.run(self.resumable.cancel(
            upload_pb2.CancelResumableUploadRequest(upload_id=upload_id)))

    @staticmethod
    def run(coro):
        return asyncio.run(coro)

    def leftovers(self) -> list[str]:
        """Everything stored besides committed item blobs: session records, temp data,
        pending multipart uploads."""
        store = self.store
        if isinstance(store, FsBlobStore):
            return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*")
                          if p.is_file() and p.parts[len(store.root.parts)] != "items")
        assert isinstance(store, S3BlobStore)
        return ([k for k in object_keys(store.client, store.bucket)
                 if not k.startswith("items/")]
                + pending_multipart_uploads(store.client, store.bucket))

    def item_blobs(self) -> list[str]:
        store = self.store
        if isinstance(store, FsBlobStore):
            return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*")
                          if p.is_file() and p.parts[len(store.root.parts)] == "items")
        assert isinstance(store, S3BlobStore)
        return [k for k in object_keys(store.client, store.bucket) if k.startswith("items/")]


@pytest.fixture(params=["fs", "s3"])
def sessions(request, tmp_path: Path) -> Sessions:
    if request.param == "fs":
        settings = BlobStoreSettings()
    else:
        settings = s3_settings(request.getfixturevalue("moto_endpoint"))
    return Sessions(settings, tmp_path / "data", FakeCatalog())


@pytest.fixture
def fs_sessions(tmp_path: Path) -> Sessions:
    return Sessions(BlobStoreSettings(), tmp_path / "data", FakeCatalog())


def expected_persisted(sessions: Sessions, sent: int) -> int:
    """fs persists everything received when a stream stops; S3 only whole parts (a tail of at
    least 5 MiB goes as a part of its own)."""
    if isinstance(sessions.store, FsBlobStore):
        return sent
    return sent - sent % TEST_PART_SIZE


def test_an_interrupted_session_resumes_after_a_restart(sessions: Sessions) -> None:
    data = os.urandom(12 * MIB + 12345)
    dataset_id = sessions.catalog.add_dataset()
    upload_id = sessions.start(dataset_id, size=len(data)).upload_id
    first_part = 11 * MIB + 100
    reply = sessions.write(session_requests(upload_id, data[:first_part], finish=False))
    persisted = expected_persisted(sessions, first_part)
    assert reply.persisted_size == persisted > 0
    assert sessions.item_blobs() == [] and sessions.catalog.items == {}

    sessions.restart()  # the hash state of the persisted bytes is gone with the process
    assert sessions.persisted(upload_id) == persisted
    finished = sessions.write(session_requests(upload_id, data, start=persisted))
    assert finished.item.size == len(data)
    assert finished.item.sha256 == hashlib.sha256(data).hexdigest()
    stored = b"".join(sessions.store.iter_chunks(finished.item.blob_key))
    assert stored == data
    assert sessions.query(upload_id).item.id == finished.item.id


def test_a_session_resumed_in_the_same_process_keeps_its_hash(fs_sessions: Sessions) -> None:
    data = os.urandom(3 * MIB)
    dataset_id = fs_sessions.catalog.add_dataset()
    upload_id = fs_sessions.start(dataset_id).upload_id
    for start, end in ((0, MIB), (MIB, 2 * MIB)):
        reply = fs_sessions.write(session_requests(upload_id, data[:end], start=start,
                                                   finish=False))
        assert reply.persisted_size == end
    reply = fs_sessions.write(session_requests(upload_id, data, start=2 * MIB))
    assert reply.item.sha256 == hashlib.sha256(data).hexdigest()
    assert fs_sessions.leftovers() == [f".sessions/{upload_id}.json"]  # kept until expiry


def test_write_offsets_must_continue_at_the_persisted_size(fs_sessions: Sessions) -> None:
    data = os.urandom(2 * MIB)
    upload_id = fs_sessions.start(fs_sessions.catalog.add_dataset()).upload_id
    fs_sessions.write(session_requests(upload_id, data[:MIB], finish=False))
    for offset, error, text in [
        (MIB + 1, FailedPrecondition, f"write_offset {MIB + 1} does not match the "
                                      f"persisted_size {MIB}"),
        (MIB - 1, FailedPrecondition, f"persisted_size {MIB}"),
        (-1, InvalidArgument, "write_offset must not be negative"),
    ]:
        messages = list(session_requests(upload_id, data, start=MIB))
        messages[0].write_offset = offset
        with pytest.raises(error, match=text):
            fs_sessions.write(messages)
        assert fs_sessions.persisted(upload_id) == MIB
    gap = list(session_requests(upload_id, data, start=MIB, chunk=256 * 1024))
    gap[2].write_offset += 7
    with pytest.raises(InvalidArgument, match="expected"):
        fs_sessions.write(gap)
    # The messages before the bad one are kept.
    assert fs_sessions.persisted(upload_id) == MIB + 2 * 256 * 1024


def test_a_crc32c_mismatch_is_data_loss_and_keeps_nothing_of_that_message(
        sessions: Sessions) -> None:
    data = os.urandom(6 * MIB)
    upload_id = sessions.start(sessions.catalog.add_dataset()).upload_id
    messages = list(session_requests(upload_id, data, chunk=MIB))
    messages[0].crc32c ^= 1
    with pytest.raises(DataLoss, match="crc32c of the data at write_offset 0"):
        sessions.write(messages)
    assert sessions.persisted(upload_id) == 0
    messages = list(session_requests(upload_id, data, chunk=MIB))
    messages[5].crc32c ^= 1
    with pytest.raises(DataLoss, match=f"write_offset {5 * MIB}"):
        sessions.write(messages)
    assert sessions.persisted(upload_id) == 5 * MIB  # fs: all five; S3: one 5 MiB part
    assert sessions.item_blobs() == []


@pytest.mark.parametrize("declared", ["spec", "finish"])
def test_a_sha256_mismatch_at_finish_is_data_loss_and_leaves_nothing(
        sessions: Sessions, declared: str) -> None:
    data = os.urandom(6 * MIB)
    wrong = hashlib.sha256(b"other").hexdigest()
    spec_fields = {"sha256": wrong} if declared == "spec" else {}
    upload_id = sessions.start(sessions.catalog.add_dataset(), **spec_fields).upload_id
    sessions.write(session_requests(upload_id, data[:5 * MIB], finish=False))
    sessions.restart()  # also the path that hashes the committed blob
    messages = list(session_requests(upload_id, data, start=5 * MIB))
    if declared == "finish":
        messages[-1].sha256 = wrong
    with pytest.raises(DataLoss, match=f"{declared + '.' if declared == 'spec' else ''}sha256"):
        sessions.write(messages)
    assert sessions.catalog.items == {}
    assert sessions.item_blobs() == [] and sessions.leftovers() == []
    with pytest.raises(NotFound):
        sessions.query(upload_id)


def test_expired_sessions_are_removed_with_their_data(sessions: Sessions) -> None:
    data = os.urandom(6 * MIB)
    dataset_id = sessions.catalog.add_dataset()
    old = sessions.start(dataset_id, request_id="old").upload_id
    sessions.write(session_requests(old, data, finish=False))
    sessions.now += TTL / 2
    young = sessions.start(dataset_id, request_id="young").upload_id
    sessions.now += TTL / 2
    assert sessions.run(sessions.resumable.sweep()) == 1
    with pytest.raises(NotFound):
        sessions.query(old)
    assert sessions.persisted(young) == 0
    sessions.now += TTL
    assert sessions.run(sessions.resumable.sweep()) == 1
    assert sessions.leftovers() == [] and sessions.item_blobs() == []


def test_a_retried_start_returns_the_same_session(sessions: Sessions) -> None:
    dataset_id = sessions.catalog.add_dataset()
    first = sessions.start(dataset_id, request_id="r-1")
    assert sessions.start(dataset_id, request_id="r-1").upload_id == first.upload_id
    assert sessions.start(dataset_id, request_id="r-2").upload_id != first.upload_id
    with pytest.raises(AlreadyExists, match="spec.request_id 'r-1'"):
        sessions.start(dataset_id, request_id="r-1", description="another upload")
    assert first.expire_time.seconds == int(sessions.now + TTL)


def test_a_retried_finish_returns_the_first_item(fs_sessions: Sessions) -> None:
    data = os.urandom(MIB)
    dataset_id = fs_sessions.catalog.add_dataset()
    upload_id = fs_sessions.start(dataset_id, request_id="r-1").upload_id
    finished = fs_sessions.write(session_requests(upload_id, data))
    retry = upload_pb2.UploadItemRequest(upload_id=upload_id, write_offset=len(data),
                                         finish_write=True)
    assert fs_sessions.write([retry]).item == finished.item
    assert fs_sessions.start(dataset_id, request_id="r-1").upload_id == upload_id
    assert fs_sessions.catalog.calls.count("create_item") == 1
    with pytest.raises(FailedPrecondition, match="finished"):
        fs_sessions.write(session_requests(upload_id, data))
    with pytest.raises(FailedPrecondition, match="finished"):
        fs_sessions.cancel(upload_id)


def test_a_finish_that_stopped_before_registering_is_completed_by_a_retry(
        fs_sessions: Sessions) -> None:
    data = os.urandom(MIB)
    upload_id = fs_sessions.start(fs_sessions.catalog.add_dataset()).upload_id
    fs_sessions.catalog.create_error = Unavailable("catalog down")
    with pytest.raises(Exception, match="did not confirm"):
        fs_sessions.write(session_requests(upload_id, data))
    assert fs_sessions.query(upload_id).persisted_size == len(data)
    fs_sessions.catalog.create_error = None
    retry = upload_pb2.UploadItemRequest(upload_id=upload_id, write_offset=len(data),
                                         finish_write=True)
    assert fs_sessions.write([retry]).item.sha256 == hashlib.sha256(data).hexdigest()
    assert len(fs_sessions.catalog.items) == 1


def test_cancel_discards_the_session(sessions: Sessions) -> None:
    upload_id = sessions.start(sessions.catalog.add_dataset()).upload_id
    sessions.write(session_requests(upload_id, os.urandom(6 * MIB), finish=False))
    sessions.cancel(upload_id)
    assert sessions.leftovers() == []
    with pytest.raises(NotFound):
        sessions.cancel(upload_id)


def test_a_skipped_upload_starts_no_session(fs_sessions: Sessions) -> None:
    dataset_id = fs_sessions.catalog.add_dataset()
    upload_id = fs_sessions.start(dataset_id).upload_id
    first = fs_sessions.write(session_requests(upload_id, b"abc"))
    again = fs_sessions.start(dataset_id)
    assert again.upload_id == "" and again.item.id == first.item.id


def test_one_write_stream_per_session(fs_sessions: Sessions) -> None:
    upload_id = fs_sessions.start(fs_sessions.catalog.add_dataset()).upload_id

    async def two_streams() -> None:
        gate = asyncio.Event()

        async def held() -> AsyncIterator[upload_pb2.UploadItemRequest]:
            yield upload_pb2.UploadItemRequest(upload_id=upload_id, data=b"x")
            await gate.wait()

        stream = held()
        first = asyncio.ensure_future(fs_sessions.resumable.write(await anext(stream), stream))
        # The first write loads the session record off the loop before taking its lock: wait
        # until it holds the lock (one loop turn is not always enough under load).
        for _ in range(5000):
            live = fs_sessions.resumable._live.get(upload_id)
            if live is not None and live.lock.locked():
                break
            await asyncio.sleep(0.001)
        with pytest.raises(Aborted, match="in progress"):
            await fs_sessions.resumable.write(
                upload_pb2.UploadItemRequest(upload_id=upload_id, write_offset=0), held())
        gate.set()
        assert (await first).persisted_size == 1

    fs_sessions.run(two_streams())
