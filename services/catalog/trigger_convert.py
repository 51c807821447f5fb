"""Triggers: protobuf messages <-> the records of triggers.py."""

from __future__ import annotations

from datetime import UTC, datetime

from corral.catalog.v1 import filters_pb2 as fpb
from corral.catalog.v1 import triggers_pb2 as tpb
from corral.errors import InvalidArgument
from corral.structs import json_to_value
from services.catalog import filter_convert
from services.catalog.convert import EVENT_TYPES, EVENT_TYPES_IN, struct_in, timestamp
from services.catalog.filters import Condition, Filter
from services.catalog.scope import Scope
from services.catalog.triggers import RunRecord, Trigger

MODES = {"once": tpb.TRIGGER_MODE_ONCE, "always": tpb.TRIGGER_MODE_ALWAYS}
MODES_IN = {tpb.TRIGGER_MODE_UNSPECIFIED: "once", tpb.TRIGGER_MODE_ONCE: "once",
            tpb.TRIGGER_MODE_ALWAYS: "always"}
_OPERATORS_OUT = {op: value for value, op in filter_convert.OPERATORS.items()}


def trigger_in(message: tpb.Trigger) -> Trigger:
    return Trigger(
        id="", name=message.name, description=message.description,
        dataset_id=message.dataset_id,
        filter=filter_convert.filter_in(message.filter, "trigger.filter")
        if message.HasField("filter") else None,
        actions=tuple(EVENT_TYPES_IN.get(a) for a in message.actions),  # type: ignore[misc]
        mode=MODES_IN.get(message.mode, f"unknown ({message.mode})"), paused=message.paused)


def filter_out(tree: Filter) -> fpb.ItemFilter:
    if isinstance(tree, Condition):
        return fpb.ItemFilter(condition=fpb.FilterCondition(
            field=tree.field, operator=_OPERATORS_OUT[tree.op],
            value=json_to_value(tree.value, tree.field)))
    group = fpb.FilterGroup(filters=[filter_out(m) for m in tree.members if m is not None])
    return fpb.ItemFilter(any_of=group) if tree.any else fpb.ItemFilter(all_of=group)


def trigger_to_proto(trigger: Trigger, viewer: Scope) -> tpb.Trigger:
    """`viewer`: the caller, who names the trigger's consumer group in its own terms."""
    return tpb.Trigger(
        name=trigger.name, project=trigger.project, dataset_id=trigger.dataset_id,
        filter=filter_out(trigger.filter) if trigger.filter is not None else None,
        actions=[EVENT_TYPES[a] for a in trigger.actions], mode=MODES[trigger.mode],
        paused=trigger.paused, consumer_group=viewer.shown_group(trigger.consumer_group),
        create_time=timestamp(trigger.create_time), update_time=timestamp(trigger.update_time),
        description=trigger.description)


def run_in(request: tpb.CompleteTriggerRunRequest) -> RunRecord:
    run = request.run
    try:
        finish = (run.finish_time.ToDatetime(tzinfo=UTC) if run.HasField("finish_time")
                  else datetime.now(UTC))
    except (ValueError, OverflowError) as exc:  # seconds outside years 1-9999
        raise InvalidArgument(f"run.finish_time is not a valid timestamp: {exc}") from None
    return RunRecord(run.status, run.attempts, run.duration_ms, run.error, finish)


def system_in(request: tpb.CompleteTriggerRunRequest) -> dict | None:
    return struct_in(request.system, "system") if request.HasField("system") else None
