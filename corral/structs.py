"""JSON objects <-> google.protobuf.Struct.

Struct stores every number as a double; integral values come back as int so that
{"camera": 3} round-trips as 3, not 3.0 (JSON itself does not distinguish them).
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict, ParseDict

from corral.errors import InvalidArgument

_MAX_SAFE_INT = 2**53


def _restore_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= _MAX_SAFE_INT:
        return int(value)
    if isinstance(value, dict):
        return {k: _restore_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_ints(v) for v in value]
    return value


def struct_to_dict(struct: struct_pb2.Struct | None, field: str = "metadata") -> dict[str, Any]:
    if struct is None:
        return {}
    try:
        return _restore_ints(MessageToDict(struct))
    except ValueError as exc:  # NaN and Infinity have no JSON form
        raise InvalidArgument(f"{field} is not representable as JSON: {exc}") from exc


def dict_to_struct(data: dict[str, Any] | None, field: str = "metadata") -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if not data:
        return struct
    if not isinstance(data, dict):
        raise InvalidArgument(f"{field} must be a JSON object, got {type(data).__name__}")
    try:
        ParseDict(data, struct)
    except Exception as exc:  # protobuf raises several types for unrepresentable values
        raise InvalidArgument(f"{field} is not representable as JSON: {exc}") from exc
    return struct


def parse_json_object(text: str, field: str = "metadata") -> dict[str, Any]:
    """Parses user-supplied JSON text that must be an object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{field} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object, got {type(value).__name__}")
    return value


def value_to_json(value: struct_pb2.Value, field: str = "value") -> Any:
    """A google.protobuf.Value as a JSON value (integral numbers as int)."""
    try:
        return _restore_ints(MessageToDict(value))
    except ValueError as exc:  # NaN and Infinity have no JSON form
        raise InvalidArgument(f"{field} is not representable as JSON: {exc}") from exc


def json_to_value(data: Any, field: str = "value") -> struct_pb2.Value:
    value = struct_pb2.Value()
    try:
        ParseDict(data, value)
    except Exception as exc:  # protobuf raises several types for unrepresentable values
        raise InvalidArgument(f"{field} is not representable as JSON: {exc}") from exc
    return value
