"""Limits every server enforces in services.common: message size (all three services) and the
cap on concurrent calls, with health checks exempt."""

from __future__ import annotations

import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from testkeys import SERVICE_KEY
from upload.waiting import wait_for

from corral.credentials import Credentials
from corral.rpc import open_channel
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from corral.upload.v1 import upload_service_pb2_grpc
from limits.conftest import LimitedStack, held_open, stored_files

SMALL_MESSAGES = {"CORRAL_MAX_MESSAGE_BYTES": "65536"}
# A unary method of each service; the payload's size is checked before it is parsed.
UNARY_METHODS = {
    "catalog": "/corral.catalog.v1.CatalogService/GetDataset",
    "upload": "/corral.upload.v1.UploadService/QueryUploadStatus",
    "preprocess": "/corral.preprocess.v1.PreprocessService/GetStats",
}


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out) + bytes([value])


def unknown_field(size: int) -> bytes:
    """A message holding only an unknown bytes field (number 15) of `size` bytes: valid
    protobuf that every request type ignores."""
    return b"\x7a" + varint(size) + b"x" * size


def raw_call(addr: str, method: str, payload: bytes) -> grpc.RpcError | bytes:
    """Sends `payload` as the request as it is; the client allows 16 MiB either way."""
    with open_channel(addr) as channel:
        try:
            return channel.unary_unary(method)(payload, timeout=30)
        except grpc.RpcError as exc:
            return exc


def test_every_service_refuses_messages_above_its_limit(service_factory, tmp_path) -> None:
    catalog = service_factory("catalog", env=SMALL_MESSAGES)
    to_catalog = {**SMALL_MESSAGES, "CORRAL_CATALOG_ADDR": catalog.addr}
    services = {"catalog": catalog, "upload": service_factory("upload", env=to_catalog),
                "preprocess": service_factory("preprocess", env=to_catalog)}
    for name, service in services.items():
        refused = raw_call(service.addr, UNARY_METHODS[name], unknown_field(100_000))
        assert isinstance(refused, grpc.RpcError), name
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (name, refused.details())
        assert "65536" in refused.details(), refused.details()
        # Just under the limit passes the size check (whatever the method makes of it).
        fits = raw_call(service.addr, UNARY_METHODS[name], unknown_field(60_000))
        assert not isinstance(fits, grpc.RpcError) or fits.code() not in (
            grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNKNOWN), fits.details()


def test_an_upload_chunk_above_the_message_limit_stores_nothing(
        limited_stack: LimitedStack) -> None:
    stack = limited_stack(env=SMALL_MESSAGES)
    dataset_id = stack.create_dataset()
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="big.bin")
    messages = [upload_pb2.UploadItemRequest(spec=spec, data=b"x" * 100_000,
                                             finish_write=True)]
    try:
        stack.uploads.UploadItem(iter(messages), timeout=30)
        raise AssertionError("a 100 KB message was accepted")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.details()
    assert stack.items(dataset_id) == [] and stored_files(stack) == []


def test_calls_beyond_the_cap_are_refused_and_health_checks_are_not(
        limited_stack: LimitedStack) -> None:
    stack = limited_stack(upload_env={"CORRAL_MAX_CONCURRENT_RPCS": "2"})
    # The service key is checked by the upload service itself, and a bulk stream whose only
    # file has no spec waits without asking the catalog: the slots are held by this test alone.
    channel = open_channel(stack.upload.addr, Credentials(api_key=SERVICE_KEY))
    uploads = upload_service_pb2_grpc.UploadServiceStub(channel)
    release = threading.Event()
    no_spec = upload_pb2.UploadItemsRequest(file_index=0, finish_write=True)
    streams: list = []
    query = upload_pb2.QueryUploadStatusRequest(upload_id="0" * 32)

    def answer() -> grpc.StatusCode:
        for stream in streams[1:] if streams[0].cancelled() else streams:
            assert stream.is_active(), f"a held stream ended: {stream.code()} {stream.details()}"
        try:
            uploads.QueryUploadStatus(query, timeout=10)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                assert "service busy: 2 concurrent calls" in exc.details(), exc.details()
                assert "(CORRAL_MAX_CONCURRENT_RPCS)" in exc.details(), exc.details()
            return exc.code()
        raise AssertionError("an unknown upload_id was found")

    try:
        for _ in range(2):
            streams.append(uploads.UploadItems(held_open([no_spec], release), timeout=60))
            # That file's error comes back while the stream stays open: the call was admitted.
            assert next(streams[-1]).results[0].error.code == "INVALID_ARGUMENT"
        assert answer() == grpc.StatusCode.RESOURCE_EXHAUSTED
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                           timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        streams[0].cancel()
        # Admitted (and answered) once a stream ended.
        wait_for(lambda: answer() == grpc.StatusCode.NOT_FOUND, "a call to be admitted")
    finally:
        release.set()
        for stream in streams:
            stream.cancel()
        channel.close()

