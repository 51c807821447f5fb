"""Engine setup for SQLite and PostgreSQL, and the two ways domain code touches the database:
`read()` for a consistent snapshot and `write(work)` for one retried write transaction."""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, IntegrityError, OperationalError

from corral.errors import Aborted, Unavailable
from services.catalog.driver import Driver
from services.catalog.glob_match import sqlite_glob

log = logging.getLogger("corral.catalog.db")

T = TypeVar("T")
_WRITE = "corral_write"
_RETRIES = 5
_PING_AFTER_IDLE = 5.0  # seconds
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
        # Filters match globs with corral_glob (SQLite's REGEXP is left to applications).
        dbapi_conn.create_function("corral_glob", 2, sqlite_glob, deterministic=True)
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
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")


def create_database_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, pool_size=8, max_overflow=8,
                               connect_args={"check_same_thread": False, "timeout": 10})
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, pool_size=5, max_overflow=5)
    _ping_idle_connections(engine)
    _plan_cursors_for_all_rows(engine)
    return engine


def _plan_cursors_for_all_rows(engine: Engine) -> None:
    """PostgreSQL plans a server-side cursor (listings read through one, Raw.fetching) for
    its first 10% of rows; planned for all of them, as the query's LIMIT says, it gets the
    plan EXPLAIN shows for the same query. Set once per connection: no round trip per call."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("SET cursor_tuple_fraction = 1.0")
        dbapi_conn.commit()


def _ping_idle_connections(engine: Engine) -> None:
    """pool_pre_ping costs a round trip on every checkout; a connection in steady use is
    known to be alive, so only one that sat idle in the pool (the server may have restarted
    meanwhile) is pinged, and replaced if dead."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", math.inf) < _PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True  # a concurrent writer won a unique-key race; rerunning sees its row
    if isinstance(exc, OperationalError):
        sqlstate = getattr(exc.orig, "sqlstate", None)
        return sqlstate in _PG_RETRYABLE or "database is locked" in str(exc.orig)
    return False


class Call:
    """One write of a group-commit batch (see run_batch) and its outcome."""
    __slots__ = ("work", "result", "error", "rerun")

    def __init__(self, work: Callable[[Connection], Any]) -> None:
        self.work, self.result = work, None
        self.error: Exception | None = None
        self.rerun = False


class Database:
    def __init__(self, url: str) -> None:
        self.engine = create_database_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self.driver = Driver(self.engine.dialect)
        # metadata.user paths with an expression index (see metadata_indexes.py), which
        # filters then spell out so the index is used.
        self.indexed_metadata: frozenset[tuple[str, ...]] = frozenset()
        # SQLite allows one writer at a time and its busy handler backs off by sleeping up to
        # 100 ms, so this process's writers queue on a lock instead (PostgreSQL: no lock).
        self._write_lock = contextlib.nullcontext() if self.is_postgres else threading.Lock()

    def insert(self, table: Table) -> Any:
        """The dialect's INSERT, which supports ON CONFLICT DO NOTHING."""
        return (postgresql.insert if self.is_postgres else sqlite.insert)(table)

    @contextlib.contextmanager
    def read(self, autocommit: bool = False) -> Iterator[Connection]:
        """`autocommit`: for a single statement, which needs no transaction (PostgreSQL: one
        round trip instead of BEGIN, the statement and ROLLBACK)."""
        with self.engine.connect() as conn:
            if not (autocommit and self.is_postgres):
                yield conn
                return
            dbapi = conn.connection.driver_connection
            dbapi.autocommit = True
            try:
                yield conn
            finally:
                if not dbapi.closed:
                    dbapi.autocommit = False

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def begin_write(self) -> Iterator[Connection]:
        """One write transaction (BEGIN IMMEDIATE on SQLite), committed on success."""
        with self._write_lock, self._transaction() as conn:
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

    def run_batch(self, calls: list[Call]) -> None:
        """Group commit: runs every call's work in one write transaction, each in its own
        savepoint, so a failing work is undone alone and keeps its error while the others
        commit. A work that lost a race, or every work if the transaction itself failed
        (BEGIN, COMMIT), then reruns on its own through write()."""
        with self._write_lock:
            self._try_batch(calls)
        for call in calls:
            if call.rerun:
                try:
                    call.result = self.write(call.work)
                except Exception as exc:  # noqa: BLE001 - handed to the call
                    call.error = exc

    def _try_batch(self, calls: list[Call]) -> None:
        try:
            with self._transaction() as conn:
                if len(calls) == 1:
                    calls[0].result = calls[0].work(conn)
                else:
                    for call in calls:
                        _in_savepoint(conn, call)
        except Exception as exc:  # noqa: BLE001 - handed to the calls
            for call in calls:
                # Nothing committed. A lone work's own error is its answer.
                lone_answer = len(calls) == 1 and not _retryable(exc)
                call.error, call.rerun = (exc, False) if lone_answer else (None, True)

    def dispose(self) -> None:
        self.engine.dispose()


def _in_savepoint(conn: Connection, call: Call) -> None:
    """Runs one batched write; its failure undoes only its own changes. A lost race reruns it
    on its own after the batch (with the usual retries)."""
    dbapi = conn.connection.driver_connection
    dbapi.execute("SAVEPOINT corral_call")
    try:
        call.result = call.work(conn)
    except Exception as exc:  # noqa: BLE001 - handed to the call
        dbapi.execute("ROLLBACK TO SAVEPOINT corral_call")
        call.error, call.rerun = (None, True) if _retryable(exc) else (exc, False)
    dbapi.execute("RELEASE SAVEPOINT corral_call")
