"""Wakes this process's subscribers as soon as one of its transactions commits; events written
by other replicas are found by polling."""

from __future__ import annotations

import asyncio
import contextlib


class CommitSignal:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._committed = asyncio.Event()
        self._wake_pending = False
        self.closed = False
        # Bumped when this process freed leased room (acknowledgements, leases given back):
        # a subscriber whose room is full skips wake-ups that did not (see leases.py).
        self.freed = 0

    def close(self) -> None:
        """Ends every subscription loop waiting on this signal (the server is stopping)."""
        self.closed = True
        self.notify()

    def ticket(self) -> asyncio.Event:
        """Take one before reading, then wait on it: a commit in between is not missed."""
        return self._committed

    def notify(self) -> None:
        """Call from the event loop's thread."""
        self._committed.set()
        self._committed = asyncio.Event()

    def notify_freed(self) -> None:
        """After a commit that acknowledged leased events or gave leases back (event loop's
        thread)."""
        self.freed += 1
        self.notify()

    def notify_threadsafe(self) -> None:
        """Wakes the loop at most once however many commits land before it runs: a commit
        that sees a wake-up pending is covered by it, since the flag drops before notify()
        and subscribers read only after that."""
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            self._wake_pending = False

    def _wake(self) -> None:
        self._wake_pending = False
        self.notify()

    @staticmethod
    async def wait(ticket: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ticket.wait(), timeout)
