"""Every call one service makes to another has a deadline: with a catalog that never answers
(a gRPC server whose handlers hang, or a socket that accepts and never speaks), the upload
service answers DEADLINE_EXCEEDED or UNAVAILABLE naming the catalog, and writes nothing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from testkeys import SERVICE_KEY
from upload.messages import bulk_file_messages

from corral.credentials import Credentials
from corral.preprocess.v1 import preprocess_service_pb2 as pre_pb
from corral.preprocess.v1 import preprocess_service_pb2_grpc as pre_grpc
from corral.rpc import open_channel
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from corral.upload.v1 import upload_service_pb2_grpc

TIMEOUTS = {"CORRAL_UPLOAD_CATALOG_TIMEOUT_SECONDS": "1",
            "CORRAL_PREPROCESS_CATALOG_TIMEOUT_SECONDS": "1"}
DATASET_ID = "0" * 32


class _Hang(grpc.GenericRpcHandler):
    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def service(self, handler_call_details):
        def hang(request, context):
            self.release.wait(60)
            context.abort(grpc.StatusCode.UNAVAILABLE, "released")

        return grpc.unary_unary_rpc_method_handler(hang)


@pytest.fixture
def hanging_catalog() -> Iterator[str]:
    """A gRPC server on loopback whose every unary call hangs."""
    release = threading.Event()
    server = grpc.server(ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((_Hang(release),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    release.set()
    server.stop(0)


@pytest.fixture
def silent_catalog() -> Iterator[str]:
    """A socket that accepts connections (the kernel does, from the backlog) and never speaks."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def stored_files(data_dir: Path) -> list[str]:
    blobs = data_dir / "blobs"
    return sorted(str(p.relative_to(blobs)) for p in blobs.rglob("*") if p.is_file()) \
        if blobs.exists() else []


def assert_catalog_timed_out(code: str, details: str, catalog_addr: str) -> None:
    assert code in ("DEADLINE_EXCEEDED", "UNAVAILABLE"), (code, details)
    # The upload service's own answer, not this client's deadline.
    assert f"catalog at {catalog_addr}" in details, details


@pytest.mark.parametrize("catalog_kind", ["hanging_catalog", "silent_catalog"])
def test_uploads_fail_within_the_catalog_deadline_and_write_nothing(
        service_factory, tmp_path: Path, request, catalog_kind: str) -> None:
    catalog_addr = request.getfixturevalue(catalog_kind)
    data_dir = tmp_path / "data"
    upload = service_factory("upload", env={**TIMEOUTS, "CORRAL_CATALOG_ADDR": catalog_addr,
                                            "CORRAL_DATA_DIR": str(data_dir)})
    spec = upload_pb2.UploadSpec(dataset_id=DATASET_ID, name="a.bin")
    # The service key is checked by the upload service itself: a user's key would need the
    # catalog to authenticate it, and the call would end there (UNAVAILABLE, no upload).
    with open_channel(upload.addr, Credentials(api_key=SERVICE_KEY)) as channel:
        uploads = upload_service_pb2_grpc.UploadServiceStub(channel)
        # The client's deadline is far longer than the service's, so the answer is the
        # service's own.
        with pytest.raises(grpc.RpcError) as caught:
            uploads.UploadItem(iter([upload_pb2.UploadItemRequest(
                spec=spec, data=b"abc", finish_write=True)]), timeout=60)
        assert_catalog_timed_out(caught.value.code().name, caught.value.details(), catalog_addr)

        with pytest.raises(grpc.RpcError) as caught:
            uploads.StartResumableUpload(upload_pb2.StartResumableUploadRequest(spec=spec),
                                         timeout=60)
        assert_catalog_timed_out(caught.value.code().name, caught.value.details(), catalog_addr)

        results = [result for response in uploads.UploadItems(
            iter(bulk_file_messages(0, spec, b"abc")), timeout=60) for result in response.results]
        assert len(results) == 1
        assert_catalog_timed_out(results[0].error.code, results[0].error.message, catalog_addr)

        with pytest.raises(grpc.RpcError) as caught:
            list(uploads.Download(upload_pb2.DownloadRequest(item_id="1" * 32), timeout=60))
        assert_catalog_timed_out(caught.value.code().name, caught.value.details(), catalog_addr)

        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                           timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert stored_files(data_dir) == []


def test_preprocess_stats_answer_while_the_catalog_hangs(service_factory,
                                                         hanging_catalog: str) -> None:
    preprocess = service_factory("preprocess", env={**TIMEOUTS,
                                                    "CORRAL_CATALOG_ADDR": hanging_catalog})
    with open_channel(preprocess.addr, Credentials(api_key=SERVICE_KEY)) as channel:
        stats = pre_grpc.PreprocessServiceStub(channel).GetStats(pre_pb.GetStatsRequest(),
                                                                 timeout=30)
    assert stats.processed == 0 and stats.pool_processes >= 1
