"""Runs one gRPC service: health checking, reflection, domain-error mapping, the real port
reported (log line and optional port file), and a graceful stop on SIGTERM/SIGINT.

Each service's __main__ builds its servicers and calls `run(...)`:

    run("catalog", config.addr, register, security, grace=config.grace_seconds,
        port_file=config.port_file, limits=server_limits)

where `register(server)` adds the servicers and returns (service full names, cleanup) or
(service full names, cleanup, on_stopping). `on_stopping` runs as soon as a stop begins, so that
endless streams (subscriptions) can end instead of holding the grace period; `cleanup` runs after
the server stopped accepting and in-flight calls finished. Both may be None.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from services.common.auth import Authenticator, AuthInterceptor, Need
from services.common.errors_interceptor import ErrorInterceptor
from services.common.interpreter import DEFAULT_SWITCH_INTERVAL_MS, tune_interpreter
from services.common.limit_settings import ServerLimits
from services.common.limits import limit_interceptors, server_options

log = logging.getLogger("corral.server")

Cleanup = Callable[[], Awaitable[None]] | None
Registration = tuple[list[str], Cleanup] | tuple[list[str], Cleanup, Cleanup]
Register = Callable[[grpc.aio.Server], Awaitable[Registration]]

SERVER_OPTIONS = [
    ("grpc.so_reuseport", 0),
]


REFLECTION_NEEDS = {
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Need.READ,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": Need.READ,
}


@dataclass
class ServerSecurity:
    """Who may call (every method listed in `needs` with what it requires; the rest need
    admin, health is public) and, when `tls` is set, TLS only."""

    authenticator: Authenticator
    needs: Mapping[str, Need]
    tls: grpc.ServerCredentials | None = None


class RunningServer:
    """A started server: its real port, its health servicer, and how to stop it."""

    def __init__(self, name: str, server: grpc.aio.Server, health: HealthServicer, port: int,
                 services: list[str], cleanup: Cleanup, on_stopping: Cleanup = None) -> None:
        self.name, self.server, self.health, self.port = name, server, health, port
        self.services, self._cleanup, self._on_stopping = services, cleanup, on_stopping

    async def stop(self, grace: float) -> None:
        """NOT_SERVING at once, refuse new calls, let in-flight ones finish within `grace`."""
        log.info("stopping", extra={"service": self.name, "grace_s": grace})
        await self.health.enter_graceful_shutdown()
        if self._on_stopping is not None:
            await self._on_stopping()
        await self.server.stop(grace)
        if self._cleanup is not None:
            await self._cleanup()
        log.info("stopped", extra={"service": self.name})


async def start(name: str, addr: str, register: Register,
                security: ServerSecurity, limits: ServerLimits | None = None) -> RunningServer:
    """Builds, binds and starts the server; `addr` may use port 0."""
    auth = AuthInterceptor(security.authenticator, {**REFLECTION_NEEDS, **security.needs})
    limits = limits or ServerLimits()  # message size, concurrency, idle streams, keepalive
    server = grpc.aio.server(
        interceptors=[*limit_interceptors(limits), auth, ErrorInterceptor()],
        options=SERVER_OPTIONS + server_options(limits))
    services, cleanup, *rest = await register(server)
    on_stopping = rest[0] if rest else None
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME], server)
    port = (server.add_secure_port(addr, security.tls) if security.tls is not None
            else server.add_insecure_port(addr))
    if port == 0:
        raise OSError(f"{name}: cannot bind {addr}")
    await server.start()
    for service in ["", *services]:
        await health.set(service, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(name, server, health, port, services, cleanup, on_stopping)


def bound_address(addr: str, port: int) -> str:
    host = addr.rsplit(":", 1)[0]
    return f"{host}:{port}"


async def serve(name: str, addr: str, register: Register, security: ServerSecurity, *,
                grace: float, port_file: str = "", limits: ServerLimits | None = None) -> None:
    """Runs until SIGTERM or SIGINT, then stops gracefully."""
    running = await start(name, addr, register, security, limits)
    real = bound_address(addr, running.port)
    if port_file:
        tmp = Path(f"{port_file}.tmp")
        tmp.write_text(str(running.port))
        os.replace(tmp, port_file)
    log.info("listening", extra={"service": name, "addr": real, "port": running.port})
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    await stop_requested.wait()
    await running.stop(grace)


def run(name: str, addr: str, register: Register, security: ServerSecurity, *, grace: float,
        port_file: str = "", limits: ServerLimits | None = None,
        switch_interval_ms: float = DEFAULT_SWITCH_INTERVAL_MS) -> None:
    tune_interpreter(switch_interval_ms)
    asyncio.run(serve(name, addr, register, security, grace=grace, port_file=port_file,
                      limits=limits))
