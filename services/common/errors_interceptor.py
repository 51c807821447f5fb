"""Turns domain errors (corral.errors) into gRPC statuses in one place.

Unexpected exceptions are logged with their traceback and answered INTERNAL with a short
reference, never with the traceback itself. A request that does not parse (invalid UTF-8,
nesting past protobuf's limit) is INVALID_ARGUMENT, and messages are kept short enough for
the status trailer.
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from corral.errors import CorralError, InvalidArgument

log = logging.getLogger("corral.rpc")

# Status messages travel in a trailer that clients refuse above 8-16 KiB (percent-encoded, so a
# non-ASCII character can take 12 bytes): a message echoing a huge hostile value would reach the
# client as RESOURCE_EXHAUSTED "received metadata size exceeds ..." instead of the real error.
MAX_MESSAGE_CHARS = 500


def status_message(message: str) -> str:
    """The message, shortened to MAX_MESSAGE_CHARS characters."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[:MAX_MESSAGE_CHARS - 15] + "... (truncated)"


async def _abort_for(exc: Exception, context: grpc.aio.ServicerContext, method: str) -> None:
    if isinstance(exc, CorralError):
        await context.abort(getattr(grpc.StatusCode, exc.code), status_message(exc.message))
    ref = uuid.uuid4().hex[:12]
    log.error("unhandled error", exc_info=exc, extra={"method": method, "ref": ref})
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (ref {ref})")


class _Undecodable:
    """Stands in for a request message that did not parse (invalid UTF-8 in a string,
    nesting beyond protobuf's depth limit, garbage bytes), so the call can answer
    INVALID_ARGUMENT; grpc itself would answer UNKNOWN with the exception's class name."""

    def __init__(self, error: Exception) -> None:
        text = str(error)
        if "UTF-8" in text:
            reason = "a string field is not valid UTF-8"
        elif "Depth" in text or "depth" in text:
            reason = ("it nests too deeply (protobuf decodes at most 100 levels of messages; "
                      "each level of a metadata object takes 3)")
        else:
            reason = "its bytes do not parse as the method's request message"
        self.message = f"the request is not a valid protobuf message: {reason}"


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError, or whatever a deserializer raises
            return _Undecodable(exc)

    return deserialize


async def _decoded(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A request stream that raises InvalidArgument at its first undecodable message."""
    async for message in requests:
        if isinstance(message, _Undecodable):
            raise InvalidArgument(message.message)
        yield message


def _request_in(request_or_iterator: Any, streaming: bool) -> Any:
    if streaming:
        return _decoded(request_or_iterator)
    if isinstance(request_or_iterator, _Undecodable):
        raise InvalidArgument(request_or_iterator.message)
    return request_or_iterator


def _log_done(method: str, started: float, context: grpc.aio.ServicerContext) -> None:
    if log.isEnabledFor(logging.DEBUG):
        ms = round((time.perf_counter() - started) * 1000, 2)
        log.debug("rpc", extra={"method": method, "ms": ms, "code": str(context.code())})


def _wrap_unary_response(behavior: Callable[..., Awaitable[Any]], method: str,
                         streaming: bool):
    async def wrapper(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            return await behavior(_request_in(request_or_iterator, streaming), context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_for(exc, context, method)
        finally:
            _log_done(method, started, context)

    return wrapper


def _wrap_stream_response(behavior: Callable[..., Any], method: str, streaming: bool):
    # Streaming handlers are either async generators or coroutines that call context.write().
    if not inspect.isasyncgenfunction(behavior):
        return _wrap_unary_response(behavior, method, streaming)

    async def wrapper(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            async for response in behavior(_request_in(request_or_iterator, streaming),
                                           context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_for(exc, context, method)
        finally:
            _log_done(method, started, context)

    return wrapper


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        deserializer = _tolerant(handler.request_deserializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary_response(handler.unary_unary, method, False),
                deserializer, handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary_response(handler.stream_unary, method, True),
                deserializer, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream_response(handler.unary_stream, method, False),
                deserializer, handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            _wrap_stream_response(handler.stream_stream, method, True),
            deserializer, handler.response_serializer)
