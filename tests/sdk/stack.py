"""The three real services on free loopback ports, sharing one data directory (so upload and
preprocess share the fs blob store), started the way tests/conftest.py's service_factory
starts them but once per test module: starting three processes per test would cost more
than the tests themselves."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from corral import addresses
from corral.launcher import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]
QUIET_SETTINGS = {
    "CORRAL_LOG_LEVEL": "info",
    "CORRAL_GRACE_SECONDS": "2",
    "CORRAL_PREPROCESS_PROCESSES": "1",
}


@dataclass
class Stack:
    catalog: ServiceProcess
    upload: ServiceProcess
    preprocess: ServiceProcess
    data_dir: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment for a `corral` subprocess talking to this stack, importing this
        checkout's code (not whatever an editable install points at)."""
        python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": python_path,
                addresses.CATALOG_ADDR_ENV: self.catalog.addr,
                addresses.UPLOAD_ADDR_ENV: self.upload.addr,
                addresses.PREPROCESS_ADDR_ENV: self.preprocess.addr}

    def client_kwargs(self) -> dict[str, str]:
        return {"catalog_addr": self.catalog.addr, "upload_addr": self.upload.addr,
                "preprocess_addr": self.preprocess.addr}


@contextlib.contextmanager
def running_stack(work_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """`extra_env` goes to all three services (e.g. the S3 blob store settings)."""
    data_dir = work_dir / "data"
    env = {"CORRAL_DATA_DIR": str(data_dir), **QUIET_SETTINGS, **(extra_env or {})}
    started: list[ServiceProcess] = []

    def start(name: str, extra: dict[str, str] | None = None) -> ServiceProcess:
        service = ServiceProcess(name, "127.0.0.1:0", env={**env, **(extra or {})},
                                 log_path=work_dir / f"{name}.log")
        started.append(service)
        return service.start()

    stack: Stack | None = None
    try:
        catalog = start("catalog")
        to_catalog = {addresses.CATALOG_ADDR_ENV: catalog.addr}
        stack = Stack(catalog, start("upload", to_catalog), start("preprocess", to_catalog),
                      data_dir)
        yield stack
    finally:
        # Tests may swap in restarted services (stack.preprocess = ...): stop those too.
        current = [stack.preprocess, stack.upload] if stack is not None else []
        for service in [*current, *reversed(started)]:
            service.stop()
