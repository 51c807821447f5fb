"""Many creates in one call: every entry is validated and written on its own (its own
savepoint in the group-commit writer), so one bad entry fails alone and the rest commit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from corral.errors import CorralError, InvalidArgument
from services.catalog.items import create_item
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

    async def one(index: int, request: R) -> CreateItemResult | CorralError:
        try:
            return await write(create_item(to_new_item(request), scope))
        except CorralError as exc:
            return type(exc)(f"requests[{index}]: {exc.message}")

    return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))
