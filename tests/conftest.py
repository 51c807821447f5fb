"""Shared fixtures: databases (SQLite file, a throwaway PostgreSQL database) and services
started as real child processes on free loopback ports."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import testkeys
from sdk.stack import Stack, running_stack

from corral.client import Client
from corral.launcher import ServiceProcess

testkeys.install()

PG_ADMIN_DSN = os.environ.get("CORRAL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin_url_for(db: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{db}"


@pytest.fixture(scope="session")
def pg_database_factory() -> Iterator[Callable[[], str]]:
    """Creates throwaway PostgreSQL databases (SQLAlchemy URLs), dropped at session end."""
    created: list[str] = []

    def create() -> str:
        name = f"corral_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _pg_admin_url_for(name)

    yield create
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path, pg_database_factory) -> str:
    """Each test using this runs twice: on a fresh SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return pg_database_factory()


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Starts services as child processes on 127.0.0.1:0; all are stopped after the test.

    start("catalog", env={...}, args=[...]) -> ServiceProcess with .addr. Logs go to
    tmp_path/<name>-<n>.log (printed on failure by pytest's tmp_path retention)."""
    started: list[ServiceProcess] = []

    def start(name: str, env: dict[str, str] | None = None, args: list[str] | None = None,
              addr: str = "127.0.0.1:0") -> ServiceProcess:
        log_path = tmp_path / f"{name}-{len(started)}.log"
        full_env = {"CORRAL_DATA_DIR": str(tmp_path / "data"), "CORRAL_LOG_LEVEL": "debug",
                    **(env or {})}
        service = ServiceProcess(name, addr, args=args, env=full_env, log_path=log_path)
        started.append(service)
        return service.start()

    yield start
    for service in reversed(started):
        service.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """All three services, once per test module (see tests/sdk/stack.py)."""
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[Client]:
    with Client(**stack.client_kwargs()) as sdk_client:
        yield sdk_client
