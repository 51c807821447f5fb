"""Many creates in one call: every entry is validated on its own and all are written by one
set-based write (items.create_items), so one bad entry fails alone and the rest commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from corral.errors import CorralError, InvalidArgument
from services.catalog.items import PreparedCreate, prepare_create
from services.catalog.items import create_items as create_items_work
from services.catalog.records import CreateItemResult, NewItem
from services.catalog.repository import Repository
from services.catalog.scope import EVERYWHERE, Scope

R = TypeVar("R")
MAX_BATCH_ITEMS = 1000

Write = Callable[[Callable[[Repository], Any]], Awaitable[Any]]


async def create_items(write: Write, requests: Sequence[R], to_new_item: Callable[[R], NewItem],
                       scope: Scope = EVERYWHERE) -> list[CreateItemResult | CorralError]:
    """One result per request, in order: the created item, or the error naming the entry."""
    if len(requests) > MAX_BATCH_ITEMS:
        raise InvalidArgument(
            f"requests holds {len(requests)} entries; at most {MAX_BATCH_ITEMS} per call")
    results: list[CreateItemResult | CorralError | None] = [None] * len(requests)
    valid: list[int] = []
    prepared: list[PreparedCreate] = []
    for index, request in enumerate(requests):
        try:
            prepared.append(prepare_create(to_new_item(request)))
        except CorralError as exc:
            results[index] = exc
        else:
            valid.append(index)
    if prepared:
        written = await write(create_items_work(prepared, scope))
        for index, result in zip(valid, written, strict=True):
            results[index] = result
    return [type(result)(f"requests[{index}]: {result.message}")
            if isinstance(result, CorralError) else result
            for index, result in enumerate(results)]  # type: ignore[misc]
