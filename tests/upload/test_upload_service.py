"""The upload service over real gRPC on loopback, with the catalog service beside it."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from blobstore.moto_s3 import minio_client, object_keys, pending_multipart_uploads
from blobstore.open_files import stored_and_open_files
from grpc_health.v1 import health_pb2, health_pb2_grpc

from corral.catalog.v1 import resources_pb2
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from services.blobstore.fs import FsBlobStore
from services.blobstore.s3 import S3BlobStore
from upload.conftest import Stack, StackFactory
from upload.messages import upload_requests

Outcome = resources_pb2.CreateOutcome
Policy = resources_pb2.DuplicatePolicy
MIB = 1024 * 1024


def stored_blobs(stack: Stack) -> list[str]:
    """Every object in the stack's blob store, temp files (those the upload service is
    writing too) and pending multipart uploads."""
    store = stack.store
    if isinstance(store, FsBlobStore):
        return stored_and_open_files(store, stack.upload.proc.pid)
    assert isinstance(store, S3BlobStore)
    return (object_keys(store.client, store.bucket)
            + pending_multipart_uploads(store.client, store.bucket))


def upload(stack: Stack, messages: Iterator[upload_pb2.UploadItemRequest],
           ) -> upload_pb2.UploadItemResponse:
    return stack.uploads.UploadItem(messages, timeout=60)


def read_back(stack: Stack, item_id: str, offset: int = 0) -> bytes:
    return b"".join(m.data for m in stack.download(item_id, offset))


@pytest.fixture
def stack(stack_factory: StackFactory) -> Stack:
    return stack_factory()


def test_small_and_multi_chunk_uploads_round_trip(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    for name, size, chunk in [("empty", 0, 1), ("small.txt", 5, 1), ("big.bin", 5 * MIB + 7, MIB)]:
        data = os.urandom(size)
        spec = upload_pb2.UploadSpec(dataset_id=dataset_id, remote_dir="/train/", name=name,
                                     size=size, sha256=hashlib.sha256(data).hexdigest(),
                                     description="d")
        spec.user_metadata.update({"camera": 3})
        reply = upload(stack, upload_requests(spec, data, chunk=chunk))
        assert reply.outcome == Outcome.CREATE_OUTCOME_CREATED
        assert (reply.item.filename, reply.item.size) == (f"/train/{name}", size)
        assert reply.item.sha256 == hashlib.sha256(data).hexdigest()
        messages = stack.download(reply.item.id)
        assert messages[0].total_size == size and messages[0].content_type
        assert b"".join(m.data for m in messages) == data
        if size:
            assert read_back(stack, reply.item.id, size // 2) == data[size // 2:]
            assert read_back(stack, reply.item.id, size) == b""
            with pytest.raises(grpc.RpcError) as info:
                stack.download(reply.item.id, size + 1)
            assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert len(stack.items(dataset_id)) == 3
    assert len([k for k in stored_blobs(stack) if k.startswith("items/")]) == 3
    assert not [k for k in stored_blobs(stack) if k.startswith(".tmp")]


def test_s3_store_end_to_end(stack_factory: StackFactory, moto_endpoint: str) -> None:
    stack = stack_factory(s3_endpoint=moto_endpoint)
    dataset_id = stack.create_dataset()
    data = os.urandom(11 * MIB + 3)  # three parts of the 5 MiB test part size
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="video.mp4",
                                 sha256=hashlib.sha256(data).hexdigest())
    reply = upload(stack, upload_requests(spec, data, chunk=MIB))
    assert reply.outcome == Outcome.CREATE_OUTCOME_CREATED
    assert read_back(stack, reply.item.id) == data
    assert read_back(stack, reply.item.id, 6 * MIB) == data[6 * MIB:]
    bad = upload_pb2.UploadSpec(dataset_id=dataset_id, name="bad.bin", sha256="0" * 64)
    with pytest.raises(grpc.RpcError) as info:
        upload(stack, upload_requests(bad, data, chunk=MIB))
    assert info.value.code() == grpc.StatusCode.DATA_LOSS
    store = stack.store
    assert isinstance(store, S3BlobStore)
    assert object_keys(minio_client(moto_endpoint), store.bucket) == [reply.item.blob_key]
    assert pending_multipart_uploads(store.client, store.bucket) == []


def test_duplicate_policies(stack: Stack) -> None:
    dataset_id = stack.create_dataset()

    def spec(policy: int) -> upload_pb2.UploadSpec:
        return upload_pb2.UploadSpec(dataset_id=dataset_id, remote_dir="/a", name="x.bin",
                                     duplicate_policy=policy)

    first = upload(stack, upload_requests(spec(Policy.DUPLICATE_POLICY_UNSPECIFIED), b"one"))
    assert first.outcome == Outcome.CREATE_OUTCOME_CREATED

    skipped = upload(stack, upload_requests(spec(Policy.DUPLICATE_POLICY_SKIP), b"two"))
    assert skipped.outcome == Outcome.CREATE_OUTCOME_SKIPPED
    assert skipped.item.id == first.item.id and skipped.item.blob_key == first.item.blob_key

    with pytest.raises(grpc.RpcError) as info:
        upload(stack, upload_requests(spec(Policy.DUPLICATE_POLICY_FAIL), b"three"))
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS

    overwritten = upload(stack, upload_requests(spec(Policy.DUPLICATE_POLICY_OVERWRITE), b"four"))
    assert overwritten.outcome == Outcome.CREATE_OUTCOME_OVERWRITTEN
    assert overwritten.item.id == first.item.id
    assert read_back(stack, first.item.id) == b"four"
    assert len(stack.items(dataset_id)) == 1
    # The catalog deletes the overwritten blob after its commit.
    deadline = time.monotonic() + 5
    while stack.store.exists(first.item.blob_key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_blobs(stack) == [overwritten.item.blob_key]



def test_skip_answers_before_the_bytes_even_with_a_request_id(stack: Stack) -> None:
    """An existing file is not streamed again: the SDK always sends a request_id."""
    dataset_id = stack.create_dataset()
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="big.bin", request_id="retry-1")
    first = upload(stack, upload_requests(upload_pb2.UploadSpec(
        dataset_id=dataset_id, name="big.bin"), b"content"))
    never = threading.Event()

    def endless() -> Iterator[upload_pb2.UploadItemRequest]:
        yield from upload_requests(spec, os.urandom(MIB), finish=False)
        never.wait(30)  # the rest of a large file that must not be needed

    reply = stack.uploads.UploadItem(endless(), timeout=20)
    never.set()
    assert reply.outcome == Outcome.CREATE_OUTCOME_SKIPPED
    assert reply.item.id == first.item.id
    assert stored_blobs(stack) == [first.item.blob_key]

BAD_SPECS = {
    "unknown dataset": ({"dataset_id": "0" * 32}, grpc.StatusCode.NOT_FOUND),
    "empty name": ({"name": ""}, grpc.StatusCode.INVALID_ARGUMENT),
    "parent name": ({"name": "../x"}, grpc.StatusCode.INVALID_ARGUMENT),
    "absolute name": ({"name": "/abs"}, grpc.StatusCode.INVALID_ARGUMENT),
    "backslash name": ({"name": "a\\b"}, grpc.StatusCode.INVALID_ARGUMENT),
    "NUL name": ({"name": "a\x00b"}, grpc.StatusCode.INVALID_ARGUMENT),
    "bad remote_dir": ({"remote_dir": "/a/../../etc"}, grpc.StatusCode.INVALID_ARGUMENT),
    "wrong sha256": ({"sha256": "0" * 64}, grpc.StatusCode.DATA_LOSS),
    "bad sha256": ({"sha256": "xyz"}, grpc.StatusCode.INVALID_ARGUMENT),
    "size too small": ({"size": 10}, grpc.StatusCode.INVALID_ARGUMENT),
    "size too large": ({"size": 10 * MIB}, grpc.StatusCode.INVALID_ARGUMENT),
}


def test_bad_inputs_write_nothing(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    data = os.urandom(MIB + 5)
    for case, (fields, code) in BAD_SPECS.items():
        spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="ok.bin")
        for name, value in fields.items():
            setattr(spec, name, value)
        with pytest.raises(grpc.RpcError) as info:
            upload(stack, upload_requests(spec, data))
        assert info.value.code() == code, case

    good = upload_pb2.UploadSpec(dataset_id=dataset_id, name="ok.bin")
    bad_offset = list(upload_requests(good, data))
    bad_offset[2].write_offset = 7
    no_finish = upload_requests(good, data, finish=False)
    no_spec = iter([upload_pb2.UploadItemRequest(data=b"x", finish_write=True)])
    bad_upload_id = iter([upload_pb2.UploadItemRequest(upload_id="u-1")])
    unknown_upload_id = iter([upload_pb2.UploadItemRequest(upload_id="0" * 32)])
    for case, messages, code, text in [
        ("bad write_offset", iter(bad_offset), grpc.StatusCode.INVALID_ARGUMENT,
         f"write_offset 7, expected {2 * 256 * 1024}"),
        ("no finish_write", no_finish, grpc.StatusCode.INVALID_ARGUMENT, "finish_write"),
        ("missing spec", no_spec, grpc.StatusCode.INVALID_ARGUMENT, "spec"),
        ("bad upload_id", bad_upload_id, grpc.StatusCode.INVALID_ARGUMENT, "upload_id"),
        ("unknown upload_id", unknown_upload_id, grpc.StatusCode.NOT_FOUND, "0" * 32),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            upload(stack, messages)
        assert info.value.code() == code, case
        assert text in info.value.details(), case
    assert stack.items(dataset_id) == []
    assert stored_blobs(stack) == []


def test_download_errors(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, remote_dir="/dir", name="x")
    item = upload(stack, upload_requests(spec, b"x")).item
    for item_id, thumbnail, code, text in [
        (item.id, True, grpc.StatusCode.NOT_FOUND, f"item {item.id} has no thumbnail yet"),
        ("f" * 32, False, grpc.StatusCode.NOT_FOUND, ""),
        ("", False, grpc.StatusCode.INVALID_ARGUMENT, "item_id"),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            stack.download(item_id, thumbnail=thumbnail)
        assert info.value.code() == code
        assert text in info.value.details()


def paused_upload(spec: upload_pb2.UploadSpec, data: bytes, resume: threading.Event,
                  paused: threading.Event) -> Iterator[upload_pb2.UploadItemRequest]:
    """Sends everything but the last message, then waits for `resume`."""
    messages = list(upload_requests(spec, data))
    yield from messages[:-1]
    paused.set()
    resume.wait(30)
    yield messages[-1]


def test_catalog_unreachable_at_finish_creates_no_item_and_keeps_the_blob(stack: Stack) -> None:
    """The catalog may have committed before it went away, so the blob is kept (a possible
    orphan for the collector) rather than risking an item whose content is gone."""
    dataset_id = stack.create_dataset()
    resume, paused = threading.Event(), threading.Event()
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="late.bin")
    call = stack.uploads.UploadItem.future(
        paused_upload(spec, os.urandom(3 * MIB), resume, paused), timeout=60)
    assert paused.wait(20)
    deadline = time.monotonic() + 20
    while not stored_blobs(stack):  # the service is writing: the spec was checked already
        assert time.monotonic() < deadline, "the upload never reached the blob store"
        time.sleep(0.01)
    stack.catalog.kill()
    resume.set()
    with pytest.raises(grpc.RpcError) as info:
        call.result()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "retry the upload" in info.value.details()
    assert len(stored_blobs(stack)) == 1


def test_sigterm_stops_gracefully(stack_factory: StackFactory) -> None:
    stack = stack_factory(upload_env={"CORRAL_GRACE_SECONDS": "1"})
    dataset_id = stack.create_dataset()
    health = health_pb2_grpc.HealthStub(stack.channels[0])
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

    resume, paused = threading.Event(), threading.Event()
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="unfinished.bin")
    call = stack.uploads.UploadItem.future(
        paused_upload(spec, os.urandom(MIB), resume, paused), timeout=30)
    assert paused.wait(20)

    started = time.monotonic()
    stack.upload.signal(signal.SIGTERM)
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert stack.upload.proc is not None
    stack.upload.proc.wait(timeout=10)
    assert time.monotonic() - started < 5
    assert stack.upload.proc.returncode == 0
    resume.set()
    with pytest.raises(grpc.RpcError):
        call.result()
    assert stored_blobs(stack) == []  # the unfinished upload was aborted
    assert stack.items(dataset_id) == []

