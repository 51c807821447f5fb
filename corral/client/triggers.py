"""Triggers: register a filtered subscription to item events that `corral worker` runs a
Python function for. Mixed into corral.client.Client.

    client.create_trigger("phash", dataset="cats", filter="mimetype~image/*",
                          actions=["created"], mode="once")
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask

from corral.catalog.v1 import filters_pb2 as fpb
from corral.catalog.v1 import resources_pb2
from corral.catalog.v1 import triggers_pb2 as tpb
from corral.client.convert import timestamp_to_iso
from corral.client.filters import FilterSpec, to_filter
from corral.errors import InvalidArgument
from corral.rpc import translated
from corral.structs import value_to_json

ACTIONS = {"created": resources_pb2.EVENT_TYPE_CREATED,
           "updated": resources_pb2.EVENT_TYPE_UPDATED,
           "deleted": resources_pb2.EVENT_TYPE_DELETED}
ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
MODES = {"once": tpb.TRIGGER_MODE_ONCE, "always": tpb.TRIGGER_MODE_ALWAYS}
MODE_NAMES = {v: k for k, v in MODES.items()}
_UNSET: Any = object()

TriggerDict = dict[str, Any]


def trigger_to_dict(trigger: tpb.Trigger) -> TriggerDict:
    return {
        "name": trigger.name, "project": trigger.project, "dataset_id": trigger.dataset_id,
        "filter": describe_filter(trigger.filter) if trigger.HasField("filter") else None,
        "actions": [ACTION_NAMES.get(a, str(a)) for a in trigger.actions],
        "mode": MODE_NAMES.get(trigger.mode, "once"), "paused": trigger.paused,
        "description": trigger.description, "consumer_group": trigger.consumer_group,
        "create_time": timestamp_to_iso(trigger.create_time),
        "update_time": timestamp_to_iso(trigger.update_time),
    }


_SYMBOLS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
            "in": "=", "nin": "!=", "glob": "~"}


def describe_filter(item_filter: fpb.ItemFilter) -> str:
    """A readable form of a stored filter, in the CLI's syntax where it has one: conditions
    joined by " & " (all) or " | " (any), nested groups in parentheses."""
    kind = item_filter.WhichOneof("kind")
    if kind in ("all_of", "any_of"):
        members = getattr(item_filter, kind).filters
        joined = (" & " if kind == "all_of" else " | ").join(
            f"({describe_filter(m)})" if m.WhichOneof("kind") != "condition"
            else describe_filter(m) for m in members)
        return joined
    condition = item_filter.condition
    op = fpb.FilterOperator.Name(condition.operator).removeprefix("FILTER_OPERATOR_").lower()
    value = value_to_json(condition.value)
    if op == "exists":
        return f"{'' if value else '!'}{condition.field}?"
    text = value if isinstance(value, str) and op == "glob" else json.dumps(value)
    if isinstance(value, str) and op != "glob" and _PLAIN.fullmatch(value):
        text = value
    return f"{condition.field}{_SYMBOLS.get(op, op)}{text}"


_PLAIN = re.compile(r"[A-Za-z_/.*][\w/.*+-]*")


def _actions(actions: Iterable[str]) -> list[int]:
    actions = list(actions)
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise InvalidArgument(f"actions: unknown {unknown}; use created, updated, deleted")
    return [ACTIONS[a] for a in actions]


def _mode(mode: str) -> int:
    if mode not in MODES:
        raise InvalidArgument(f"mode must be once or always, got {mode!r}")
    return MODES[mode]


class TriggersMixin:
    _catalog: Any
    timeout: float

    def _dataset_id(self, dataset: Any) -> str:  # provided by Client
        raise NotImplementedError

    def create_trigger(self, name: str, *, dataset: str | None = None,
                       filter: FilterSpec | None = None,
                       actions: Iterable[str] = ("created",), mode: str = "once",
                       paused: bool = False, description: str = "") -> TriggerDict:
        """A trigger on `dataset` (name or id; None: every dataset) for items matching
        `filter` (a Filter, a filter string or a list of them), on the given actions."""
        trigger = tpb.Trigger(name=name, actions=_actions(actions), mode=_mode(mode),
                              paused=paused, description=description,
                              dataset_id=self._dataset_id(dataset) if dataset else "")
        item_filter = to_filter(filter)
        if item_filter is not None:
            trigger.filter.CopyFrom(item_filter.to_proto())
        with translated():
            reply = self._catalog.CreateTrigger(tpb.CreateTriggerRequest(trigger=trigger),
                                                timeout=self.timeout)
        return trigger_to_dict(reply.trigger)

    def get_trigger(self, name: str) -> TriggerDict:
        return trigger_to_dict(self._get_trigger(name))

    def _get_trigger(self, name: str) -> tpb.Trigger:
        with translated():
            return self._catalog.GetTrigger(tpb.GetTriggerRequest(name=name),
                                            timeout=self.timeout).trigger

    def list_triggers(self) -> Iterator[TriggerDict]:
        request = tpb.ListTriggersRequest(page_size=1000)
        while True:
            with translated():
                reply = self._catalog.ListTriggers(request, timeout=self.timeout)
            yield from (trigger_to_dict(t) for t in reply.triggers)
            if not reply.next_page_token:
                return
            request.page_token = reply.next_page_token

    def update_trigger(self, name: str, *, dataset: str | None = _UNSET,
                       filter: FilterSpec | None = _UNSET, actions: Iterable[str] = _UNSET,
                       mode: str = _UNSET, paused: bool = _UNSET,
                       description: str = _UNSET) -> TriggerDict:
        """Changes only what is given; `dataset=None` widens the scope to every dataset,
        `filter=None` removes the filter."""
        trigger, paths = tpb.Trigger(name=name), []
        if dataset is not _UNSET:
            trigger.dataset_id = self._dataset_id(dataset) if dataset else ""
            paths.append("dataset_id")
        if filter is not _UNSET:
            item_filter = to_filter(filter)
            if item_filter is not None:
                trigger.filter.CopyFrom(item_filter.to_proto())
            paths.append("filter")
        if actions is not _UNSET:
            trigger.actions.extend(_actions(actions))
            paths.append("actions")
        if mode is not _UNSET:
            trigger.mode = _mode(mode)
            paths.append("mode")
        if paused is not _UNSET:
            trigger.paused = paused
            paths.append("paused")
        if description is not _UNSET:
            trigger.description = description
            paths.append("description")
        if not paths:
            raise InvalidArgument("update_trigger needs at least one change")
        with translated():
            reply = self._catalog.UpdateTrigger(tpb.UpdateTriggerRequest(
                trigger=trigger, update_mask=FieldMask(paths=paths)), timeout=self.timeout)
        return trigger_to_dict(reply.trigger)

    def pause_trigger(self, name: str) -> TriggerDict:
        return self.update_trigger(name, paused=True)

    def resume_trigger(self, name: str) -> TriggerDict:
        return self.update_trigger(name, paused=False)

    def delete_trigger(self, name: str) -> None:
        with translated():
            self._catalog.DeleteTrigger(tpb.DeleteTriggerRequest(name=name),
                                        timeout=self.timeout)
