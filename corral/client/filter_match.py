"""Evaluates an ItemFilter against one item (the snapshot an event carries), with the
semantics the catalog's SQL gives ListItems (see filters.proto and the README): typed
metadata comparisons, `ne`/`nin` matching absent keys, bytewise string order, globs where
"*" stops at "/". Used by `corral worker` for triggers; tests check it against the catalog's
answers for every filter of the query test corpus. The filter is assumed valid (the catalog
validated it when the trigger was stored)."""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from corral.catalog.v1 import filters_pb2 as pb
from corral.catalog.v1 import resources_pb2 as res
from corral.paths import normalize_dir
from corral.structs import struct_to_dict, value_to_json

ABSENT: Any = object()
_TYPES = {res.ITEM_TYPE_FILE: "file", res.ITEM_TYPE_DIR: "dir", res.ITEM_TYPE_LINK: "link"}
_OPS = {pb.FILTER_OPERATOR_EQ: "eq", pb.FILTER_OPERATOR_NE: "ne", pb.FILTER_OPERATOR_GT: "gt",
        pb.FILTER_OPERATOR_GTE: "gte", pb.FILTER_OPERATOR_LT: "lt",
        pb.FILTER_OPERATOR_LTE: "lte", pb.FILTER_OPERATOR_IN: "in",
        pb.FILTER_OPERATOR_NIN: "nin", pb.FILTER_OPERATOR_EXISTS: "exists",
        pb.FILTER_OPERATOR_GLOB: "glob"}
_ALIASES = {"create_time": "created_at", "update_time": "updated_at",
            "metadata.system.mimetype": "mimetype"}


def matches(item: res.Item, item_filter: pb.ItemFilter | None) -> bool:
    """True when the item matches; an unset filter matches every item."""
    if item_filter is None or item_filter.WhichOneof("kind") is None:
        return True
    return _Evaluator(item).matches(item_filter)


def reads_system_metadata(item_filter: pb.ItemFilter) -> bool:
    """Whether the filter looks at metadata.system (mimetype included), which preprocessing
    writes after an item's `created` event."""
    kind = item_filter.WhichOneof("kind")
    if kind in ("all_of", "any_of"):
        return any(reads_system_metadata(m) for m in getattr(item_filter, kind).filters)
    if kind is None:
        return False
    name = item_filter.condition.field
    return name == "mimetype" or name.startswith("metadata.system.")


class _Evaluator:
    def __init__(self, item: res.Item) -> None:
        self.item = item
        self._metadata: dict[str, dict[str, Any]] = {}

    def _meta(self, source: str) -> dict[str, Any]:
        if source not in self._metadata:
            self._metadata[source] = struct_to_dict(getattr(self.item.metadata, source))
        return self._metadata[source]

    def value(self, name: str) -> Any:
        item = self.item
        if name in ("name", "dir", "filename"):
            return getattr(item, name)
        if name == "type":
            return _TYPES.get(item.type, "file")
        if name == "size":
            return item.size
        if name in ("created_at", "updated_at"):
            stamp = item.create_time if name == "created_at" else item.update_time
            return stamp.ToDatetime(tzinfo=UTC)
        if name == "mimetype":
            value = self._meta("system").get("mimetype", ABSENT)
            return ABSENT if value is None else value
        source, _, path = name.partition(".")[2].partition(".")
        value: Any = self._meta(source)
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                return ABSENT
            value = value[key]
        return value

    def matches(self, node: pb.ItemFilter) -> bool:
        kind = node.WhichOneof("kind")
        if kind == "all_of":
            return all(self.matches(member) for member in node.all_of.filters)
        if kind == "any_of":
            return any(self.matches(member) for member in node.any_of.filters)
        condition = node.condition
        name = _ALIASES.get(condition.field, condition.field)
        op = _OPS[condition.operator]
        wanted = value_to_json(condition.value)
        return _compare(name, op, self.value(name), wanted)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "other"


def _equal(actual: Any, wanted: Any) -> bool:
    return actual is not ABSENT and _kind(actual) == _kind(wanted) and actual == wanted


@functools.lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    regex = ""
    for token in re.split(r"(/\*\*/|/\*\*$|^\*\*/|\*\*|\*|\?)", pattern):
        regex += {"/**/": "(/.*)?/", "/**": "(/.*)?", "**/": "(.*/)?", "**": ".*",
                  "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
    return re.compile(regex, re.DOTALL)


def _nfc(value: Any) -> Any:
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def _time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("z", "Z"))
    return (parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed).astimezone(UTC)


def _compare(name: str, op: str, actual: Any, wanted: Any) -> bool:
    if op == "exists":
        return (actual is not ABSENT) == wanted
    if name in ("created_at", "updated_at") and op != "glob":
        wanted = _time(wanted)
    if name in ("dir", "filename") and op in ("eq", "ne", "in", "nin"):
        wanted = [normalize_dir(w) for w in wanted] if isinstance(wanted, list) \
            else normalize_dir(wanted)
    elif name in ("name", "dir", "filename"):  # stored in NFC: any spelling means the same
        wanted = [_nfc(w) for w in wanted] if isinstance(wanted, list) else _nfc(wanted)
    if op in ("eq", "in", "ne", "nin"):
        options = wanted if op in ("in", "nin") else [wanted]
        if isinstance(actual, datetime):
            found = any(actual == w for w in options)
        else:
            found = any(_equal(actual, w) for w in options)
        return found if op in ("eq", "in") else not found
    if op == "glob":
        return isinstance(actual, str) and _glob(wanted).fullmatch(actual) is not None
    if actual is ABSENT:
        return False
    if not isinstance(actual, datetime) and _kind(actual) != _kind(wanted):
        return False
    if isinstance(actual, str):  # bytewise: UTF-8 order is code point order
        actual, wanted = actual.encode(), wanted.encode()
    return {"gt": actual > wanted, "gte": actual >= wanted, "lt": actual < wanted,
            "lte": actual <= wanted}[op]
