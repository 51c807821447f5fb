"""The properties every hostile example is held to: a clean status (never INTERNAL or UNKNOWN,
no stack trace or internal path in the message), nothing written when a request is refused,
and a service that is still healthy and answering afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import event

# What a refusal may say. INTERNAL and UNKNOWN are bugs; UNAVAILABLE or DEADLINE_EXCEEDED
# from a loopback server that was healthy a moment ago means it died or hung.
CLEAN_CODES = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.DATA_LOSS,
})
# Row errors of batches and CSV imports carry the code's name.
CLEAN_CODE_NAMES = frozenset(code.name for code in CLEAN_CODES)
# Text that only a leaked exception would put into a message.
ROOT = str(Path(__file__).resolve().parents[2])
LEAK_MARKERS = ("Traceback", 'File "', "site-packages", ROOT, ".py\"", ".py:",
                "sqlalchemy", "psycopg", "sqlite3.", "<class '", "Exception deserializing",
                "Exception iterating", "Exception calling application", "internal error")
TIMEOUT = 30.0


def assert_clean_message(message: str, inputs: Iterable[Any] = ()) -> None:
    """No marker of a leaked exception, unless the hostile input itself holds that text (a
    message may echo the offending value)."""
    echoed = " ".join(f"{value!s} {value!r}" for value in inputs)
    for marker in LEAK_MARKERS:
        assert marker not in message or marker in echoed, \
            f"leaked {marker!r} in {message[:500]!r}"


def assert_clean_error(error: grpc.RpcError, inputs: Iterable[Any] = ()) -> None:
    code, details = error.code(), error.details() or ""
    assert code in CLEAN_CODES, f"{code.name}: {details[:500]}"
    assert details, f"{code.name} without a message"
    assert_clean_message(details, inputs)


def assert_clean_row_error(code: str, message: str, inputs: Iterable[Any] = ()) -> None:
    """An ItemError of a batch entry or CSV row."""
    assert code in CLEAN_CODE_NAMES, f"{code}: {message[:500]}"
    assert_clean_message(message, inputs)


@dataclass
class Answer:
    """A call's response, or its (clean) error."""

    response: Any = None
    error: grpc.RpcError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.OK if self.error is None else self.error.code()


def attempt(call: Callable[[], Any], *inputs: Any) -> Answer:
    """Runs a call; a failure must be clean (see assert_clean_error). The outcome is counted
    in hypothesis's statistics (pytest --hypothesis-show-statistics)."""
    try:
        answer = Answer(response=call())
    except grpc.RpcError as error:
        assert_clean_error(error, inputs)
        answer = Answer(error=error)
    with contextlib.suppress(Exception):  # outside a hypothesis test there are no events
        event(answer.code.name)
    return answer


def raw_unary(channel: grpc.Channel, method: str, payload: bytes,
              response_type: Any) -> Callable[[], Any]:
    """A unary call of `method` whose request is `payload` as is: bytes no well-behaved client
    would send (invalid UTF-8 in a string, nesting beyond the protobuf limit)."""
    call = channel.unary_unary(method, request_serializer=lambda data: data,
                               response_deserializer=response_type.FromString)
    return lambda: call(payload, timeout=TIMEOUT)


def raw_stream(channel: grpc.Channel, method: str, payloads: list[bytes],
               response_type: Any) -> Callable[[], Any]:
    """A client-streaming call whose messages are `payloads` as they are."""
    call = channel.stream_unary(method, request_serializer=lambda data: data,
                                response_deserializer=response_type.FromString)
    return lambda: call(iter(payloads), timeout=TIMEOUT)


def with_invalid_utf8(message: Any, placeholder: str, bad: bytes) -> bytes:
    """`message` serialized, with the UTF-8 of `placeholder` (a string field's value) swapped
    for `bad`, a byte string of the same length that is not UTF-8."""
    encoded = placeholder.encode()
    assert len(encoded) == len(bad)
    data = message.SerializeToString()
    assert data.count(encoded) == 1
    return data.replace(encoded, bad)


def assert_serving(channel: grpc.Channel, probe: Callable[[], Any]) -> None:
    """Health says SERVING, and `probe` (an ordinary request) still succeeds."""
    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    probe()
