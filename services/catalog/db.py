"""Engine setup for SQLite and PostgreSQL, and the two ways domain code touches the database:
`read()` for a consistent snapshot and `write(work)` for one retried write transaction."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from corral.errors import Aborted, Unavailable

log = logging.getLogger("corral.catalog.db")

T = TypeVar("T")
_WRITE = "corral_write"
_RETRIES = 5
# serialization_failure, deadlock_detected: the transaction can simply run again.
_PG_RETRYABLE = {"40001", "40P01"}
SQLITE_PRAGMAS = ("journal_mode=WAL", "busy_timeout=10000", "foreign_keys=ON",
                  "synchronous=NORMAL")


def normalize_url(url: str) -> str:
    """postgresql:// URLs use psycopg 3 (the only PostgreSQL driver corral ships with)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The driver must not BEGIN on its own: we emit BEGIN or BEGIN IMMEDIATE ourselves.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads and later writes cannot wait for the lock (SQLite
        # answers "database is locked" at once); IMMEDIATE takes the write lock up front, so
        # concurrent writers queue on busy_timeout instead of deadlocking.
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_database_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, pool_size=8, max_overflow=8,
                               connect_args={"check_same_thread": False, "timeout": 10})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True  # a concurrent writer won a unique-key race; rerunning sees its row
    if isinstance(exc, OperationalError):
        sqlstate = getattr(exc.orig, "sqlstate", None)
        return sqlstate in _PG_RETRYABLE or "database is locked" in str(exc.orig)
    return False


class Database:
    def __init__(self, url: str) -> None:
        self.engine = create_database_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        # SQLite allows one writer at a time and its busy handler backs off by sleeping up to
        # 100 ms, so this process's writers queue on a lock instead (PostgreSQL: no lock).
        self._write_lock = contextlib.nullcontext() if self.is_postgres else threading.Lock()

    def insert(self, table: Table) -> Any:
        """The dialect's INSERT, which supports ON CONFLICT DO NOTHING."""
        return (postgresql.insert if self.is_postgres else sqlite.insert)(table)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def begin_write(self) -> Iterator[Connection]:
        """One write transaction (BEGIN IMMEDIATE on SQLite), committed on success."""
        with self._write_lock, self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def write(self, work: Callable[[Connection], T]) -> T:
        """Runs `work` in one write transaction, rerunning it after a lost race or deadlock.
        `work` must have no effects outside the database."""
        for attempt in range(_RETRIES):
            try:
                with self.begin_write() as conn:
                    return work(conn)
            except (IntegrityError, OperationalError) as exc:
                if not _retryable(exc):
                    raise
                if attempt == _RETRIES - 1:
                    if isinstance(exc, IntegrityError):
                        raise Aborted(f"conflicting concurrent write, retry: {exc.orig}") from exc
                    raise Unavailable(f"database busy, retry: {exc.orig}") from exc
                log.debug("retrying write", extra={"attempt": attempt + 1, "error": str(exc)})
                time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()
