"""Client-side gRPC helpers shared by the SDK and by services that call one another."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from corral.credentials import Credentials, TlsFiles
from corral.errors import CorralError, error_for_code

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# While a call is open (a subscription may be quiet for hours), ping after 30 s without
# traffic and drop the connection if the ping is not answered within 10 s: a peer that
# vanished (host down, network cut) then ends the call instead of leaving it hanging.
# corral's servers accept pings this often (services.common.limits).
# Response header of an UploadItems stream whose server reads UploadItemsRequest.batched
# (several messages in one); clients send batched messages only after seeing it.
UPLOAD_BATCHED_HEADER = ("corral-upload-batched", "1")

KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
]
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    *KEEPALIVE_OPTIONS,
]


def translate(exc: grpc.RpcError) -> CorralError:
    """The CorralError for a failed call (sync or aio), keeping the server's message."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return error_for_code(code.name if code else "UNKNOWN", details or (code.name if code else ""))


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raises a failed call's grpc.RpcError as the matching CorralError."""
    try:
        yield
    except grpc.RpcError as exc:
        raise translate(exc) from exc


MetadataSource = Callable[[], tuple[tuple[str, str], ...]]


def _with_metadata(existing: Any, extra: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [*(tuple(pair) for pair in (existing or ())), *extra]


class SyncHeaders(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                  grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds headers (from `headers()`, asked per call) to every call of a sync channel."""

    def __init__(self, headers: MetadataSource) -> None:
        self._headers = headers

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(details.method, details.timeout,
                            _with_metadata(details.metadata, self._headers()),
                            details.credentials, details.wait_for_ready,
                            getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method: str, timeout: float | None, metadata: Any, credentials: Any,
                 wait_for_ready: bool | None, compression: Any) -> None:
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = \
            credentials, wait_for_ready, compression


def _aio_details(details: grpc.aio.ClientCallDetails,
                 headers: MetadataSource) -> grpc.aio.ClientCallDetails:
    return grpc.aio.ClientCallDetails(details.method, details.timeout,
                                      grpc.aio.Metadata(*_with_metadata(details.metadata,
                                                                        headers())),
                                      details.credentials, details.wait_for_ready)


class _AioUnaryUnaryHeaders(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, headers: MetadataSource) -> None:
        self._headers = headers

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(_aio_details(client_call_details, self._headers), request)


class _AioUnaryStreamHeaders(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, headers: MetadataSource) -> None:
        self._headers = headers

    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(_aio_details(client_call_details, self._headers), request)


class _AioStreamUnaryHeaders(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, headers: MetadataSource) -> None:
        self._headers = headers

    async def intercept_stream_unary(self, continuation, client_call_details,
                                     request_iterator):
        return await continuation(_aio_details(client_call_details, self._headers),
                                  request_iterator)


class _AioStreamStreamHeaders(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, headers: MetadataSource) -> None:
        self._headers = headers

    async def intercept_stream_stream(self, continuation, client_call_details,
                                      request_iterator):
        return await continuation(_aio_details(client_call_details, self._headers),
                                  request_iterator)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _tls_options(tls: TlsFiles) -> list[tuple[str, Any]]:
    return [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []


def channel_credentials(tls: TlsFiles) -> grpc.ChannelCredentials:
    """Verifies the server against `tls.ca` (the system's roots when none is given);
    presents a client certificate when given."""
    tls.check()
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca) if tls.ca else None,
        private_key=_read(tls.key) if tls.key else None,
        certificate_chain=_read(tls.cert) if tls.cert else None)


def header_source(credentials: Credentials,
                  dynamic: MetadataSource | None = None) -> MetadataSource:
    static = credentials.metadata()
    if dynamic is None:
        return lambda: static
    return lambda: static + dynamic()


def open_channel(addr: str, credentials: Credentials | None = None,
                 options: list[tuple[str, Any]] | None = None) -> grpc.Channel:
    """A sync channel to `addr` carrying `credentials` (default: from the environment) on
    every call; TLS when the credentials name a CA."""
    credentials = credentials if credentials is not None else Credentials.from_env()
    all_options = [*(options if options is not None else CHANNEL_OPTIONS),
                   *_tls_options(credentials.tls)]
    if credentials.tls.enabled:
        channel = grpc.secure_channel(addr, channel_credentials(credentials.tls),
                                      options=all_options)
    else:
        channel = grpc.insecure_channel(addr, options=all_options)
    return grpc.intercept_channel(channel, SyncHeaders(header_source(credentials)))


def open_aio_channel(addr: str, credentials: Credentials | None = None,
                     options: list[tuple[str, Any]] | None = None,
                     dynamic: MetadataSource | None = None) -> grpc.aio.Channel:
    """The grpc.aio form of open_channel; `dynamic` adds per-call headers (the services use
    it to name the project and role of the user they act for)."""
    credentials = credentials if credentials is not None else Credentials.from_env()
    headers = header_source(credentials, dynamic)
    interceptors = [_AioUnaryUnaryHeaders(headers), _AioUnaryStreamHeaders(headers),
                    _AioStreamUnaryHeaders(headers), _AioStreamStreamHeaders(headers)]
    all_options = [*(options if options is not None else CHANNEL_OPTIONS),
                   *_tls_options(credentials.tls)]
    if credentials.tls.enabled:
        return grpc.aio.secure_channel(addr, channel_credentials(credentials.tls),
                                       options=all_options, interceptors=interceptors)
    return grpc.aio.insecure_channel(addr, options=all_options, interceptors=interceptors)
