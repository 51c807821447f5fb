"""Who is calling, checked once per call before the handler reads a single message.

Every RPC except gRPC health needs `authorization: Bearer <API key>`. The AuthInterceptor
resolves the key to a Principal (through an Authenticator: the catalog reads its key table,
the other services ask the catalog), checks the method's required role, and hands the
Principal to the handler through a context variable (`caller()`), which asyncio.to_thread
copies into worker threads. Missing or invalid key → UNAUTHENTICATED; too weak a role →
PERMISSION_DENIED; a project-bound key naming another project → NOT_FOUND. Keys are never
logged or echoed.
"""

from __future__ import annotations

import enum
import hashlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

import grpc

from corral.credentials import AUTHORIZATION_HEADER, ON_BEHALF_ROLE_HEADER, PROJECT_HEADER
from corral.errors import NotFound, PermissionDenied, Unauthenticated

# The caller's identity lives in caller.py (no gRPC there, so domain code can read it);
# re-exported here, where the services have always imported it from.
from services.common.caller import Principal as Principal
from services.common.caller import Role as Role
from services.common.caller import bind_caller as bind_caller
from services.common.caller import caller as caller
from services.common.caller import caller_or_none as caller_or_none
from services.common.caller import on_behalf_headers as on_behalf_headers
from services.common.handlers import rewrap

log = logging.getLogger("corral.auth")

PUBLIC_SERVICES = ("/grpc.health.v1.Health/",)


class Need(enum.Enum):
    """What a method requires of its caller."""
    READ = Role.READER
    WRITE = Role.WRITER
    ADMIN = Role.ADMIN
    SERVICE = "service"  # only the corral services themselves


class Authenticator(Protocol):
    async def authenticate(self, api_key: str) -> Principal | None: ...


def key_fingerprint(api_key: str) -> str:
    """A cache key that is not the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()


class TtlCache:
    """Answers of an Authenticator for `seconds` (a revoked key keeps working at most that
    long on services that ask the catalog). `stale(key)` still answers for `stale_seconds`
    beyond that, for when the catalog cannot be asked."""

    def __init__(self, seconds: float, max_entries: int = 10_000,
                 stale_seconds: float = 300.0) -> None:
        self._seconds, self._max, self._stale = seconds, max_entries, stale_seconds
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def get(self, api_key: str) -> tuple[bool, Principal | None]:
        entry = self._entries.get(key_fingerprint(api_key))
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def stale(self, api_key: str) -> Principal | None:
        """A valid key's principal answered less than `seconds + stale_seconds` ago."""
        entry = self._entries.get(key_fingerprint(api_key))
        if entry is None or entry[0] + self._stale < time.monotonic():
            return None
        return entry[1]

    def put(self, api_key: str, principal: Principal | None) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key_fingerprint(api_key)] = (time.monotonic() + self._seconds, principal)

    def clear(self) -> None:
        self._entries.clear()


def bearer_key(metadata: Mapping[str, str]) -> str:
    value = metadata.get(AUTHORIZATION_HEADER, "")
    scheme, _, key = value.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthenticated(
            "missing API key: send the call metadata 'authorization: Bearer <API key>'"
            if not value else "authorization must be 'Bearer <API key>'")
    return key.strip()


def effective_principal(principal: Principal, metadata: Mapping[str, str]) -> Principal:
    """Applies the project (and, for services, the on-behalf role) the call names."""
    project = metadata.get(PROJECT_HEADER, "").strip()
    if not principal.instance_wide:
        if project and project != principal.project:
            raise NotFound(f"project {project!r} not found")
        return principal
    if project:
        principal = replace(principal, project=project)
    role_text = metadata.get(ON_BEHALF_ROLE_HEADER, "").strip()
    if role_text and principal.service:
        try:
            principal = replace(principal, role=Role.parse(role_text))
        except ValueError as exc:
            raise PermissionDenied(str(exc)) from None
    return principal


def check_need(principal: Principal, need: Need, method: str) -> None:
    if need is Need.SERVICE:
        if not principal.service:
            raise PermissionDenied(f"{method} is only for the corral services")
        return
    if principal.role < need.value:
        raise PermissionDenied(
            f"{method} needs the {Role(need.value).label} role; this key is "
            f"{principal.role.label}")


def _method_name(full_method: str) -> str:
    return full_method.rsplit("/", 1)[-1]


def _deny_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str
                  ) -> grpc.RpcMethodHandler:
    """A handler of the same kind that aborts without reading any request message."""
    async def deny(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    return rewrap(handler, lambda _behavior, _streaming: deny)


def _bound(handler: grpc.RpcMethodHandler, principal: Principal) -> grpc.RpcMethodHandler:
    behavior = (handler.unary_unary or handler.stream_unary or handler.unary_stream
                or handler.stream_stream)
    if inspect.isasyncgenfunction(behavior):
        async def stream(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
            bind_caller(principal)
            async for response in behavior(request_or_iterator, context):
                yield response
        return rewrap(handler, lambda _behavior, _streaming: stream)

    async def call(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        bind_caller(principal)
        return await behavior(request_or_iterator, context)
    return rewrap(handler, lambda _behavior, _streaming: call)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """`needs` maps full method names to what they require; methods not listed need the
    admin role (deny by default), except gRPC health, which is public."""

    def __init__(self, authenticator: Authenticator, needs: Mapping[str, Need]) -> None:
        self._authenticator, self._needs = authenticator, dict(needs)

    async def intercept_service(
            self, continuation: Callable[[Any], Awaitable[grpc.RpcMethodHandler | None]],
            handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(PUBLIC_SERVICES):
            return handler
        metadata = {key: value for key, value in (handler_call_details.invocation_metadata
                                                  or ()) if isinstance(value, str)}
        try:
            principal = await self._principal(metadata)
            principal = effective_principal(principal, metadata)
            check_need(principal, self._needs.get(method, Need.ADMIN), _method_name(method))
        except (Unauthenticated, PermissionDenied, NotFound) as exc:
            return _deny_handler(handler, getattr(grpc.StatusCode, exc.code), exc.message)
        except Exception as exc:  # the key store is down: retryable, never INTERNAL
            log.warning("authentication unavailable", extra={"method": method,
                                                             "error": type(exc).__name__})
            return _deny_handler(handler, grpc.StatusCode.UNAVAILABLE,
                                 "cannot check the API key right now; retry")
        return _bound(handler, principal)

    async def _principal(self, metadata: Mapping[str, str]) -> Principal:
        principal = await self._authenticator.authenticate(bearer_key(metadata))
        if principal is None:
            raise Unauthenticated("invalid or revoked API key")
        return principal
