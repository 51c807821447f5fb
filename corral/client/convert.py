"""Protobuf messages -> plain dicts a user can print, compare and JSON-dump."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import message, timestamp_pb2

from corral.catalog.v1 import resources_pb2
from corral.errors import InvalidArgument
from corral.structs import struct_to_dict

ItemDict = dict[str, Any]
DatasetDict = dict[str, Any]
EventDict = dict[str, Any]

ITEM_TYPES = {
    resources_pb2.ITEM_TYPE_UNSPECIFIED: "unspecified",
    resources_pb2.ITEM_TYPE_FILE: "file",
    resources_pb2.ITEM_TYPE_DIR: "dir",
    resources_pb2.ITEM_TYPE_LINK: "link",
}
OUTCOMES = {
    resources_pb2.CREATE_OUTCOME_UNSPECIFIED: "unspecified",
    resources_pb2.CREATE_OUTCOME_CREATED: "created",
    resources_pb2.CREATE_OUTCOME_SKIPPED: "skipped",
    resources_pb2.CREATE_OUTCOME_OVERWRITTEN: "overwritten",
}
EVENT_TYPES = {
    resources_pb2.EVENT_TYPE_UNSPECIFIED: "unspecified",
    resources_pb2.EVENT_TYPE_CREATED: "created",
    resources_pb2.EVENT_TYPE_UPDATED: "updated",
    resources_pb2.EVENT_TYPE_DELETED: "deleted",
}
EVENT_TYPES_BY_NAME = {name: value for value, name in EVENT_TYPES.items()}
DUPLICATE_POLICIES = {
    "skip": resources_pb2.DUPLICATE_POLICY_SKIP,
    "overwrite": resources_pb2.DUPLICATE_POLICY_OVERWRITE,
    "fail": resources_pb2.DUPLICATE_POLICY_FAIL,
}


def duplicate_policy(on_exists: str) -> int:
    """The proto DuplicatePolicy for "skip", "overwrite" or "fail"; InvalidArgument otherwise."""
    if on_exists not in DUPLICATE_POLICIES:
        raise InvalidArgument(f"on_exists must be one of {', '.join(DUPLICATE_POLICIES)}, "
                              f"got {on_exists!r}")
    return DUPLICATE_POLICIES[on_exists]


def timestamp_to_iso(ts: timestamp_pb2.Timestamp) -> str | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    # Built directly: Timestamp.ToDatetime costs more than the rest of an item's conversion.
    return datetime.fromtimestamp(ts.seconds, UTC).replace(
        microsecond=ts.nanos // 1000).isoformat()


def item_to_dict(item: resources_pb2.Item) -> ItemDict:
    return {
        "id": item.id,
        "dataset_id": item.dataset_id,
        "dir": item.dir,
        "name": item.name,
        "filename": item.filename,
        "type": ITEM_TYPES.get(item.type, "unspecified"),
        "size": item.size,
        "sha256": item.sha256,
        "description": item.description,
        "metadata": {
            "system": struct_to_dict(item.metadata.system),
            "user": struct_to_dict(item.metadata.user),
        },
        "create_time": timestamp_to_iso(item.create_time),
        "update_time": timestamp_to_iso(item.update_time),
        "link": {"url": item.link.url, "mimetype": item.link.mimetype}
        if item.type == resources_pb2.ITEM_TYPE_LINK else None,
    }


def dataset_to_dict(dataset: resources_pb2.Dataset) -> DatasetDict:
    return {
        "id": dataset.id,
        "name": dataset.name,
        "description": dataset.description,
        "project": dataset.project,
        "create_time": timestamp_to_iso(dataset.create_time),
        "item_count": dataset.item_count,
        "preprocessing": preprocessing_mode_name(dataset.preprocessing),
    }


PREPROCESSING_MODES = ("global", "private", "off")


def preprocessing_mode_name(value: int) -> str:
    """PREPROCESSING_MODE_PRIVATE -> "private" (unset reads as the default, "global")."""
    if value == resources_pb2.PREPROCESSING_MODE_UNSPECIFIED:
        return "global"
    return resources_pb2.PreprocessingMode.Name(value).removeprefix("PREPROCESSING_MODE_").lower()


def preprocessing_mode_value(mode: str) -> int:
    """"private" -> PREPROCESSING_MODE_PRIVATE; InvalidArgument naming `mode` otherwise."""
    if mode not in PREPROCESSING_MODES:
        raise InvalidArgument(f"mode must be one of {', '.join(PREPROCESSING_MODES)}: {mode!r}")
    return resources_pb2.PreprocessingMode.Value(f"PREPROCESSING_MODE_{mode.upper()}")


def event_to_dict(event: resources_pb2.ItemEvent) -> EventDict:
    return {
        "cursor": event.cursor,
        "type": EVENT_TYPES.get(event.type, "unspecified"),
        "item_id": event.item_id,
        "dataset_id": event.dataset_id,
        "item": item_to_dict(event.item) if event.HasField("item") else None,
        "create_time": timestamp_to_iso(event.create_time),
    }


def scalar_fields_to_dict(msg: message.Message) -> dict[str, Any]:
    """Every scalar field by its proto name, defaults included and int64 kept as int
    (MessageToDict would turn int64 into strings)."""
    return {field.name: getattr(msg, field.name) for field in msg.DESCRIPTOR.fields}
