"""Item filters and sort keys for the SDK, built in Python or parsed from the CLI's short
syntax. Either way the catalog receives structured ItemFilter messages, never a string.

    from corral.client.filters import field

    cams = (field("metadata.user.camera") == 3) | (field("metadata.user.camera") == 4)
    big_jpegs = (field("size") > 100_000) & field("name").glob("*.jpg")
    client.list_items("cats", filter=cams & big_jpegs, order_by="-created_at")

The same filters as text (what `corral ls --filter` takes), one condition per string, the
strings of a list all required:

    "metadata.user.camera=3"     "size>100000"      "name~*.jpg"      "area!=north"
    "metadata.user.camera=[3,4]" (in)   "mimetype!=[image/png,image/gif]" (not in)
    "metadata.user.lot?" (exists)       "!metadata.user.lot?" (does not exist)
    "metadata.user.camera=3 | metadata.user.camera=4" (either)

Values are JSON when they parse as JSON (3, 2.5, true, "3", [1,2]) and strings otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from corral.catalog.v1 import filters_pb2 as pb
from corral.errors import InvalidArgument
from corral.structs import json_to_value, loads_strict

_OPERATORS = {
    "eq": pb.FILTER_OPERATOR_EQ, "ne": pb.FILTER_OPERATOR_NE, "gt": pb.FILTER_OPERATOR_GT,
    "gte": pb.FILTER_OPERATOR_GTE, "lt": pb.FILTER_OPERATOR_LT, "lte": pb.FILTER_OPERATOR_LTE,
    "in": pb.FILTER_OPERATOR_IN, "nin": pb.FILTER_OPERATOR_NIN,
    "exists": pb.FILTER_OPERATOR_EXISTS, "glob": pb.FILTER_OPERATOR_GLOB,
}
_TEXT_OPERATORS = {"=": "eq", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte",
                   "~": "glob"}
_CONDITION = re.compile(r"\s*(?P<field>[^\s=!<>~?|]+)\s*(?P<op>!=|>=|<=|=|>|<|~)(?P<value>.*)",
                        re.DOTALL)
_EXISTS = re.compile(r"\s*(?P<neg>!?)\s*(?P<field>[^\s=!<>~?|]+)\s*\?\s*")


class Filter:
    """A condition or a group; combine with & (all must match) and | (any)."""

    def to_proto(self) -> pb.ItemFilter:
        raise NotImplementedError

    def __and__(self, other: Filter) -> Filter:
        return Group("all", (*_members(self, "all"), *_members(other, "all")))

    def __or__(self, other: Filter) -> Filter:
        return Group("any", (*_members(self, "any"), *_members(other, "any")))


@dataclass(frozen=True, eq=False)
class Condition(Filter):
    field: str
    op: str
    value: Any

    def to_proto(self) -> pb.ItemFilter:
        return pb.ItemFilter(condition=pb.FilterCondition(
            field=self.field, operator=_OPERATORS[self.op],
            value=json_to_value(self.value, f"filter value of {self.field}")))

    def __repr__(self) -> str:
        return f"{self.field} {self.op} {self.value!r}"


@dataclass(frozen=True, eq=False)
class Group(Filter):
    kind: str  # "all" or "any"
    members: tuple[Filter, ...]

    def to_proto(self) -> pb.ItemFilter:
        group = pb.FilterGroup(filters=[member.to_proto() for member in self.members])
        return pb.ItemFilter(all_of=group) if self.kind == "all" else pb.ItemFilter(any_of=group)

    def __repr__(self) -> str:
        joiner = " & " if self.kind == "all" else " | "
        return "(" + joiner.join(repr(m) for m in self.members) + ")"


def _members(node: Filter, kind: str) -> tuple[Filter, ...]:
    """Flattens a & b & c into one group."""
    return node.members if isinstance(node, Group) and node.kind == kind else (node,)


class Field:
    """A field to compare: field("size") > 100, field("name").glob("*.jpg")."""

    __hash__ = None  # type: ignore[assignment]  # == builds a filter, so no hashing

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, value: Any) -> Condition:  # type: ignore[override]
        return Condition(self.name, "eq", value)

    def __ne__(self, value: Any) -> Condition:  # type: ignore[override]
        return Condition(self.name, "ne", value)

    def __gt__(self, value: Any) -> Condition:
        return Condition(self.name, "gt", value)

    def __ge__(self, value: Any) -> Condition:
        return Condition(self.name, "gte", value)

    def __lt__(self, value: Any) -> Condition:
        return Condition(self.name, "lt", value)

    def __le__(self, value: Any) -> Condition:
        return Condition(self.name, "lte", value)

    def is_in(self, values: Iterable[Any]) -> Condition:
        return Condition(self.name, "in", list(values))

    def not_in(self, values: Iterable[Any]) -> Condition:
        return Condition(self.name, "nin", list(values))

    def exists(self, present: bool = True) -> Condition:
        return Condition(self.name, "exists", present)

    def glob(self, pattern: str) -> Condition:
        """"*" any characters but "/", "?" one of them, "**" anything ("/a/**": below /a)."""
        return Condition(self.name, "glob", pattern)


def field(name: str) -> Field:
    return Field(name)


def parse_value(text: str) -> Any:
    """JSON when the text is JSON (numbers, booleans, quoted strings, lists), else the text;
    "[a,b]" that is not JSON is a list of such values ("[image/png, image/jpeg]")."""
    if text.startswith("[") and text.endswith("]"):
        try:
            return loads_strict(text)
        except ValueError:  # one level only: "[[a]]" is the list ["[a]"]
            return [_json_or_text(part.strip()) for part in text[1:-1].split(",")]
    return _json_or_text(text)


def _json_or_text(text: str) -> Any:
    try:  # NaN, Infinity, 1e400 and unparseable nesting are not JSON values: text
        return loads_strict(text)
    except ValueError:
        return text


def parse(text: str) -> Filter:
    """One condition in the CLI syntax, or several joined by "|" (any of them)."""
    alternatives = [_parse_condition(part) for part in _split_alternatives(text)]
    if len(alternatives) == 1:
        return alternatives[0]
    return Group("any", tuple(alternatives))


def _split_alternatives(text: str) -> list[str]:
    """Splits at "|" outside double-quoted JSON strings."""
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if char == "|" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
    parts.append("".join(current))
    return parts


def _parse_condition(text: str) -> Condition:
    exists = _EXISTS.fullmatch(text)
    if exists:
        return Condition(exists["field"], "exists", not exists["neg"])
    match = _CONDITION.fullmatch(text)
    if match is None:
        raise InvalidArgument(
            f"filter {text.strip()!r}: expected FIELD OP VALUE with OP one of "
            "= != > >= < <= ~ (glob), or FIELD? / !FIELD? (exists)")
    op = _TEXT_OPERATORS[match["op"]]
    raw = match["value"].strip()
    value = parse_value(raw)
    if op == "glob":
        value = value if isinstance(value, str) else raw
    elif isinstance(value, list):
        if op not in ("eq", "ne"):
            raise InvalidArgument(f"filter {text.strip()!r}: a list goes with = (in) or "
                                  "!= (not in)")
        op = "in" if op == "eq" else "nin"
    return Condition(match["field"], op, value)


FilterSpec = Filter | str | Sequence[Filter | str]


def to_filter(spec: FilterSpec | None) -> Filter | None:
    """A Filter from a Filter, a CLI-syntax string, or a list of them (all must match)."""
    if spec is None:
        return None
    if isinstance(spec, Filter):
        return spec
    if isinstance(spec, str):
        return parse(spec)
    parts = [to_filter(part) for part in spec]
    if not parts:
        return None
    combined = parts[0]
    for part in parts[1:]:
        combined = combined & part  # type: ignore[operator]
    return combined


def to_order(spec: str | Sequence[str] | None) -> list[pb.ItemOrder]:
    """"-created_at" (descending) or "size" (ascending), or a list of those."""
    if spec is None:
        return []
    keys = [spec] if isinstance(spec, str) else list(spec)
    return [pb.ItemOrder(field=key.lstrip("-+"), descending=key.startswith("-"))
            for key in keys]
