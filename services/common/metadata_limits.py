"""How large and how deeply nested a JSON object (metadata.user, metadata.system written by
triggers, CSV item_metadata) may be. The catalog enforces it on every write; the upload
service checks the same limits up front, before it stores a byte.

The depth default, 32, is also the deepest metadata protobuf can carry: each JSON level costs
three message levels in a google.protobuf.Struct (Struct, map entry, Value), and parsers stop at
100 levels, so 33 levels would no longer fit in an Item inside a SubscribeResponse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from corral.errors import InvalidArgument

MAX_METADATA_BYTES = 1024 * 1024
MAX_METADATA_DEPTH = 32
BYTES_ENV = "CORRAL_CATALOG_MAX_METADATA_BYTES"
DEPTH_ENV = "CORRAL_CATALOG_MAX_METADATA_DEPTH"


@dataclass(frozen=True)
class MetadataLimits:
    max_bytes: int = MAX_METADATA_BYTES
    max_depth: int = MAX_METADATA_DEPTH

    def __post_init__(self) -> None:
        if self.max_bytes < 2:  # "{}"
            raise ValueError(f"{BYTES_ENV} must be at least 2, got {self.max_bytes}")
        if not 1 <= self.max_depth <= MAX_METADATA_DEPTH:
            raise ValueError(f"{DEPTH_ENV} must be between 1 and {MAX_METADATA_DEPTH} (deeper "
                             f"metadata would not fit in protobuf messages), got {self.max_depth}")


_limits = MetadataLimits()


def metadata_limits() -> MetadataLimits:
    return _limits


def set_metadata_limits(limits: MetadataLimits) -> None:
    """Sets this process's limits; services call it once at start from their settings."""
    global _limits
    _limits = limits


def nesting_depth(value: Any) -> int:
    """Levels of objects and arrays: 0 for a scalar, 1 for {"a": 1}, 2 for {"a": [1]}.
    Iterative, so hostile depths cannot exhaust the Python stack."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))
    return deepest


def check_depth(value: Any, field: str) -> None:
    limit = _limits.max_depth
    depth = nesting_depth(value)
    if depth > limit:
        raise InvalidArgument(f"{field} is nested {depth} levels deep; the limit is {limit} "
                              f"({DEPTH_ENV})")


def checked_json_text(value: dict[str, Any], field: str) -> str:
    """The object's JSON text (as the catalog stores it) after checking its depth and size;
    NaN and infinities are refused too (JSON has no form for them)."""
    try:
        text = json.dumps(value, allow_nan=False)
    except RecursionError:  # far deeper than any limit
        check_depth(value, field)
        raise
    except ValueError as exc:
        raise InvalidArgument(f"{field} must hold finite numbers only: {exc}") from exc
    # Every object or array adds a bracket, so few brackets prove a shallow object without
    # walking it (brackets inside strings only make the count larger).
    if text.count("{") + text.count("[") > _limits.max_depth:
        check_depth(value, field)
    limit = _limits.max_bytes
    if len(text) > limit:  # ASCII: json.dumps escapes everything else
        raise InvalidArgument(f"{field} is {len(text)} bytes as JSON, larger than the limit "
                              f"of {limit} bytes ({BYTES_ENV})")
    return text
