"""JSON objects <-> google.protobuf.Struct.

Struct stores every number as a double; integral values come back as int so that
{"camera": 3} round-trips as 3, not 3.0 (JSON itself does not distinguish them).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict, ParseDict

from corral.errors import InvalidArgument

_MAX_SAFE_INT = 2**53
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # what json.loads skips around a document


def _restore_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= _MAX_SAFE_INT:
        return int(value)
    if isinstance(value, dict):
        return {k: _restore_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_ints(v) for v in value]
    return value


def _json_value(value: struct_pb2.Value) -> Any:
    """MessageToDict(value) with integral numbers as int, walked directly: json_format's
    generic walk costs ~10x more, and every write-back and item create converts a Struct."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise ValueError(f"{number} for Value.number_value has no JSON form")
        return int(number) if number.is_integer() and abs(number) <= _MAX_SAFE_INT else number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {key: _json_value(item) for key, item in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_json_value(item) for item in value.list_value.values]
    return None  # null_value, or no kind set (MessageToDict answers None too)


def struct_to_dict(struct: struct_pb2.Struct | None, field: str = "metadata") -> dict[str, Any]:
    if struct is None:
        return {}
    try:
        return {key: _json_value(item) for key, item in struct.fields.items()}
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


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is too large for a double")
    return number


_STRICT = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite)


def loads_strict(text: str) -> Any:
    """json.loads for user-supplied text, keeping only what JSON and a Struct can hold: NaN,
    Infinity and numbers that overflow a double are refused, and every failure (nesting too
    deep for the parser, integers of thousands of digits) is a ValueError."""
    try:
        value, end = _STRICT.raw_decode(text, _WHITESPACE.match(text).end())
    except RecursionError:
        raise ValueError("nests too deeply") from None
    end = _WHITESPACE.match(text, end).end()
    if end != len(text):
        raise ValueError(f"extra data at char {end}")
    return value


def parse_json_object(text: str, field: str = "metadata") -> dict[str, Any]:
    """Parses user-supplied JSON text that must be an object."""
    try:
        value = loads_strict(text)
    except ValueError as exc:  # JSONDecodeError and the refusals of loads_strict
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
