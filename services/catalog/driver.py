"""Hot-path statements run straight on the driver connection.

SQLAlchemy Core spends ~50-70 µs of CPU per statement here (parameter and result processing,
events, cache keys) while sqlite3 / psycopg need ~3-10 µs. CreateItem, UpdateSystemMetadata,
AckEvents and the Subscribe reads run hundreds of times a second, so their statements are
plain SQL in the dialect-neutral subset both databases share, with `:name` parameters. Values
go through SQLAlchemy's own type processors, so rows are stored exactly as Core stores them
and every other query reads them unchanged. They run inside the SQLAlchemy-managed transaction
of the same connection."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.types import TypeEngine

from services.catalog.models import Json, Timestamp

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _identity(value: Any) -> Any:
    return value


def _processors(kind: TypeEngine, dialect: Dialect) -> tuple[Callable, Callable]:
    impl = kind.dialect_impl(dialect)
    return (impl.bind_processor(dialect) or _identity,
            impl.result_processor(dialect, None) or _identity)


class Driver:
    """Per dialect: SQL text in the driver's parameter style, and value conversions."""

    def __init__(self, dialect: Dialect) -> None:
        self.is_postgres = dialect.name == "postgresql"
        self.json_in, self._json_out = _processors(Json, dialect)
        self.time_in, self._time_out = _processors(Timestamp, dialect)
        self._texts: dict[str, str] = {}

    def json_out(self, value: Any) -> dict[str, Any]:
        return self._json_out(value) or {}

    def time_out(self, value: Any) -> datetime:
        return self._time_out(value)

    def text(self, sql: str) -> str:
        """`:name` parameters become psycopg's `%(name)s` on PostgreSQL."""
        converted = self._texts.get(sql)
        if converted is None:
            converted = _PARAM.sub(r"%(\1)s", sql) if self.is_postgres else sql
            self._texts[sql] = converted
        return converted


class Raw:
    """The driver connection under one SQLAlchemy Connection (and its transaction)."""

    def __init__(self, conn: Connection, driver: Driver) -> None:
        self._dbapi: Any = conn.connection.driver_connection
        self.driver = driver

    def run(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """Executes a statement; returns the number of rows it changed."""
        return self._dbapi.execute(self.driver.text(sql), params or {}).rowcount

    def one(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Any] | None:
        return self._dbapi.execute(self.driver.text(sql), params or {}).fetchone()

    def all(self, sql: str, params: dict[str, Any] | None = None) -> list[Sequence[Any]]:
        return self._dbapi.execute(self.driver.text(sql), params or {}).fetchall()

    @contextlib.contextmanager
    def fetching(self, sql: str, params: dict[str, Any] | None = None
                 ) -> Iterator[Callable[[int], list[Sequence[Any]]]]:
        """`fetch(n)`: the next n rows of the query's result (fewer at its end). Rows never
        fetched never leave the database: on PostgreSQL through a server-side cursor (a
        plain cursor would receive the whole result at once). Needs a transaction."""
        if not self.driver.is_postgres:
            cursor = self._dbapi.execute(self.driver.text(sql), params or {})
            try:
                yield cursor.fetchmany
            finally:
                cursor.close()
            return
        # Planned for all its rows, like the plain query (db.py sets cursor_tuple_fraction).
        with self._dbapi.cursor(name="corral_rows") as cursor:
            cursor.execute(self.driver.text(sql), params or {})
            yield cursor.fetchmany

    def many(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self._dbapi.cursor().executemany(self.driver.text(sql), rows)

    def copy(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """PostgreSQL's COPY FROM STDIN of rows that share their keys (the column names,
        which come from code, never from requests)."""
        if not rows:
            return
        columns = list(rows[0])
        with self._dbapi.cursor() as cursor, cursor.copy(
                f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[column] for column in columns])
