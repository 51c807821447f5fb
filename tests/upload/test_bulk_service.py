"""UploadItems (many files on one bidirectional stream) over real gRPC on loopback."""

from __future__ import annotations

import hashlib
import os
import queue
import time
from collections.abc import Iterable, Iterator

import grpc
import pytest

from corral.catalog.v1 import resources_pb2
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from upload.conftest import Stack, StackFactory
from upload.messages import bulk_file_messages, interleaved
from upload.test_upload_service import read_back, stored_blobs

Outcome = resources_pb2.CreateOutcome
Policy = resources_pb2.DuplicatePolicy
KIB = 1024


def spec_for(dataset_id: str, name: str, **fields) -> upload_pb2.UploadSpec:
    return upload_pb2.UploadSpec(dataset_id=dataset_id, remote_dir="/bulk", name=name, **fields)


def run_bulk(stack: Stack, messages: Iterable[upload_pb2.UploadItemsRequest],
             ) -> dict[int, upload_pb2.UploadItemsResult]:
    results: dict[int, upload_pb2.UploadItemsResult] = {}
    for response in stack.uploads.UploadItems(iter(messages), timeout=60):
        for result in response.results:
            assert result.file_index not in results, "one result per file"
            results[result.file_index] = result
    return results


def item_blobs(stack: Stack) -> list[str]:
    return [k for k in stored_blobs(stack) if k.startswith("items/")]


def leftovers(stack: Stack) -> list[str]:
    return [k for k in stored_blobs(stack) if k.startswith(".tmp")]


@pytest.fixture
def stack(stack_factory: StackFactory) -> Stack:
    return stack_factory()


def test_many_interleaved_files_on_one_stream(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    contents = {index: os.urandom(index * 37 * KIB + 5) for index in range(60)}
    # Multi-chunk files interleaved with each other, then many one-message files.
    large = [bulk_file_messages(i, spec_for(dataset_id, f"f{i}.bin"), contents[i], chunk=64 * KIB)
             for i in range(50, 60)]
    small = [bulk_file_messages(i, spec_for(dataset_id, f"f{i}.bin"), contents[i],
                                chunk=4 * 1024 * KIB) for i in range(50)]
    results = run_bulk(stack, [*interleaved(*large), *(m for f in small for m in f)])

    assert sorted(results) == list(range(60))
    for index, response in results.items():
        assert not response.HasField("error"), response.error
        assert response.outcome == Outcome.CREATE_OUTCOME_CREATED
        assert response.item.filename == f"/bulk/f{index}.bin"
        assert response.item.sha256 == hashlib.sha256(contents[index]).hexdigest()
    for index in (0, 7, 55, 59):
        assert read_back(stack, results[index].item.id) == contents[index]
    assert len(stack.items(dataset_id)) == 60
    assert len(item_blobs(stack)) == 60 and not leftovers(stack)


def test_bad_files_get_errors_and_the_stream_goes_on(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    data = os.urandom(100 * KIB)
    good = [bulk_file_messages(i, spec_for(dataset_id, f"ok{i}.bin"), data) for i in range(6)]
    bad_crc = bulk_file_messages(10, spec_for(dataset_id, "crc.bin"), data, chunk=32 * KIB)
    bad_crc[1].crc32c ^= 1
    bad_sha = bulk_file_messages(11, spec_for(dataset_id, "sha.bin"), data, chunk=32 * KIB)
    bad_sha[-1].sha256 = "0" * 64
    bad_offset = bulk_file_messages(12, spec_for(dataset_id, "offset.bin"), data, chunk=32 * KIB)
    bad_offset[2].write_offset += 1
    bad_name = bulk_file_messages(13, spec_for(dataset_id, "a/b"), data)
    no_dataset = bulk_file_messages(14, spec_for("0" * 32, "x.bin"), data)
    no_spec = bulk_file_messages(15, None, data)
    bad_size = bulk_file_messages(16, spec_for(dataset_id, "size.bin", size=10), data)
    unfinished = bulk_file_messages(17, spec_for(dataset_id, "open.bin"), data, finish=False)
    messages = [*good[0], *interleaved(bad_crc, good[1], bad_sha, bad_offset), *bad_name,
                *good[2], *no_dataset, *no_spec, *good[3], *bad_size, *good[4], *unfinished,
                *good[5]]
    results = run_bulk(stack, messages)

    assert sorted(results) == [*range(6), *range(10, 18)]
    for index in range(6):
        assert results[index].outcome == Outcome.CREATE_OUTCOME_CREATED
    codes = {index: results[index].error.code for index in range(10, 18)}
    assert codes == {10: "DATA_LOSS", 11: "DATA_LOSS", 12: "INVALID_ARGUMENT",
                     13: "INVALID_ARGUMENT", 14: "NOT_FOUND", 15: "INVALID_ARGUMENT",
                     16: "INVALID_ARGUMENT", 17: "INVALID_ARGUMENT"}
    assert "/bulk/crc.bin" in results[10].error.message
    assert "spec.name" in results[13].error.message
    assert "finish_write" in results[17].error.message
    assert len(stack.items(dataset_id)) == 6
    assert len(item_blobs(stack)) == 6 and not leftovers(stack)


def test_duplicate_policies_and_request_id_replay(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    first, second = b"first" * 1000, b"second" * 1000
    names = ("skip.bin", "fail.bin", "over.bin", "retried.bin")
    created = run_bulk(stack, [
        m for i, name in enumerate(names)
        for m in bulk_file_messages(i, spec_for(dataset_id, name, request_id=f"r-{name}"),
                                    first)])
    assert all(r.outcome == Outcome.CREATE_OUTCOME_CREATED for r in created.values())

    again = run_bulk(stack, [
        *bulk_file_messages(0, spec_for(dataset_id, "skip.bin"), second),
        *bulk_file_messages(1, spec_for(dataset_id, "fail.bin",
                                        duplicate_policy=Policy.DUPLICATE_POLICY_FAIL), second),
        *bulk_file_messages(2, spec_for(dataset_id, "over.bin",
                                        duplicate_policy=Policy.DUPLICATE_POLICY_OVERWRITE),
                            second),
        # A retried file (same request_id, e.g. after a lost reply): the first result.
        *bulk_file_messages(3, spec_for(dataset_id, "retried.bin", request_id="r-retried.bin",
                                        duplicate_policy=Policy.DUPLICATE_POLICY_FAIL), first),
    ])
    assert again[0].outcome == Outcome.CREATE_OUTCOME_SKIPPED
    assert again[0].item.id == created[0].item.id
    assert again[1].error.code == "ALREADY_EXISTS"
    assert again[2].outcome == Outcome.CREATE_OUTCOME_OVERWRITTEN
    assert read_back(stack, again[2].item.id) == second
    assert again[3].item.id == created[3].item.id
    assert read_back(stack, created[0].item.id) == first
    assert len(stack.items(dataset_id)) == 4
    assert len(item_blobs(stack)) == 4 and not leftovers(stack)


def test_cancelling_mid_stream_keeps_only_finished_files(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    data = os.urandom(200 * KIB)
    outbox: queue.Queue[upload_pb2.UploadItemsRequest | None] = queue.Queue()

    def requests() -> Iterator[upload_pb2.UploadItemsRequest]:
        while (message := outbox.get()) is not None:
            yield message

    call = stack.uploads.UploadItems(requests(), timeout=60)
    for index in range(3):
        for message in bulk_file_messages(index, spec_for(dataset_id, f"done{index}"), data):
            outbox.put(message)
    # Two files half sent: their bytes reach the service's temp files.
    half = [bulk_file_messages(i, spec_for(dataset_id, f"half{i}"), data, chunk=64 * KIB)
            for i in (10, 11)]
    for message in [*half[0][:2], *half[1][:2]]:
        outbox.put(message)
    finished: set[int] = set()
    for response in call:
        finished.update(result.file_index for result in response.results)
        if len(finished) == 3:
            break
    assert finished == {0, 1, 2}
    call.cancel()
    outbox.put(None)

    assert sorted(i.name for i in stack.items(dataset_id)) == ["done0", "done1", "done2"]
    deadline = time.monotonic() + 20
    while (leftovers(stack) or len(item_blobs(stack)) != 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leftovers(stack) and len(item_blobs(stack)) == 3


def test_too_many_open_files_end_the_stream(stack_factory: StackFactory) -> None:
    stack = stack_factory(upload_env={"CORRAL_UPLOAD_BULK_MAX_OPEN_FILES": "2",
                                      "CORRAL_UPLOAD_BULK_MAX_FINISHING_FILES": "1"})
    dataset_id = stack.create_dataset()
    data = os.urandom(50 * KIB)
    # One finishing slot: the service reads on only as files complete, and all complete.
    results = run_bulk(stack, [m for i in range(20)
                               for m in bulk_file_messages(i, spec_for(dataset_id, f"s{i}"),
                                                           data)])
    assert len(results) == 20 and not any(r.HasField("error") for r in results.values())

    files = [bulk_file_messages(i, spec_for(dataset_id, f"open{i}"), data, chunk=16 * KIB)
             for i in range(3)]
    with pytest.raises(grpc.RpcError) as info:
        run_bulk(stack, interleaved(*files))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "more than 2 files open" in info.value.details()
    assert len(stack.items(dataset_id)) == 20
    assert not leftovers(stack)


def test_batched_messages_are_handled_as_if_sent_alone(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    contents = {i: os.urandom(20 * KIB + i) for i in range(12)}
    files = [bulk_file_messages(i, spec_for(dataset_id, f"b{i}.bin"), contents[i])
             for i in range(12)]
    files[5][-1].sha256 = "0" * 64  # fails alone, inside a batch
    contents[20] = os.urandom(64 * KIB)
    big = bulk_file_messages(20, spec_for(dataset_id, "big.bin"), contents[20], chunk=16 * KIB)
    # A multi-chunk file whose chunks are spread over two messages' batches, between others.
    first = files[0][0]
    first.batched.extend([*(m for f in files[1:6] for m in f), *big[:2]])
    second = big[2]
    second.batched.extend([*big[3:], *(m for f in files[6:] for m in f)])
    call = stack.uploads.UploadItems(iter([first, second]), timeout=60)
    results = {r.file_index: r for response in call for r in response.results}

    assert ("corral-upload-batched", "1") in [tuple(h) for h in call.initial_metadata()]
    assert sorted(results) == [*range(12), 20]
    assert results[5].error.code == "DATA_LOSS"
    for index in [*range(5), *range(6, 12), 20]:
        assert results[index].item.sha256 == hashlib.sha256(contents[index]).hexdigest()
    assert read_back(stack, results[20].item.id) == contents[20]
    assert len(stack.items(dataset_id)) == 12
    assert len(item_blobs(stack)) == 12 and not leftovers(stack)


def test_a_batched_message_may_not_nest_batches(stack: Stack) -> None:
    dataset_id = stack.create_dataset()
    data = os.urandom(KIB)
    first = bulk_file_messages(0, spec_for(dataset_id, "n0"), data)[0]
    inner = bulk_file_messages(1, spec_for(dataset_id, "n1"), data)[0]
    inner.batched.extend(bulk_file_messages(2, spec_for(dataset_id, "n2"), data))
    first.batched.append(inner)
    results: dict[int, upload_pb2.UploadItemsResult] = {}
    with pytest.raises(grpc.RpcError) as info:
        for response in stack.uploads.UploadItems(iter([first]), timeout=60):
            results.update({r.file_index: r for r in response.results})
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "may not carry batched" in info.value.details()
    # The file before the bad message was finishing: it completes and is reported first.
    assert sorted(results) == [0] and not results[0].HasField("error")
    assert len(stack.items(dataset_id)) == 1 and not leftovers(stack)
