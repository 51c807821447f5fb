"""CORRAL_UPLOAD_MAX_BYTES, checked while streaming: a declared size above it is refused at the
spec, an undeclared upload is cut off as soon as it passes it, and nothing stays behind."""

from __future__ import annotations

import base64
import threading

import grpc
import pytest
from upload.conftest import Stack
from upload.messages import bulk_file_messages, session_requests, upload_requests

from corral.upload.v1 import upload_service_pb2 as upload_pb2
from limits.conftest import LimitedStack, held_open, stored_files

LIMIT = 1000
SETTINGS = {"CORRAL_UPLOAD_MAX_BYTES": str(LIMIT)}


@pytest.fixture
def stack(limited_stack: LimitedStack) -> Stack:
    return limited_stack(upload_env=SETTINGS)


def assert_too_large(code: grpc.StatusCode | str, details: str, *words: str) -> None:
    name = code if isinstance(code, str) else code.name
    assert name == "RESOURCE_EXHAUSTED", details
    for text in (f"the limit is {LIMIT} bytes per upload (CORRAL_UPLOAD_MAX_BYTES)", *words):
        assert text in details, details


def refused_before_the_end(stack: Stack, messages: list[upload_pb2.UploadItemRequest],
                           ) -> grpc.RpcError:
    """The call's error while the client still holds the stream open: the service refused
    without waiting for the rest."""
    release = threading.Event()
    try:
        stack.uploads.UploadItem(held_open(messages, release), timeout=60)
    except grpc.RpcError as exc:
        return exc
    finally:
        release.set()
    raise AssertionError("the upload succeeded")


def test_a_declared_size_above_the_limit_is_refused_at_the_spec(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="big.bin", size=LIMIT + 1)
    error = refused_before_the_end(stack, [upload_pb2.UploadItemRequest(spec=spec)])
    assert_too_large(error.code(), error.details(), f"spec.size declares {LIMIT + 1} bytes")
    assert stack.items(dataset_id) == [] and stored_files(stack) == []


def test_an_undeclared_upload_is_cut_off_once_it_passes_the_limit(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="big.bin")
    messages = list(upload_requests(spec, b"x" * (3 * LIMIT), chunk=600, finish=False))
    error = refused_before_the_end(stack, messages)
    assert_too_large(error.code(), error.details(), "would hold 1200 bytes")
    assert stack.items(dataset_id) == [] and stored_files(stack) == []
    # Exactly the limit is allowed.
    exact = upload_requests(spec, b"x" * LIMIT, chunk=600)
    assert stack.uploads.UploadItem(exact, timeout=30).item.size == LIMIT


def test_resumable_sessions_are_limited_at_start_and_while_written(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    declared = upload_pb2.UploadSpec(dataset_id=dataset_id, name="big.bin", size=LIMIT + 1)
    with pytest.raises(grpc.RpcError) as caught:
        stack.uploads.StartResumableUpload(
            upload_pb2.StartResumableUploadRequest(spec=declared), timeout=10)
    assert_too_large(caught.value.code(), caught.value.details(), "spec.size declares")
    assert stored_files(stack) == []

    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="growing.bin")
    upload_id = stack.uploads.StartResumableUpload(
        upload_pb2.StartResumableUploadRequest(spec=spec), timeout=10).upload_id
    data = b"y" * (2 * LIMIT)
    first = stack.uploads.UploadItem(
        session_requests(upload_id, data[:800], chunk=400, finish=False), timeout=30)
    assert first.persisted_size == 800
    # The running total counts what earlier calls persisted.
    error = refused_before_the_end(stack, list(session_requests(upload_id, data, start=800,
                                                                chunk=400, finish=False)))
    assert_too_large(error.code(), error.details(), "would hold 1200 bytes")
    # A session that can never finish is removed with its data.
    with pytest.raises(grpc.RpcError) as caught:
        stack.uploads.QueryUploadStatus(
            upload_pb2.QueryUploadStatusRequest(upload_id=upload_id), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert stack.items(dataset_id) == [] and stored_files(stack) == []


def test_bulk_files_above_the_limit_fail_alone(stack: Stack) -> None:
    dataset_id = stack.create_dataset()

    def spec(name: str, **fields: int) -> upload_pb2.UploadSpec:
        return upload_pb2.UploadSpec(dataset_id=dataset_id, name=name, **fields)

    declared = bulk_file_messages(0, spec("declared.bin", size=LIMIT + 1), b"z" * (LIMIT + 1))
    undeclared = bulk_file_messages(1, spec("undeclared.bin"), b"z" * (2 * LIMIT), chunk=500)
    small = bulk_file_messages(2, spec("small.txt"), b"fits")
    results = {result.file_index: result
               for response in stack.uploads.UploadItems(iter(declared + undeclared + small),
                                                         timeout=60)
               for result in response.results}
    assert_too_large(results[0].error.code, results[0].error.message, "file_index 0",
                     "spec.size declares")
    assert_too_large(results[1].error.code, results[1].error.message, "undeclared.bin",
                     "would hold 1500 bytes")
    assert results[2].item.name == "small.txt"
    assert [item.name for item in stack.items(dataset_id)] == ["small.txt"]
    assert stored_files(stack) == [results[2].item.blob_key]


def test_csv_rows_above_the_limit_fail_alone(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    big, small = (base64.b64encode(b"q" * size).decode() for size in (LIMIT + 1, 10))
    csv = f"ID,image_bytes\nbig.bin,{big}\nsmall.bin,{small}\n".encode()
    spec = upload_pb2.ImportCsvSpec(dataset_id=dataset_id, csv_name="batch.csv")
    responses = list(stack.uploads.ImportCsv(
        iter([upload_pb2.ImportCsvRequest(spec=spec, data=csv)]), timeout=60))
    rows = {r.row.id: r.row for r in responses if r.HasField("row")}
    assert_too_large(rows["big.bin"].error.code, rows["big.bin"].error.message,
                     f"image_bytes holds {LIMIT + 1} bytes")
    assert rows["small.bin"].item.size == 10
    assert [item.name for item in stack.items(dataset_id)] == ["small.bin"]
    assert stored_files(stack) == [rows["small.bin"].item.blob_key]
