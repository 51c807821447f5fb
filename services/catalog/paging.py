"""Pages bounded by bytes as well as by count.

A page of 1000 entries can outgrow a gRPC message (an item may carry up to
CORRAL_CATALOG_MAX_METADATA_BYTES of user metadata), so a list ends its page early once its
entries' encoded size reaches a budget (CORRAL_CATALOG_MAX_PAGE_BYTES), and its page token
continues after the last entry it returned. The first entry is always returned, whatever its
size: the metadata limits keep one entry far below the message limit. The size of an entry
comes from the caller (the servicer knows the wire format; this module does not)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# Rows a listing reads at once: the first read is small, so a page of large entries (~1 MB
# each, 9 to a page) reads few rows it then leaves out; later reads take about as many as the
# page still has room for, growing at most GROWTH-fold, so a page of 1000 small entries
# takes three reads (each a round trip on PostgreSQL).
FIRST_BATCH = 16
GROWTH = 8


@dataclass(frozen=True)
class PageBudget(Generic[T]):
    size_of: Callable[[T], int]  # encoded bytes of one entry, as it will be sent
    max_bytes: int

    def fitting(self, entries: Sequence[T]) -> int:
        """How many of `entries`, from the first, fit (at least one when there are any)."""
        fill = self.start()
        for count, entry in enumerate(entries):
            if not fill.add(entry):
                return count
        return len(entries)

    def start(self) -> PageFill[T]:
        return PageFill(self)


class PageFill(Generic[T]):
    """One page being filled: `add` takes entries while they fit."""

    def __init__(self, budget: PageBudget[T]) -> None:
        self._budget = budget
        self.used = self.count = self.largest = 0

    def add(self, entry: T) -> bool:
        size = self._budget.size_of(entry)
        if self.count and self.used + size > self._budget.max_bytes:
            return False
        self.used, self.count = self.used + size, self.count + 1
        self.largest = max(self.largest, size)
        return True

    def rows_to_read(self, wanted: int, last_batch: int) -> int:
        """How many rows to read next, of the `wanted` the page could still take: about as
        many as fit, judging by the largest entry so far, and at most GROWTH times the last
        read (entries that suddenly grow are read a bounded number at a time)."""
        if not self.count:
            return min(wanted, FIRST_BATCH)
        room = (self._budget.max_bytes - self.used) // max(self.largest, 1) + 1
        return max(1, min(wanted, room, GROWTH * last_batch))
