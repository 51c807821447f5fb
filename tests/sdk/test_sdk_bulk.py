"""upload_paths over UploadItems bulk streams: against the real services, and with the stream
replaced (retries, a server without UploadItems)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from blobstore.open_files import files_being_written

from corral.catalog.v1 import resources_pb2
from corral.client import Client, UploadEvent
from corral.client.bulk import BATCH_MAX_FILES, BULK_MAX_FILE_BYTES
from corral.client.uploads import DEFAULT_CHUNK_SIZE
from corral.client.wire import BatchRequest, ChunkRequest
from corral.upload.v1 import upload_service_pb2
from sdk.stack import Stack
from sdk.test_sdk_retries import FlakyUploads, _Unavailable


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def small_files(folder: Path, count: int, size: int = 3000) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    contents = {}
    for index in range(count):
        data = os.urandom(size + index)
        (folder / f"f{index:03}.bin").write_bytes(data)
        contents[f"f{index:03}.bin"] = data
    return contents


def test_a_folder_of_small_files_goes_over_bulk_streams(client: Client, tmp_path: Path) -> None:
    dataset = client.create_dataset(_name("bulk"))
    contents = small_files(tmp_path / "many", 120)
    # Above the bulk limit: this one goes in its own call, alongside the streams.
    (tmp_path / "many" / "big.bin").write_bytes(b"x" * (BULK_MAX_FILE_BYTES + 1))
    events: list[UploadEvent] = []
    summary = client.upload_paths([tmp_path / "many"], dataset, remote_dir="/in",
                                  metadata={"batch": 7}, progress=events.append)

    assert summary.counts() == {"created": 121, "skipped": 0, "overwritten": 0, "failed": 0}
    by_name = {r.item["name"]: r for r in summary.results}
    for name in ("f000.bin", "f119.bin"):
        assert by_name[name].item["filename"] == f"/in/many/{name}"
        assert by_name[name].item["sha256"] == hashlib.sha256(contents[name]).hexdigest()
        assert by_name[name].item["metadata"]["user"] == {"batch": 7}
        assert by_name[name].local_path == str(tmp_path / "many" / name)
    assert client.download_bytes(by_name["f042.bin"].item["id"]) == contents["f042.bin"]
    planned = events[0]
    finished = [e for e in events if e.kind == "finished"]
    assert planned.total_files == len(finished) == 121
    assert sum(e.bytes for e in events if e.kind == "bytes") == planned.total_bytes

    again = client.upload_paths([tmp_path / "many"], dataset, remote_dir="/in")
    assert again.counts()["skipped"] == 121
    (tmp_path / "many" / "f000.bin").write_bytes(b"changed")
    over = client.upload_paths([tmp_path / "many" / "f000.bin"], dataset, remote_dir="/in/many",
                               on_exists="overwrite")
    assert over.counts()["overwritten"] == 1
    assert client.download_bytes(over.results[0].item["id"]) == b"changed"
    failed = client.upload_paths([tmp_path / "many"], dataset, remote_dir="/in",
                                 on_exists="fail")
    assert failed.counts()["failed"] == 121
    assert {f.code for f in failed.failures} == {"ALREADY_EXISTS"}


def test_a_file_that_vanishes_fails_alone(client: Client, tmp_path: Path) -> None:
    dataset = client.create_dataset(_name("vanish"))
    small_files(tmp_path / "set", 30)

    def delete_one_after_planning(event: UploadEvent) -> None:
        if event.kind == "planned":
            (tmp_path / "set" / "f010.bin").unlink()

    summary = client.upload_paths([tmp_path / "set"], dataset,
                                  progress=delete_one_after_planning)
    assert summary.counts()["created"] == 29
    assert [(f.filename, f.code) for f in summary.failures] == [("/set/f010.bin", "LOCAL")]


def test_stopping_mid_upload_leaves_no_partial_blobs(client: Client, stack: Stack,
                                                     tmp_path: Path) -> None:
    dataset = client.create_dataset(_name("stop"))
    small_files(tmp_path / "stop", 300, size=20_000)
    finished = 0

    def stop_after_ten(event: UploadEvent) -> None:
        nonlocal finished
        finished += event.kind == "finished"
        if finished == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.upload_paths([tmp_path / "stop"], dataset, progress=stop_after_ten)
    tmp_dir = stack.data_dir / "blobs" / ".tmp"
    assert tmp_dir.is_dir()

    def partial_files() -> list[str]:
        return ([str(p) for p in tmp_dir.iterdir()]
                + files_being_written(stack.upload.proc.pid, tmp_dir))

    deadline = time.monotonic() + 20
    while partial_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not partial_files()
    items = list(client.list_items(dataset, recursive=True))
    assert 10 <= len([i for i in items if i["type"] == "file"]) <= 300


class FlakyStreams:
    """UploadItems replaced: the first `failures` streams answer two files and then fail
    UNAVAILABLE; later ones answer every file. Records each file's request_id per stream."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.streams: list[list[str]] = []

    def __call__(self, requests: Iterator[ChunkRequest],
                 ) -> Iterator[upload_service_pb2.UploadItemsResponse]:
        sent = [r for r in requests if r.finish_write or r.spec is not None]
        self.streams.append([r.spec.request_id for r in sent if r.spec is not None])
        flaky = self.failures > 0
        self.failures -= flaky
        for count, request in enumerate(r for r in sent if r.spec is not None):
            if flaky and count == 2:
                raise _Unavailable()
            item = resources_pb2.Item(id=uuid.uuid4().hex, name=request.spec.name,
                                      filename=f"/{request.spec.name}", size=len(request.data),
                                      sha256=hashlib.sha256(request.data).hexdigest(),
                                      type=resources_pb2.ITEM_TYPE_FILE)
            yield upload_service_pb2.UploadItemsResponse(results=[
                upload_service_pb2.UploadItemsResult(
                    file_index=request.file_index, item=item,
                    outcome=resources_pb2.CREATE_OUTCOME_CREATED)])


@pytest.fixture
def offline_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    client = Client("127.0.0.1:9", "127.0.0.1:9", "127.0.0.1:9")
    monkeypatch.setattr(client, "_dataset_id", lambda dataset: "d" * 32)
    yield client
    client.close()


def test_a_failed_stream_is_retried_with_the_same_request_ids(offline_client: Client,
                                                                tmp_path: Path) -> None:
    small_files(tmp_path / "retry", 6)
    streams = FlakyStreams(failures=1)
    offline_client._upload_items = streams
    summary = offline_client.upload_paths([tmp_path / "retry"], "d", bulk_streams=1)
    assert summary.counts()["created"] == 6
    first, second = streams.streams
    assert len(first) == 6 and second == first[2:]  # the unanswered files, same request_ids


def test_a_stream_that_keeps_failing_fails_its_files(offline_client: Client,
                                                     tmp_path: Path) -> None:
    small_files(tmp_path / "down", 10)
    offline_client._upload_items = FlakyStreams(failures=10)
    summary = offline_client.upload_paths([tmp_path / "down"], "d", bulk_streams=1)
    # Three attempts, each answering two files before it fails.
    assert summary.counts()["created"] == 6 and summary.counts()["failed"] == 4
    assert {f.code for f in summary.failures} == {"UNAVAILABLE"}


class _Unimplemented(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNIMPLEMENTED

    def details(self) -> str:
        return "Method not found!"


def test_a_server_without_bulk_streams_gets_one_call_per_file(offline_client: Client,
                                                              tmp_path: Path) -> None:
    small_files(tmp_path / "old", 3)

    def unimplemented(requests: Iterator[ChunkRequest]):
        raise _Unimplemented()
        yield

    offline_client._upload_items = unimplemented
    offline_client._upload = FlakyUploads(failures=0)
    summary = offline_client.upload_paths([tmp_path / "old"], "d", bulk_streams=2)
    assert summary.counts()["created"] == 3
    assert len(offline_client._upload.request_ids) == 3


def _recording(client: Client) -> list[ChunkRequest | BatchRequest]:
    """Records the messages the client's UploadItems streams send."""
    real, sent = client._upload_items, []

    def call(requests):
        def tee():
            for request in requests:
                sent.append(request)
                yield request
        return real(tee())

    client._upload_items = call
    return sent


def test_small_files_go_several_per_message_to_a_server_that_reads_batched(
        client: Client, tmp_path: Path) -> None:
    dataset = client.create_dataset(_name("batched"))
    contents = small_files(tmp_path / "b", 150, size=20_000)
    sent = _recording(client)
    summary = client.upload_paths([tmp_path / "b"], dataset, remote_dir="/in")

    assert summary.counts()["created"] == 150
    for result in summary.results:
        assert result.item["sha256"] == hashlib.sha256(contents[result.item["name"]]).hexdigest()
    batches = [m for m in sent if isinstance(m, BatchRequest)]
    assert batches and all(1 < len(b.requests) <= BATCH_MAX_FILES for b in batches)
    # At most one message's worth of bytes per batch; each file once.
    assert all(sum(len(r.data) for r in b.requests) <= DEFAULT_CHUNK_SIZE for b in batches)
    names = [r.spec.name for m in sent
             for r in (m.requests if isinstance(m, BatchRequest) else [m])]
    assert len(names) == len(set(names)) == 150
    assert len(sent) < 150 // 4


class BatchedStreams:
    """UploadItems replaced by calls that announce `batched` when `announce`: records every
    message; the first stream fails UNAVAILABLE after answering two files."""

    def __init__(self, announce: bool) -> None:
        self.announce, self.failed = announce, False
        self.messages: list[list[ChunkRequest | BatchRequest]] = []

    def __call__(self, requests: Iterator[ChunkRequest | BatchRequest]) -> _FakeCall:
        return _FakeCall(self, requests)


class _FakeCall:
    def __init__(self, streams: BatchedStreams, requests) -> None:
        self._streams, self._requests = streams, requests

    def initial_metadata(self):
        return (("corral-upload-batched", "1"),) if self._streams.announce else ()

    def cancel(self) -> None:
        pass

    def __iter__(self):
        sent: list[ChunkRequest | BatchRequest] = []
        self._streams.messages.append(sent)
        answered = 0
        for message in self._requests:
            sent.append(message)
            for request in (message.requests if isinstance(message, BatchRequest)
                            else [message]):
                if not self._streams.failed and answered == 2:
                    self._streams.failed = True
                    raise _Unavailable()
                answered += 1
                item = resources_pb2.Item(
                    id=uuid.uuid4().hex, name=request.spec.name, size=len(request.data),
                    filename=f"/{request.spec.name}", type=resources_pb2.ITEM_TYPE_FILE,
                    sha256=hashlib.sha256(request.data).hexdigest())
                yield upload_service_pb2.UploadItemsResponse(results=[
                    upload_service_pb2.UploadItemsResult(
                        file_index=request.file_index, item=item,
                        outcome=resources_pb2.CREATE_OUTCOME_CREATED)])


@pytest.mark.parametrize("announce", [True, False])
def test_batches_only_after_the_server_announced_them_and_retries_them(
        offline_client: Client, tmp_path: Path, announce: bool) -> None:
    small_files(tmp_path / "ann", 12)
    streams = BatchedStreams(announce)
    offline_client._upload_items = streams
    summary = offline_client.upload_paths([tmp_path / "ann"], "d", bulk_streams=1)
    assert summary.counts()["created"] == 12
    first, second = streams.messages
    assert isinstance(first[0], ChunkRequest)  # the first file goes alone
    assert any(isinstance(m, BatchRequest) for m in first + second) == announce
    names = [r.spec.name for m in second
             for r in (m.requests if isinstance(m, BatchRequest) else [m])]
    assert len(names) == 10  # the retry carries exactly the files without a result
