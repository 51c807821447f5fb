"""Filters and sort keys: protobuf messages -> the domain's unchecked trees (filters.py)."""

from __future__ import annotations

from collections.abc import Iterable

from corral.catalog.v1 import filters_pb2 as pb
from corral.structs import value_to_json
from services.catalog.filters import MISSING, Condition, Filter, Group, Op

OPERATORS = {
    pb.FILTER_OPERATOR_EQ: Op.EQ, pb.FILTER_OPERATOR_NE: Op.NE, pb.FILTER_OPERATOR_GT: Op.GT,
    pb.FILTER_OPERATOR_GTE: Op.GTE, pb.FILTER_OPERATOR_LT: Op.LT,
    pb.FILTER_OPERATOR_LTE: Op.LTE, pb.FILTER_OPERATOR_IN: Op.IN,
    pb.FILTER_OPERATOR_NIN: Op.NIN, pb.FILTER_OPERATOR_EXISTS: Op.EXISTS,
    pb.FILTER_OPERATOR_GLOB: Op.GLOB,
}


def filter_in(message: pb.ItemFilter, where: str = "filter") -> Filter | None:
    """None for a filter that sets nothing (the check names it when it is nested). `where`
    names the clause in errors, as filters.check_filter does."""
    kind = message.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "condition":
        condition = message.condition
        value = value_to_json(condition.value, f"{where}: value") \
            if condition.HasField("value") else MISSING
        return Condition(condition.field, OPERATORS.get(condition.operator), value)
    group = message.any_of if kind == "any_of" else message.all_of
    return Group(kind == "any_of", tuple(filter_in(member, f"{where}.{kind}[{i}]")
                                         for i, member in enumerate(group.filters)))


def order_in(keys: Iterable[pb.ItemOrder]) -> list[tuple[str, bool]]:
    return [(key.field, key.descending) for key in keys]
