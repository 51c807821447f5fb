"""Handing a batch's outcomes back to the callers that wait for them."""

from __future__ import annotations

import asyncio
from typing import Any


def resolve(future: asyncio.Future[Any], outcome: Any) -> None:
    """Completes `future` with `outcome`, raised if it is an exception; a future its caller
    cancelled (or one already completed) is left as it is."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
