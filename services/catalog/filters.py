"""The filter language: which fields exist, which operators and operand types each takes, and
the checks that turn a filter tree from a request into a validated one. Database-agnostic;
filter_sql.py compiles validated trees into parametrised SQL.

Every error names the offending clause by its position in the request, e.g.
"filter.all_of[1].any_of[0]: size gt needs a number, got 'big'"."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from corral import paths
from corral.errors import InvalidArgument

MAX_DEPTH = 8
MAX_CONDITIONS = 100
MAX_LIST_VALUES = 1000
MAX_STRING = 1024
MAX_PATH_SEGMENTS = 16
MAX_SORT_KEYS = 4
# Metadata keys that can be filtered on: the pattern keeps every path safe to spell out in SQL
# (no quotes, dots or JSON-path syntax inside a key) and unambiguous on both databases (a key
# starting with a digit would be an array index for PostgreSQL's #> but not for SQLite).
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
ITEM_TYPES = ("file", "dir", "link")


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    IN = "in"
    NIN = "nin"
    EXISTS = "exists"
    GLOB = "glob"


RANGE_OPS = frozenset({Op.GT, Op.GTE, Op.LT, Op.LTE})
EQUALITY_OPS = frozenset({Op.EQ, Op.NE, Op.IN, Op.NIN})


class Kind(StrEnum):
    TEXT = "text"          # a string column: name, dir, filename
    TYPE = "type"          # the item type column
    NUMBER = "number"      # size
    TIME = "time"          # create_time, update_time
    SYSTEM_TEXT = "system_text"  # a string the platform writes into metadata.system (mimetype)
    JSON = "json"          # any path into metadata.user or metadata.system


_OPS: dict[Kind, frozenset[Op]] = {
    Kind.TEXT: EQUALITY_OPS | RANGE_OPS | {Op.GLOB},
    Kind.TYPE: EQUALITY_OPS,
    Kind.NUMBER: EQUALITY_OPS | RANGE_OPS,
    Kind.TIME: frozenset({Op.EQ, Op.NE}) | RANGE_OPS,
    Kind.SYSTEM_TEXT: EQUALITY_OPS | RANGE_OPS | {Op.GLOB, Op.EXISTS},
    Kind.JSON: frozenset(Op),
}


@dataclass(frozen=True)
class Field:
    """A filterable, sortable field. Column fields name their items column; metadata fields
    name the JSON column and the key path inside it."""
    name: str
    kind: Kind
    column: str
    path: tuple[str, ...] = ()


_COLUMN_FIELDS = {
    "name": Field("name", Kind.TEXT, "name"),
    "dir": Field("dir", Kind.TEXT, "dir"),
    "filename": Field("filename", Kind.TEXT, "filename"),
    "type": Field("type", Kind.TYPE, "type"),
    "size": Field("size", Kind.NUMBER, "size"),
    "created_at": Field("created_at", Kind.TIME, "create_time"),
    "updated_at": Field("updated_at", Kind.TIME, "update_time"),
    "mimetype": Field("mimetype", Kind.SYSTEM_TEXT, "metadata_system", ("mimetype",)),
}
# The Item message's own names for the two timestamps work too.
_ALIASES = {"create_time": "created_at", "update_time": "updated_at",
            "metadata.system.mimetype": "mimetype"}
_METADATA_COLUMNS = {"metadata.user.": "metadata_user", "metadata.system.": "metadata_system"}
FIELD_NAMES = (*_COLUMN_FIELDS, "metadata.user.<path>", "metadata.system.<path>")


# The tree as it arrives (converted from protobuf, not yet checked).

@dataclass(frozen=True)
class Condition:
    field: str
    op: Op | None
    value: Any  # a JSON value; MISSING when the request set none


@dataclass(frozen=True)
class Group:
    any: bool  # any_of (or) when true, all_of (and) otherwise
    members: tuple[Filter | None, ...]  # None: a member that sets nothing


Filter = Condition | Group


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# The validated tree that filter_sql.py compiles.

@dataclass(frozen=True)
class Clause:
    field: Field
    op: Op
    value: Any  # normalised: str, int/float, bool, datetime (UTC), or a tuple of those


@dataclass(frozen=True)
class Checked:
    any: bool
    members: tuple[Clause | Checked, ...]


@dataclass(frozen=True)
class SortKey:
    field: Field
    descending: bool = False


def metadata_path(text: str, where: str) -> tuple[str, ...]:
    """The keys of a dot-separated metadata path, each checked against the strict pattern."""
    segments = tuple(text.split("."))
    if len(segments) > MAX_PATH_SEGMENTS:
        raise InvalidArgument(f"{where}: metadata path {text!r} has more than "
                              f"{MAX_PATH_SEGMENTS} keys")
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            raise InvalidArgument(
                f"{where}: metadata key {segment!r} in {text!r} is not filterable: keys must "
                "start with a letter or '_' and hold only letters, digits, '_' and '-' "
                "(at most 64 characters)")
    return segments


def resolve_field(name: str, where: str) -> Field:
    name = _ALIASES.get(name, name)
    if name in _COLUMN_FIELDS:
        return _COLUMN_FIELDS[name]
    for prefix, column in _METADATA_COLUMNS.items():
        if name.startswith(prefix):
            return Field(name, Kind.JSON, column, metadata_path(name[len(prefix):], where))
    shown = name if len(name) <= 80 else name[:80] + "..."
    raise InvalidArgument(f"{where}: unknown field {shown!r}; use one of "
                          f"{', '.join(FIELD_NAMES)}")


def check_filter(tree: Filter | None, where: str = "filter") -> Checked | None:
    """Validates a whole tree (None: no filter). Limits: nesting depth, number of
    conditions, operators per field type, operand types and sizes."""
    if tree is None:
        return None
    counter = [0]
    checked = _check(tree, where, 0, counter)
    return checked if isinstance(checked, Checked) else Checked(False, (checked,))


def _check(node: Filter | None, where: str, depth: int, counter: list[int]) -> Clause | Checked:
    if node is None:
        raise InvalidArgument(f"{where}: sets none of condition, all_of, any_of")
    if isinstance(node, Condition):
        counter[0] += 1
        if counter[0] > MAX_CONDITIONS:
            raise InvalidArgument(f"{where}: more than {MAX_CONDITIONS} conditions in the filter")
        return check_condition(node, where)
    kind = "any_of" if node.any else "all_of"
    if depth >= MAX_DEPTH:
        raise InvalidArgument(f"{where}: filter groups nest deeper than {MAX_DEPTH} levels")
    if not node.members:
        raise InvalidArgument(f"{where}.{kind}: needs at least one filter")
    return Checked(node.any, tuple(_check(member, f"{where}.{kind}[{i}]", depth + 1, counter)
                                   for i, member in enumerate(node.members)))


def check_condition(condition: Condition, where: str) -> Clause:
    if not condition.field:
        raise InvalidArgument(f"{where}: field is required")
    field = resolve_field(condition.field, where)
    if condition.op is None:
        raise InvalidArgument(f"{where}: operator is missing or unknown")
    op = condition.op
    if op not in _OPS[field.kind]:
        allowed = ", ".join(o for o in Op if o in _OPS[field.kind])
        raise InvalidArgument(f"{where}: {field.name} does not take {op}; it takes {allowed}")
    if condition.value is MISSING:
        raise InvalidArgument(f"{where}: {field.name} {op} needs a value")
    label = f"{where}: {field.name} {op}"
    return Clause(field, op, _operand(field, op, condition.value, label))


def _operand(field: Field, op: Op, value: Any, label: str) -> Any:
    if op == Op.EXISTS:
        if not isinstance(value, bool):
            raise InvalidArgument(f"{label} needs true or false, got {_show(value)}")
        return value
    if op == Op.GLOB:
        pattern = _string(value, label)
        # Names and paths are stored in NFC: any spelling of a pattern matches the same items.
        return unicodedata.normalize("NFC", pattern) if field.kind == Kind.TEXT else pattern
    if op in (Op.IN, Op.NIN):
        if not isinstance(value, list) or not value:
            raise InvalidArgument(f"{label} needs a non-empty list, got {_show(value)}")
        if len(value) > MAX_LIST_VALUES:
            raise InvalidArgument(f"{label} takes at most {MAX_LIST_VALUES} values")
        return tuple(dict.fromkeys(_scalar(field, op, v, label) for v in value))
    return _scalar(field, op, value, label)


def _scalar(field: Field, op: Op, value: Any, label: str) -> Any:
    """One comparison operand, in the form the field compares with."""
    kind = field.kind
    if kind == Kind.NUMBER:
        return _number(value, label)
    if kind == Kind.TIME:
        return _time(value, label)
    if kind == Kind.TYPE:
        if value not in ITEM_TYPES:
            raise InvalidArgument(f"{label} needs one of {', '.join(ITEM_TYPES)}, "
                                  f"got {_show(value)}")
        return value
    if kind in (Kind.TEXT, Kind.SYSTEM_TEXT):
        text = _string(value, label)
        if field.name in ("dir", "filename") and op in EQUALITY_OPS:
            # "/a/" and "a" name the same folder as the stored "/a".
            return paths.normalize_dir(text, label)
        # Names and paths are stored in NFC, so "e\u0301" finds the stored "\u00e9".
        return unicodedata.normalize("NFC", text) if kind == Kind.TEXT else text
    # JSON: numbers, strings, booleans; only numbers and strings have an order.
    if isinstance(value, bool):
        if op in RANGE_OPS:
            raise InvalidArgument(f"{label} needs a number or a string, got {_show(value)}")
        return value
    if isinstance(value, int | float):
        return _number(value, label)
    if isinstance(value, str):
        return _string(value, label)
    raise InvalidArgument(f"{label} needs a number, string or boolean, got {_show(value)}"
                          + ("; use exists to test for absence" if value is None else ""))


def _number(value: Any, label: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise InvalidArgument(f"{label} needs a number, got {_show(value)}")
    return value


def _string(value: Any, label: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{label} needs a string, got {_show(value)}")
    if len(value) > MAX_STRING or "\x00" in value:
        raise InvalidArgument(f"{label}: strings must be at most {MAX_STRING} characters "
                              "without NUL")
    return value


def _time(value: Any, label: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidArgument(f"{label} needs an RFC 3339 timestamp string, got {_show(value)}")
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise InvalidArgument(f"{label} needs an RFC 3339 timestamp such as "
                              f"2026-11-24T10:00:00Z, got {_show(value)}") from None
    # A timestamp without an offset is taken as UTC, the zone every stored time is in.
    try:
        return (parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed).astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is in year 0 in UTC
        raise InvalidArgument(f"{label}: {_show(value)} is out of range in UTC") from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def check_order(keys: list[tuple[str, bool]], where: str = "order_by") -> tuple[SortKey, ...]:
    if len(keys) > MAX_SORT_KEYS:
        raise InvalidArgument(f"{where}: at most {MAX_SORT_KEYS} sort keys")
    checked = []
    for i, (name, descending) in enumerate(keys):
        if not name:
            raise InvalidArgument(f"{where}[{i}]: field is required")
        checked.append(SortKey(resolve_field(name, f"{where}[{i}]"), descending))
    return tuple(checked)


def glob_regex(pattern: str) -> str:
    """An anchored regular expression for a glob, in the syntax Python's re and PostgreSQL's
    ARE share: "*" any run of characters but "/", "?" one such character, "**" anything;
    "/**/" also matches "/", and a trailing "/**" also matches the folder itself. Every other
    character is literal (punctuation escaped with a backslash, which both read as literal)."""
    out = [r"\A"]
    i, n = 0, len(pattern)
    while i < n:
        if pattern.startswith("/**/", i):
            out.append("(/.*)?/")
            i += 4
        elif pattern.startswith("/**", i) and i + 3 == n:
            out.append("(/.*)?")
            i += 3
        elif pattern.startswith("**/", i) and i == 0:
            out.append("(.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            char = pattern[i]
            out.append("\\" + char if char.isascii() and not char.isalnum() else char)
            i += 1
    out.append(r"\Z")
    return "".join(out)


def glob_prefix(pattern: str) -> str:
    """The literal text every match starts with (up to the first wildcard)."""
    cut = min((i for i in (pattern.find("*"), pattern.find("?")) if i >= 0), default=len(pattern))
    prefix = pattern[:cut]
    # "/a/**" also matches "/a" itself: the bound must not include the "/" before "**".
    if pattern[cut:].startswith("**") and prefix.endswith("/"):
        prefix = prefix[:-1]
    return prefix
