"""Server-wide limits, in one place for every service (README "Limits"):

- `server_options`: the largest message (gRPC itself answers RESOURCE_EXHAUSTED) and HTTP/2
  keepalive, so connections to dead peers are closed and their calls end;
- `ConcurrencyLimit`: at most N calls at once, streams included, RESOURCE_EXHAUSTED beyond;
  health checks are exempt, so a busy service is not restarted by its orchestrator;
- `RequestGuard`: a request protobuf cannot parse (e.g. nested past its recursion limit of 100)
  is INVALID_ARGUMENT instead of gRPC's UNKNOWN, and a client or bidirectional stream that sends
  nothing for `stream_idle_seconds` ends with DEADLINE_EXCEEDED. The handler sees the idle
  timeout as a domain error raised by its request iterator, so its usual cleanup runs: a
  one-call upload leaves nothing, a resumable one keeps what it persisted.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from corral.errors import DeadlineExceeded, InvalidArgument
from services.common.handlers import Behavior, rewrap
from services.common.limit_settings import (
    MAX_CONCURRENT_RPCS_ENV,
    STREAM_IDLE_ENV,
    ServerLimits,
)

HEALTH_METHOD_PREFIX = "/grpc.health.v1.Health/"
# Ping every connection that was quiet for 30 s; close it if the ping is not answered in 10 s.
KEEPALIVE_SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Clients (ours: corral.rpc.KEEPALIVE_OPTIONS) may ping every 10 s, also on quiet streams
    # such as subscriptions; gRPC's default would answer them with GOAWAY (too_many_pings).
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
]


def server_options(limits: ServerLimits) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        ("grpc.max_send_message_length", limits.max_message_bytes),
        *KEEPALIVE_SERVER_OPTIONS,
    ]


def limit_interceptors(limits: ServerLimits) -> list[grpc.aio.ServerInterceptor]:
    """Outermost first: a refused call costs nothing else."""
    return [ConcurrencyLimit(limits.max_concurrent_rpcs),
            RequestGuard(limits.stream_idle_seconds)]




def _around(behavior: Behavior, before: Callable[[Any, grpc.aio.ServicerContext], Any],
            after: Callable[[], None] | None = None) -> Behavior:
    """Runs `await before(request, context)` (which returns the request to pass on) first and
    `after()` when the call ends however it ends, for coroutine and async generator
    handlers alike (streaming handlers are either)."""
    if inspect.isasyncgenfunction(behavior):
        async def stream_wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            request = await before(request, context)
            try:
                async for response in behavior(request, context):
                    yield response
            finally:
                if after is not None:
                    after()

        return stream_wrapper

    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        request = await before(request, context)
        try:
            return await behavior(request, context)
        finally:
            if after is not None:
                after()

    return wrapper


class ConcurrencyLimit(grpc.aio.ServerInterceptor):
    """Counts the calls in progress (a stream counts until it ends, however it ends)."""

    def __init__(self, max_calls: int) -> None:
        self.max_calls = max_calls
        self.in_flight = 0

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(HEALTH_METHOD_PREFIX):
            return handler
        return rewrap(handler, self._limited)

    def _limited(self, behavior: Behavior, request_streaming: bool) -> Behavior:
        async def admit(request: Any, context: grpc.aio.ServicerContext) -> Any:
            # One event loop runs every call: no lock needed between the check and the count.
            if self.in_flight >= self.max_calls:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    f"service busy: {self.in_flight} concurrent calls, the "
                                    f"limit is {self.max_calls} ({MAX_CONCURRENT_RPCS_ENV}); "
                                    "retry with backoff")
            self.in_flight += 1
            return request

        def release() -> None:
            self.in_flight -= 1

        return _around(behavior, admit, release)


class _Undecodable:
    """Stands for a request message that could not be parsed."""

    def __init__(self, error: DecodeError) -> None:
        self.error = error


def _decode_failure(method: str, undecodable: _Undecodable) -> InvalidArgument:
    text = str(undecodable.error)
    if "MaxDepth" in text or "too deep" in text.lower() or "recursion" in text.lower():
        return InvalidArgument(
            f"the {method} request nests messages deeper than protobuf's recursion limit of "
            "100 (about 32 levels of JSON in a google.protobuf.Struct; metadata may nest at "
            "most CORRAL_CATALOG_MAX_METADATA_DEPTH levels)")
    return InvalidArgument(f"the {method} request is not a valid protobuf message: {text}")


class RequestGuard(grpc.aio.ServerInterceptor):
    """Undecodable requests -> INVALID_ARGUMENT; idle request streams -> DEADLINE_EXCEEDED."""

    def __init__(self, stream_idle_seconds: float) -> None:
        self.idle_seconds = stream_idle_seconds

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        parse = handler.request_deserializer

        def deserialize(raw: bytes) -> Any:
            try:
                return parse(raw) if parse is not None else raw
            except DecodeError as exc:
                return _Undecodable(exc)

        def wrap(behavior: Behavior, request_streaming: bool) -> Behavior:
            async def check(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if request_streaming:
                    return self._guarded(request, method)
                if isinstance(request, _Undecodable):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                        _decode_failure(method, request).message)
                return request

            return _around(behavior, check)

        return rewrap(handler, wrap, deserialize)

    async def _guarded(self, requests: AsyncIterable[Any], method: str) -> AsyncIterator[Any]:
        messages = aiter(requests)
        watch = _IdleWatch(self.idle_seconds) if self.idle_seconds else None
        try:
            while True:
                try:
                    if watch is not None:
                        watch.start_waiting()
                    message = await anext(messages)
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    if watch is None or not watch.expired:
                        raise
                    task = asyncio.current_task()
                    if task is not None and task.uncancel() > 0:
                        raise  # cancelled for another reason as well
                    raise DeadlineExceeded(
                        f"no message for {self.idle_seconds:g} s ({STREAM_IDLE_ENV}): the "
                        "stream was idle too long; send messages more often or resume") from None
                finally:
                    if watch is not None:
                        watch.stop_waiting()
                if isinstance(message, _Undecodable):
                    raise _decode_failure(method, message)
                yield message
        finally:
            if watch is not None:
                watch.close()


class _IdleWatch:
    """Cancels the task waiting for a stream's next message once it has waited `seconds`.
    Only waiting counts: a handler that stops reading (back-pressure) also stops the client,
    through HTTP/2 flow control. One timer per stream, re-armed only when it fires, so a
    message costs a clock read rather than a timer (asyncio.timeout per message costs ~5 us)."""

    def __init__(self, seconds: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.seconds = seconds
        self.waiter: asyncio.Task[Any] | None = None
        self.since = 0.0
        self.expired = False
        self._timer: asyncio.TimerHandle | None = None

    def start_waiting(self) -> None:
        self.waiter, self.since = asyncio.current_task(), self.loop.time()
        if self._timer is None:
            self._timer = self.loop.call_at(self.since + self.seconds, self._check)

    def stop_waiting(self) -> None:
        self.waiter = None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self.waiter is None:
            return  # armed again by the next wait
        due = self.since + self.seconds
        if self.loop.time() + 0.001 >= due:  # timers may fire a clock tick early
            self.expired = True
            self.waiter.cancel()
        else:
            self._timer = self.loop.call_at(due, self._check)
