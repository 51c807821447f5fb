"""Turns domain errors (corral.errors) into gRPC statuses in one place.

Unexpected exceptions are logged with their traceback and answered INTERNAL with a short
reference, never with the traceback itself. Messages are kept short enough for the status
trailer. (Requests that do not decode are services.common.limits.RequestGuard's.)
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from corral.errors import CorralError
from services.common.handlers import rewrap

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


def _log_done(method: str, started: float, context: grpc.aio.ServicerContext) -> None:
    if log.isEnabledFor(logging.DEBUG):
        ms = round((time.perf_counter() - started) * 1000, 2)
        log.debug("rpc", extra={"method": method, "ms": ms, "code": str(context.code())})


def _wrap_unary_response(behavior: Callable[..., Awaitable[Any]], method: str):
    async def wrapper(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            return await behavior(request_or_iterator, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_for(exc, context, method)
        finally:
            _log_done(method, started, context)

    return wrapper


def _wrap_stream_response(behavior: Callable[..., Any], method: str):
    # Streaming handlers are either async generators or coroutines that call context.write().
    if not inspect.isasyncgenfunction(behavior):
        return _wrap_unary_response(behavior, method)

    async def wrapper(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            async for response in behavior(request_or_iterator, context):
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
        # Unary-response behaviors are coroutines: _wrap_stream_response hands them on.
        return rewrap(handler, lambda behavior, _: _wrap_stream_response(behavior, method))
