"""Upload retries, with the upload stub replaced: no server involved."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import grpc
import pytest

from corral.catalog.v1 import resources_pb2
from corral.client import Client
from corral.errors import InvalidArgument, Unavailable
from corral.upload.v1 import upload_service_pb2


class _Unavailable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "connection reset"


class FlakyUploads:
    """Fails the first `failures` calls after reading the whole stream, then stores it."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.request_ids: list[str] = []

    def UploadItem(self, requests):  # noqa: N802  (the gRPC method name)
        messages = list(requests)
        self.request_ids.append(messages[0].spec.request_id)
        if self.failures:
            self.failures -= 1
            raise _Unavailable()
        data = b"".join(m.data for m in messages)
        item = resources_pb2.Item(id="a" * 32, filename="/x.bin", size=len(data),
                                  sha256=hashlib.sha256(data).hexdigest())
        return upload_service_pb2.UploadItemResponse(
            item=item, outcome=resources_pb2.CREATE_OUTCOME_CREATED)


@pytest.fixture
def offline_client() -> Iterator[Client]:
    client = Client("127.0.0.1:9", "127.0.0.1:9", "127.0.0.1:9")
    yield client
    client.close()


def test_an_unavailable_upload_is_retried_with_the_same_request_id(
        offline_client: Client) -> None:
    offline_client._upload = FlakyUploads(failures=2)
    result = offline_client.upload_bytes(b"payload", {"id": "d" * 32}, "x.bin", chunk_size=3)
    assert result.outcome == "created"
    ids = offline_client._upload.request_ids
    assert len(ids) == 3 and len(set(ids)) == 1 and ids[0]


def test_retries_give_up_after_three_attempts(offline_client: Client) -> None:
    offline_client._upload = FlakyUploads(failures=5)
    with pytest.raises(Unavailable, match="connection reset"):
        offline_client.upload_bytes(b"payload", {"id": "d" * 32}, "x.bin")


def test_bad_arguments_fail_before_anything_is_sent(offline_client: Client) -> None:
    offline_client._upload = FlakyUploads(failures=0)
    for kwargs in ({"name": "a/b"}, {"name": "x", "remote_dir": "/../up"},
                   {"name": "x", "on_exists": "replace"}):
        with pytest.raises(InvalidArgument):
            offline_client.upload_bytes(b"x", {"id": "d" * 32}, **kwargs)
    assert offline_client._upload.request_ids == []


def test_a_one_message_upload_is_retried_as_a_unary_call(offline_client: Client) -> None:
    """A file that fits in one chunk goes as a unary call (no request-stream thread); its
    retries keep the same request_id, and the stream stub is not used."""
    flaky = FlakyUploads(failures=2)
    offline_client._upload_single = lambda request: flaky.UploadItem([request])
    result = offline_client.upload_bytes(b"payload", {"id": "d" * 32}, "x.bin")
    assert result.outcome == "created" and result.item["size"] == len(b"payload")
    assert len(flaky.request_ids) == 3 and len(set(flaky.request_ids)) == 1
