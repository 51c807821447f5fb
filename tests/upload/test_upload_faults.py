"""Fault tests of resumable uploads over real gRPC, with the catalog and upload services as
child processes of the test (only those are signalled): SIGKILL halfway through a 200 MiB
upload, and SIGTERM with uploads in flight. Every wait is bounded."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from blobstore.open_files import files_being_written
from grpc_health.v1 import health_pb2, health_pb2_grpc

from corral.client import Client, ResumePolicy
from corral.launcher import ServiceProcess
from corral.rpc import CHANNEL_OPTIONS, open_channel
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from corral.upload.v1 import upload_service_pb2_grpc
from services.blobstore.fs import FsBlobStore
from upload.messages import session_requests
from upload.waiting import WAIT_SECONDS, wait_for

MIB = 1024 * 1024
GRACE_SECONDS = 10


class UploadStack:
    """A catalog and an upload service on one data directory; the upload service can be
    killed and started again on the same address."""

    def __init__(self, service_factory, data_dir: Path, upload_env: dict[str, str]) -> None:
        self._factory = service_factory
        self.env = {"CORRAL_DATA_DIR": str(data_dir), "CORRAL_GRACE_SECONDS": str(GRACE_SECONDS),
                    "CORRAL_UPLOAD_SESSION_PERSIST_BYTES": str(4 * MIB), **upload_env}
        self.catalog = service_factory("catalog", env=self.env)
        self.upload = self.start_upload()
        self.blobs = FsBlobStore(data_dir / "blobs")

    def start_upload(self, addr: str = "127.0.0.1:0") -> ServiceProcess:
        self.upload = self._factory("upload", addr=addr,
                                    env={**self.env, "CORRAL_CATALOG_ADDR": self.catalog.addr})
        return self.upload

    def item_blobs(self) -> list[Path]:
        return [p for p in (self.blobs.root / "items").rglob("*") if p.is_file()]

    def session_ids(self) -> list[str]:
        return list(self.blobs.session_storage().record_ids())

    def persisted(self, upload_id: str) -> int:
        return self.blobs.session_storage().persisted_size(upload_id, "", {})

    def files_being_written(self) -> list[str]:
        return files_being_written(self.upload.proc.pid, self.blobs.tmp_dir)


@pytest.fixture
def uploads(service_factory, tmp_path: Path) -> UploadStack:
    return UploadStack(service_factory, tmp_path / "data", {})


def big_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for _ in range(size // (8 * MIB)):
            block = os.urandom(8 * MIB)
            digest.update(block)
            file.write(block)
    return digest.hexdigest()


def test_sigkill_halfway_through_a_200_mib_upload_resumes_after_restart(
        uploads: UploadStack, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    sha256 = big_file(source, 200 * MIB)
    killed_at: list[int] = []

    def kill_and_restart_halfway(event) -> None:
        # Runs in the thread feeding the request stream, which stays paused meanwhile.
        if event.kind != "bytes" or killed_at:
            return
        sent = sum(e for e in sent_bytes) + event.bytes
        sent_bytes.append(event.bytes)
        if sent < 100 * MIB:
            return
        wait_for(lambda: uploads.session_ids() and
                 uploads.persisted(uploads.session_ids()[0]) >= 64 * MIB,
                 "64 MiB persisted by the upload service")
        uploads.upload.kill()  # SIGKILL
        killed_at.append(uploads.persisted(uploads.session_ids()[0]))
        assert uploads.item_blobs() == []
        assert list(client.list_items("big", recursive=True)) == []
        uploads.start_upload(addr=uploads.upload.addr)  # same data dir and address

    sent_bytes: list[int] = []
    with Client(catalog_addr=uploads.catalog.addr, upload_addr=uploads.upload.addr,
                resume_policy=ResumePolicy(threshold=16 * MIB)) as client:
        client.create_dataset("big")
        summary = client.upload_paths([source], "big", progress=kill_and_restart_halfway)
        assert summary.failures == []
        [result] = summary.results
        assert killed_at and result.resumed_from == (killed_at[0],)
        assert result.resumed_from[0] >= 64 * MIB  # not resent from 0
        assert result.item["sha256"] == sha256 and result.item["size"] == 200 * MIB
        assert len(list(client.list_items("big", recursive=True))) == 1
        downloaded = tmp_path / "back.bin"
        client.download(result.item["id"], downloaded, expected_sha256=sha256)
    assert len(uploads.item_blobs()) == 1


class HeldStream:
    """Request messages sent by a gRPC thread, holding before the last ones until released."""

    def __init__(self, before: list[upload_pb2.UploadItemRequest],
                 after: list[upload_pb2.UploadItemRequest]) -> None:
        self.before, self.after = before, after
        self.release = threading.Event()

    def __iter__(self) -> Iterator[upload_pb2.UploadItemRequest]:
        yield from self.before
        self.release.wait(WAIT_SECONDS)
        yield from self.after


def test_sigterm_with_uploads_in_flight(uploads: UploadStack) -> None:
    channel = open_channel(uploads.upload.addr, options=CHANNEL_OPTIONS)
    stub = upload_service_pb2_grpc.UploadServiceStub(channel)
    with Client(catalog_addr=uploads.catalog.addr, upload_addr=uploads.upload.addr) as client:
        dataset_id = client.create_dataset("in-flight")["id"]
    long_data, short_data = os.urandom(24 * MIB), os.urandom(2 * MIB)

    upload_id = stub.StartResumableUpload(upload_pb2.StartResumableUploadRequest(
        spec=upload_pb2.UploadSpec(dataset_id=dataset_id, name="long.bin")), timeout=10).upload_id
    long_messages = list(session_requests(upload_id, long_data[:8 * MIB], finish=False))
    long_stream = HeldStream(long_messages, [])
    long_call = stub.UploadItem.future(iter(long_stream))
    wait_for(lambda: uploads.persisted(upload_id) == 8 * MIB, "the long upload's first 8 MiB")

    short_spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="short.bin")
    short_stream = HeldStream(
        [upload_pb2.UploadItemRequest(spec=short_spec, data=short_data[:MIB])],
        [upload_pb2.UploadItemRequest(write_offset=MIB, data=short_data[MIB:],
                                      finish_write=True)])
    short_call = stub.UploadItem.future(iter(short_stream))
    wait_for(uploads.files_being_written, "the short upload's data")

    health = health_pb2_grpc.HealthStub(channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=WAIT_SECONDS)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    uploads.upload.signal(signal.SIGTERM)
    # At once: watchers see NOT_SERVING and the session stream ends resumable, while the
    # short upload is still held open by its client.
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.RpcError) as ended:
        long_call.result(timeout=WAIT_SECONDS)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"resume upload {upload_id} from persisted_size {8 * MIB}" in ended.value.details()
    assert not short_call.done()
    short_stream.release.set()
    short_item = short_call.result(timeout=WAIT_SECONDS).item
    assert short_item.sha256 == hashlib.sha256(short_data).hexdigest()
    watch.cancel()  # a watch is an endless call the grace period would wait for
    assert uploads.upload.proc.wait(timeout=GRACE_SECONDS) == 0  # within the grace period
    long_stream.release.set()
    channel.close()

    restarted = uploads.start_upload()
    with open_channel(restarted.addr, options=CHANNEL_OPTIONS) as channel:
        stub = upload_service_pb2_grpc.UploadServiceStub(channel)
        status = stub.QueryUploadStatus(
            upload_pb2.QueryUploadStatusRequest(upload_id=upload_id), timeout=10)
        assert status.persisted_size == 8 * MIB
        item = stub.UploadItem(session_requests(upload_id, long_data, start=8 * MIB),
                               timeout=WAIT_SECONDS).item
    assert item.sha256 == hashlib.sha256(long_data).hexdigest()


def test_abandoned_sessions_past_their_ttl_are_removed(service_factory, tmp_path: Path) -> None:
    uploads = UploadStack(service_factory, tmp_path / "data", {
        "CORRAL_UPLOAD_SESSION_TTL_SECONDS": "1", "CORRAL_UPLOAD_SESSION_SWEEP_SECONDS": "0.2"})
    with Client(catalog_addr=uploads.catalog.addr, upload_addr=uploads.upload.addr) as client:
        dataset_id = client.create_dataset("abandoned")["id"]
    with open_channel(uploads.upload.addr, options=CHANNEL_OPTIONS) as channel:
        stub = upload_service_pb2_grpc.UploadServiceStub(channel)
        upload_id = stub.StartResumableUpload(upload_pb2.StartResumableUploadRequest(
            spec=upload_pb2.UploadSpec(dataset_id=dataset_id, name="gone.bin")),
            timeout=10).upload_id
        reply = stub.UploadItem(session_requests(upload_id, os.urandom(MIB), finish=False),
                                timeout=WAIT_SECONDS)
        assert reply.persisted_size == MIB
        sessions_dir = uploads.blobs.root / ".sessions"
        assert {p.suffix for p in sessions_dir.iterdir()} >= {".json", ".data"}
        wait_for(lambda: not any(sessions_dir.iterdir()), "the expired session's files to go")
        with pytest.raises(grpc.RpcError) as gone:
            stub.QueryUploadStatus(upload_pb2.QueryUploadStatusRequest(upload_id=upload_id),
                                   timeout=10)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
