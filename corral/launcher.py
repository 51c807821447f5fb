"""Starts a corral service as a child process and waits until it serves.

Used by `corral up` and by the tests: the child binds the address it is given (port 0 picks
a free port), writes the real port to a port file, and reports SERVING on gRPC health.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from corral.credentials import (
    TLS_CA_ENV,
    TLS_CLIENT_CERT_ENV,
    TLS_CLIENT_KEY_ENV,
    TLS_SERVER_NAME_ENV,
    Credentials,
    TlsFiles,
)
from corral.rpc import open_channel

SERVICES = ("catalog", "upload", "preprocess")


class ProcessExited(RuntimeError):
    """The service's process ended while it was being waited for."""


def wait_serving(addr: str, timeout: float = 30.0, service: str = "",
                 tls: TlsFiles | None = None,
                 exited: Callable[[], int | None] | None = None) -> None:
    """Blocks until the gRPC health check at `addr` answers SERVING (health needs no key;
    `tls` defaults to the environment's CORRAL_TLS_* files). `exited()` returns the exit code
    of the process behind `addr` once it has exited: then waiting ends at once."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    credentials = Credentials(tls=tls if tls is not None else TlsFiles.from_env())
    with open_channel(addr, credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if exited is not None and (code := exited()) is not None:
                raise ProcessExited(f"{addr} exited with {code} before serving")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                last_error = exc
            time.sleep(0.05)
    raise TimeoutError(f"{addr} did not become SERVING within {timeout}s: {last_error}")


def _tls_of(env: dict[str, str]) -> TlsFiles:
    """The TLS files a client of a service started with `env` uses."""
    keys = {"ca": TLS_CA_ENV, "cert": TLS_CLIENT_CERT_ENV, "key": TLS_CLIENT_KEY_ENV,
            "server_name": TLS_SERVER_NAME_ENV}
    return TlsFiles(**{field: env.get(name, "") for field, name in keys.items()})


class ServiceProcess:
    """One service in a child process: `python -m services.<name> --addr HOST:PORT ...`."""

    def __init__(self, name: str, addr: str, args: list[str] | None = None,
                 env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        if name not in SERVICES:
            raise ValueError(f"unknown service {name!r}")
        self.name, self.requested_addr = name, addr
        self.args, self.env, self.log_path = list(args or []), env, log_path
        self.proc: subprocess.Popen | None = None
        self.addr = ""
        self._port_file = Path(tempfile.mkdtemp(prefix=f"corral-{name}-")) / "port"
        self._log = None

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        env = {**os.environ, **(self.env or {})}
        cmd = [sys.executable, "-m", f"services.{self.name}", "--addr", self.requested_addr,
               "--port-file", str(self._port_file), *self.args]
        self._log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + timeout
        while not self._port_file.exists():
            if self.proc.poll() is not None:
                raise self._exited_at_start()
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name} did not report its port within {timeout}s")
            time.sleep(0.02)
        host = self.requested_addr.rsplit(":", 1)[0]
        self.addr = f"{host}:{self._port_file.read_text().strip()}"
        try:
            wait_serving(self.addr, timeout=max(1.0, deadline - time.monotonic()),
                         tls=_tls_of(env), exited=self.proc.poll)
        except ProcessExited:
            raise self._exited_at_start() from None
        return self

    def _exited_at_start(self) -> RuntimeError:
        assert self.proc is not None
        return RuntimeError(f"{self.name} exited with {self.proc.returncode} at start"
                            + (f"; see {self.log_path}" if self.log_path else ""))

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
