"""Streams that stop sending end after CORRAL_STREAM_IDLE_SECONDS with DEADLINE_EXCEEDED, on
every client-streaming and bidirectional RPC: a one-call upload leaves nothing, a resumable
upload keeps what it persisted and can be resumed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from upload.conftest import Stack
from upload.messages import bulk_file_messages, session_requests

from corral.upload.v1 import upload_service_pb2 as upload_pb2
from limits.conftest import LimitedStack, held_open, stored_files

IDLE = {"CORRAL_STREAM_IDLE_SECONDS": "1"}


@pytest.fixture
def stack(limited_stack: LimitedStack) -> Stack:
    return limited_stack(env=IDLE)


def assert_idle_timeout(exc: grpc.RpcError) -> None:
    assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED, exc.details()
    assert "no message for 1 s (CORRAL_STREAM_IDLE_SECONDS)" in exc.details(), exc.details()


def stalled(call, messages: list, **kwargs) -> grpc.RpcError:
    """Runs `call` with a stream that sends `messages` and then nothing; returns its error."""
    release = threading.Event()
    try:
        call(held_open(messages, release), timeout=60, **kwargs)
    except grpc.RpcError as exc:
        return exc
    finally:
        release.set()
    raise AssertionError("the stalled stream succeeded")


def test_a_stalled_upload_ends_and_leaves_nothing(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="stalled.bin")
    error = stalled(stack.uploads.UploadItem,
                    [upload_pb2.UploadItemRequest(spec=spec, data=b"x" * 1000)])
    assert_idle_timeout(error)
    assert stack.items(dataset_id) == [] and stored_files(stack) == []


def test_a_stalled_resumable_upload_stays_resumable(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="resumed.bin")
    upload_id = stack.uploads.StartResumableUpload(
        upload_pb2.StartResumableUploadRequest(spec=spec), timeout=10).upload_id
    data = bytes(range(256)) * 64
    first = list(session_requests(upload_id, data[:4096], chunk=1024, finish=False))
    assert_idle_timeout(stalled(stack.uploads.UploadItem, first))

    status = stack.uploads.QueryUploadStatus(
        upload_pb2.QueryUploadStatusRequest(upload_id=upload_id), timeout=10)
    assert status.persisted_size == 4096
    rest = session_requests(upload_id, data, start=4096, chunk=1024)
    reply = stack.uploads.UploadItem(rest, timeout=30)
    assert reply.item.size == len(data)
    assert b"".join(m.data for m in stack.download(reply.item.id)) == data


def test_a_stream_that_keeps_sending_is_not_idle(stack: Stack) -> None:
    """Only gaps count, not the stream's length: 2 s of messages 0.05 s apart pass a 1 s limit."""
    dataset_id = stack.create_dataset()
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="steady.bin")

    def steady() -> Iterator[upload_pb2.UploadItemRequest]:
        for index in range(40):
            message = upload_pb2.UploadItemRequest(write_offset=index, data=b"x",
                                                   finish_write=index == 39)
            if index == 0:
                message.spec.CopyFrom(spec)
            yield message
            time.sleep(0.05)

    assert stack.uploads.UploadItem(steady(), timeout=60).item.size == 40


def test_a_stalled_bulk_stream_ends_and_leaves_nothing(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    done = bulk_file_messages(0, upload_pb2.UploadSpec(dataset_id=dataset_id, name="a.txt"),
                              b"complete")
    unfinished = bulk_file_messages(1, upload_pb2.UploadSpec(dataset_id=dataset_id,
                                                             name="b.txt"),
                                    b"half", finish=False)
    release = threading.Event()
    results = []
    with pytest.raises(grpc.RpcError) as caught:
        for response in stack.uploads.UploadItems(held_open(done + unfinished, release),
                                                  timeout=60):
            results.extend(response.results)
    release.set()
    assert_idle_timeout(caught.value)
    # The finished file was registered before the stream went quiet; the open one left nothing.
    assert [r.file_index for r in results if r.HasField("item")] == [0]
    assert [i.name for i in stack.items(dataset_id)] == ["a.txt"]
    assert [f for f in stored_files(stack) if not f.startswith("items/")] == []


def test_a_stalled_csv_import_ends(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    spec = upload_pb2.ImportCsvSpec(dataset_id=dataset_id, csv_name="batch.csv")
    messages = [upload_pb2.ImportCsvRequest(spec=spec, data=b"ID,image_bytes\n")]
    release = threading.Event()
    with pytest.raises(grpc.RpcError) as caught:
        list(stack.uploads.ImportCsv(held_open(messages, release), timeout=60))
    release.set()
    assert_idle_timeout(caught.value)


def test_a_stalled_reflection_stream_on_the_catalog_ends(stack: Stack) -> None:
    """The catalog has no client streams of its own; reflection's bidirectional stream is
    guarded like every other."""
    stub = reflection_pb2_grpc.ServerReflectionStub(stack.channels[1])
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    release = threading.Event()
    answers = []
    with pytest.raises(grpc.RpcError) as caught:
        for answer in stub.ServerReflectionInfo(held_open([request], release), timeout=60):
            answers.append(answer)
    release.set()
    assert_idle_timeout(caught.value)
    assert answers and answers[0].list_services_response.service
