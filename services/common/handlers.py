"""Rebuilding a gRPC method handler around a new behavior, kept in one place for every server
interceptor (limits, auth, errors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Behavior = Callable[..., Any]
# wrap(behavior, request_streaming) -> the behavior to serve instead
Wrap = Callable[[Behavior, bool], Behavior]


def rewrap(handler: grpc.RpcMethodHandler, wrap: Wrap,
           deserializer: Callable[[bytes], Any] | None = None) -> grpc.RpcMethodHandler:
    """The same kind of handler with its behavior passed through wrap(behavior, streaming)."""
    deserializer = deserializer or handler.request_deserializer
    serializer = handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrap(handler.unary_unary, False), deserializer, serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            wrap(handler.stream_unary, True), deserializer, serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrap(handler.unary_stream, False), deserializer, serializer)
    return grpc.stream_stream_rpc_method_handler(
        wrap(handler.stream_stream, True), deserializer, serializer)
