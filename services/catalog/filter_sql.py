"""Validated filters and sort keys -> parametrised SQL for SQLite and PostgreSQL (used by the
Repository only).

Every value is a bound parameter. Metadata paths are bound too, except paths with a declared
expression index (see metadata_indexes.py): an index is used only when the query spells the
indexed expression exactly, so those paths, already checked against filters.metadata_path's
strict pattern, are written out as literals.

Both databases must answer alike, so each comparison states its type: a metadata value
matches only values of the operand's JSON type (SQLite's json_extract alone would make true
equal 1), strings compare bytewise (COLLATE "C" on PostgreSQL), and a condition on an absent
path is false, except for ne/nin, which also match items lacking the field."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from corral.errors import InvalidArgument
from services.catalog.filters import (
    RANGE_OPS,
    Checked,
    Clause,
    Field,
    Kind,
    Op,
    SortKey,
    glob_prefix,
    glob_regex,
    resolve_field,
)
from services.catalog.validation import BAD_TOKEN

_COMPARE = {Op.EQ: "=", Op.NE: "<>", Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<="}
_SQLITE_NUMBER = "IN ('integer', 'real')"


def json_path_literal(path: Sequence[str], pg: bool) -> str:
    """The SQL literal of a checked metadata path: '{a,b}' (PostgreSQL), '$."a"."b"' (SQLite)."""
    if pg:
        return "'{" + ",".join(path) + "}'"
    return "'$" + "".join(f'."{key}"' for key in path) + "'"


def json_value_sql(column: str, path_sql: str, pg: bool) -> str:
    """The value at a path: jsonb on PostgreSQL, the SQL value on SQLite."""
    if pg:
        return f"({column} #> {path_sql})"
    return f"json_extract({column}, {path_sql})"


def mimetype_sql(pg: bool) -> str:
    """metadata.system.mimetype as the text its expression index holds."""
    if pg:
        return "((metadata_system ->> 'mimetype') COLLATE \"C\")"
    return "json_extract(metadata_system, '$.mimetype')"


@dataclass(frozen=True)
class SortColumn:
    """One ORDER BY expression; never NULL, so keyset comparisons stay two-valued."""
    sql: str
    descending: bool
    kind: str  # "text", "number" or "time": what the page token holds for it


class SqlBuilder:
    """Compiles for one statement, collecting its parameters (named f0, f1, ...)."""

    def __init__(self, pg: bool, indexed_paths: frozenset[tuple[str, ...]],
                 time_in: Callable[[datetime], Any]) -> None:
        self.pg, self._indexed, self._time_in = pg, indexed_paths, time_in
        self.params: dict[str, Any] = {}
        self._paths: dict[tuple[str, tuple[str, ...]], str] = {}
        self._demote_ranges = False

    def bind(self, value: Any) -> str:
        name = f"f{len(self.params)}"
        self.params[name] = value
        return ":" + name

    # -- expressions ------------------------------------------------------------------------

    def _path(self, field: Field) -> str:
        key = (field.column, field.path)
        if key not in self._paths:
            if field.column == "metadata_user" and field.path in self._indexed:
                self._paths[key] = json_path_literal(field.path, self.pg)
            elif self.pg:
                self._paths[key] = f"CAST({self.bind(list(field.path))} AS text[])"
            else:
                self._paths[key] = self.bind("$" + "".join(f'."{k}"' for k in field.path))
        return self._paths[key]

    def _json(self, field: Field) -> str:
        return json_value_sql(field.column, self._path(field), self.pg)

    def _json_type(self, field: Field) -> str:
        if self.pg:
            return f"jsonb_typeof({self._json(field)})"
        return f"json_type({field.column}, {self._path(field)})"

    def _json_text(self, field: Field) -> str:
        """PostgreSQL: the string at a path as bytewise-ordered text."""
        return f"(({self._json(field)} #>> '{{}}') COLLATE \"C\")"

    def _column(self, field: Field) -> str:
        return mimetype_sql(self.pg) if field.kind == Kind.SYSTEM_TEXT else field.column

    def _value(self, field: Field, value: Any) -> str:
        return self.bind(self._time_in(value) if field.kind == Kind.TIME else value)

    # -- filters ----------------------------------------------------------------------------

    def prefer_equalities(self, tree: Checked) -> None:
        """SQLite only: when the filter requires an equality that an index answers, keep its
        planner from walking a range index instead ("+size > x" is no column to it). Without
        statistics it cannot tell that "lot = 7" finds 100 rows and "size > x" half the
        table, and sometimes guesses the range."""
        if not self.pg and not tree.any and any(self._indexed_equality(m) for m in tree.members):
            self._demote_ranges = True

    def _indexed_equality(self, node: Clause | Checked) -> bool:
        if isinstance(node, Checked):
            return node.any and all(self._indexed_equality(m) for m in node.members)
        field = node.field
        indexed = field.kind in (Kind.TEXT, Kind.SYSTEM_TEXT) or (
            field.kind == Kind.JSON and field.column == "metadata_user"
            and field.path in self._indexed)
        return indexed and node.op in (Op.EQ, Op.IN)

    def where(self, tree: Checked) -> str:
        parts = [self._node(member) for member in tree.members]
        return "(" + (" OR " if tree.any else " AND ").join(parts) + ")"

    def _node(self, node: Clause | Checked) -> str:
        return self.where(node) if isinstance(node, Checked) else self.clause(node)

    def clause(self, clause: Clause) -> str:
        if clause.field.kind == Kind.JSON:
            return self._json_clause(clause)
        field, op, value = clause.field, clause.op, clause.value
        column = self._column(field)
        nullable = field.kind == Kind.SYSTEM_TEXT
        if op == Op.EXISTS:
            return f"{column} IS {'NOT ' if value else ''}NULL"
        if op == Op.GLOB:
            return self._glob(column, value)
        if op in (Op.IN, Op.NIN):
            values = ", ".join(self._value(field, v) for v in value)
            test = f"{column} {'NOT ' if op == Op.NIN else ''}IN ({values})"
        else:
            demote = "+" if self._demote_ranges and op in RANGE_OPS else ""
            test = f"{demote}{column} {_COMPARE[op]} {self._value(field, value)}"
        if nullable and op in (Op.NE, Op.NIN):
            return f"({column} IS NULL OR {test})"
        return test

    def _glob_match(self, text_sql: str, pattern: str) -> str:
        """PostgreSQL's regex engine; on SQLite corral_glob (glob_match.py: linear time,
        where Python's backtracking re could take forever on a hostile pattern)."""
        if self.pg:
            return f"{text_sql} ~ {self.bind(glob_regex(pattern))}"
        return f"corral_glob({text_sql}, {self.bind(pattern)})"

    def _glob(self, text_sql: str, pattern: str) -> str:
        match = self._glob_match(text_sql, pattern)
        bounds = prefix_bounds(glob_prefix(pattern))
        if bounds is None:
            return match
        low, high = bounds
        # The literal prefix as a range, so an index on the column narrows the scan.
        return f"({text_sql} >= {self.bind(low)} AND {text_sql} < {self.bind(high)} AND {match})"

    def _json_clause(self, clause: Clause) -> str:
        field, op, value = clause.field, clause.op, clause.value
        if op == Op.EXISTS:
            test = self._json_type(field) if not self.pg else self._json(field)
            return f"{test} IS {'NOT ' if value else ''}NULL"
        if op == Op.GLOB:
            return self._json_glob(field, value)
        if op in RANGE_OPS:
            return self._json_range(field, op, value)
        values = value if op in (Op.IN, Op.NIN) else (value,)
        negated = op in (Op.NE, Op.NIN)
        test = self._pg_json_equal(field, values) if self.pg \
            else self._sqlite_json_equal(field, values, negated)
        if negated:
            # Present values make `test` TRUE or FALSE, never NULL; absent ones match.
            present = self._json(field) if self.pg else self._json_type(field)
            return f"({present} IS NULL OR NOT {test})"
        return test

    def _pg_json_equal(self, field: Field, values: Sequence[Any]) -> str:
        value_sql = self._json(field)
        if len(values) > 1:
            bound = self.bind([json.dumps(v) for v in values])
            return f"({value_sql} = ANY(CAST({bound} AS jsonb[])))"
        test = f"{value_sql} = CAST({self.bind(json.dumps(values[0]))} AS jsonb)"
        if field.column != "metadata_user":
            return f"({test})"
        # Containment is what the GIN (jsonb_path_ops) index answers, for any user key; the
        # exact comparison then drops what containment lets through (e.g. arrays).
        document: Any = values[0]
        for key in reversed(field.path):
            document = {key: document}
        contains = f"metadata_user @> CAST({self.bind(json.dumps(document))} AS jsonb)"
        return f"({contains} AND {test})"

    def _sqlite_json_equal(self, field: Field, values: Sequence[Any], negated: bool) -> str:
        """json_extract gives true and false as 1 and 0, and lists and objects as their JSON
        text, so a type test goes with operands that could meet those. For ne/nin it always
        does: on an absent or JSON null value it is FALSE, which keeps the test non-NULL.
        Otherwise it is left out, as it would keep SQLite from turning "a = 1 OR a = 2" into
        one indexed IN lookup."""
        json_type, value_sql = self._json_type(field), self._json(field)
        tests = []
        booleans = [v for v in values if isinstance(v, bool)]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        strings = [v for v in values if isinstance(v, str)]
        if booleans:
            tests.append(f"{json_type} IN ({', '.join(repr(str(v).lower()) for v in booleans)})")
        for group, type_test, ambiguous in (
                (numbers, _SQLITE_NUMBER, lambda v: v in (0, 1)),
                (strings, "= 'text'", lambda v: v[:1] in ("[", "{"))):
            if group:
                bound = ", ".join(self.bind(v) for v in group)
                compare = f"{value_sql} = {bound}" if len(group) == 1 \
                    else f"{value_sql} IN ({bound})"
                typed = negated or any(ambiguous(v) for v in group)
                tests.append(f"({json_type} {type_test} AND {compare})" if typed else compare)
        return tests[0] if len(tests) == 1 else "(" + " OR ".join(tests) + ")"

    def _json_range(self, field: Field, op: Op, value: Any) -> str:
        compare = _COMPARE[op]
        if self.pg:
            if isinstance(value, str):
                return (f"(jsonb_typeof({self._json(field)}) = 'string' AND "
                        f"{self._json_text(field)} {compare} {self.bind(value)})")
            return (f"(jsonb_typeof({self._json(field)}) = 'number' AND "
                    f"{self._json(field)} {compare} CAST({self.bind(json.dumps(value))} AS jsonb))")
        type_test = "= 'text'" if isinstance(value, str) else _SQLITE_NUMBER
        return (f"({self._json_type(field)} {type_test} AND "
                f"{self._json(field)} {compare} {self.bind(value)})")

    def _json_glob(self, field: Field, pattern: str) -> str:
        if self.pg:
            return (f"(jsonb_typeof({self._json(field)}) = 'string' AND "
                    f"{self._glob_match(self._json_text(field), pattern)})")
        return (f"({self._json_type(field)} = 'text' AND "
                f"{self._glob_match(self._json(field), pattern)})")

    # -- ordering and keyset paging ---------------------------------------------------------

    def sort_columns(self, keys: Sequence[SortKey]) -> list[SortColumn]:
        """ORDER BY expressions for the sort keys, then id unless filename (unique within a
        dataset) already makes the order total."""
        columns: list[SortColumn] = []
        for key in keys or (SortKey(resolve_field("filename", "order_by")),):
            columns += self._sort_key(key.field, key.descending)
            if key.field.name == "filename":
                return columns
        columns.append(SortColumn("id", keys[-1].descending if keys else False, "text"))
        return columns

    def _sort_key(self, field: Field, desc: bool) -> list[SortColumn]:
        if field.kind == Kind.JSON:
            return self._json_sort(field, desc)
        if field.kind == Kind.SYSTEM_TEXT:
            return [SortColumn(f"COALESCE({self._column(field)}, '')", desc, "text")]
        kind = {Kind.NUMBER: "number", Kind.TIME: "time"}.get(field.kind, "text")
        return [SortColumn(field.column, desc, kind)]

    def _json_sort(self, field: Field, desc: bool) -> list[SortColumn]:
        """Numbers first, then strings, then everything else (booleans, objects, lists,
        absent): a rank, then the number, then the string, each defaulted so none is NULL."""
        json_type = self._json_type(field)
        if self.pg:
            rank = f"CASE {json_type} WHEN 'number' THEN 0 WHEN 'string' THEN 1 ELSE 2 END"
            number = (f"CASE WHEN {json_type} = 'number' "
                      f"THEN CAST({self._json(field)} AS double precision) ELSE 0 END")
            text = f"CASE WHEN {json_type} = 'string' THEN {self._json_text(field)} ELSE '' END"
        else:
            value = self._json(field)
            rank = (f"CASE {json_type} WHEN 'integer' THEN 0 WHEN 'real' THEN 0 "
                    "WHEN 'text' THEN 1 ELSE 2 END")
            number = f"CASE WHEN {json_type} {_SQLITE_NUMBER} THEN {value} ELSE 0 END"
            text = f"CASE WHEN {json_type} = 'text' THEN {value} ELSE '' END"
        return [SortColumn(rank, desc, "number"), SortColumn(number, desc, "number"),
                SortColumn(text, desc, "text")]

    def after(self, columns: Sequence[SortColumn], values: Sequence[Any]) -> str:
        """Rows strictly after `values` in the order of `columns`: the first column's bound
        up front (so an index on it narrows the scan), then the lexicographic comparison."""
        if len(values) != len(columns):
            raise InvalidArgument(BAD_TOKEN)
        bound = [self.bind(_key_in(c.kind, v, self._time_in))
                 for c, v in zip(columns, values, strict=True)]
        terms = []
        for i, column in enumerate(columns):
            equal = [f"{c.sql} = {b}" for c, b in zip(columns[:i], bound[:i], strict=True)]
            step = f"{column.sql} {'<' if column.descending else '>'} {bound[i]}"
            terms.append("(" + " AND ".join([*equal, step]) + ")")
        if len(terms) == 1:
            return terms[0]
        first = columns[0]
        lead = f"{first.sql} {'<=' if first.descending else '>='} {bound[0]}"
        return f"({lead} AND ({' OR '.join(terms)}))"


def _key_in(kind: str, value: Any, time_in: Callable[[datetime], Any]) -> Any:
    """A page token's key value, checked to be of the column's kind (a forged token must not
    make the database compare across types)."""
    if kind == "number" and (isinstance(value, float) and math.isfinite(value) or isinstance(
            value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63):
        return value  # (what real tokens hold: int64 sizes and ranks, finite doubles)
    if kind in ("text", "time") and isinstance(value, str) and "\x00" not in value:
        if kind == "text":  # (NUL: no stored text holds one, and PostgreSQL refuses it)
            return value
        with contextlib.suppress(ValueError, OverflowError):  # OverflowError: out of range in UTC
            return time_in(datetime.fromisoformat(value))
    raise InvalidArgument(BAD_TOKEN)


def order_by_sql(columns: Sequence[SortColumn], sort_matches: bool = False) -> str:
    """`sort_matches`: keep SQLite from serving the order from an index ("+x" is not a
    column to it), so it picks its index for the filter and sorts what matched."""
    plus = "+" if sort_matches else ""
    return ", ".join(f"{plus}{c.sql} {'DESC' if c.descending else 'ASC'}" for c in columns)


def prefix_bounds(prefix: str) -> tuple[str, str] | None:
    """[low, high) holding every string that starts with `prefix` in code point order (which
    is UTF-8 byte order): the prefix, and the prefix with its last character incremented."""
    if not prefix:
        return None
    last = ord(prefix[-1]) + 1
    if last > 0x10FFFF or 0xD800 <= last <= 0xDFFF:
        return None  # no successor character to bound with; the match alone decides
    return prefix, prefix[:-1] + chr(last)
