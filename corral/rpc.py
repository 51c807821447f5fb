"""Client-side gRPC helpers shared by the SDK and by services that call one another."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc

from corral.errors import CorralError, error_for_code

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# While a call is open (a subscription may be quiet for hours), ping after 30 s without
# traffic and drop the connection if the ping is not answered within 10 s: a peer that
# vanished (host down, network cut) then ends the call instead of leaving it hanging.
# corral's servers accept pings this often (services.common.limits).
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
