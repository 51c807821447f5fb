"""Which cursor may be committed: the low-watermark of finished events.

Events finish out of order (a big image takes longer than a text file), but a committed
cursor promises that every event up to it is done. So events are kept in arrival order
(cursors are opaque, only their order in the stream counts) and the committable cursor is
the last one of the finished prefix.
"""

from __future__ import annotations

from collections import OrderedDict


class Progress:
    def __init__(self) -> None:
        # cursor -> finished?, in stream order; the finished prefix is dropped as it forms.
        self._events: OrderedDict[str, bool] = OrderedDict()
        self.watermark = ""

    def start(self, cursor: str) -> bool:
        """Tracks a delivered event; False if it is already being tracked (a re-delivery)."""
        if cursor in self._events:
            return False
        self._events[cursor] = False
        return True

    def finish(self, cursor: str) -> bool:
        """Marks an event done; True when that moved the watermark."""
        if cursor not in self._events:
            return False
        self._events[cursor] = True
        moved = False
        while self._events:
            first, done = next(iter(self._events.items()))
            if not done:
                break
            del self._events[first]
            self.watermark, moved = first, True
        return moved

    @property
    def in_flight(self) -> int:
        return sum(1 for done in self._events.values() if not done)
