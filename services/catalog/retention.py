"""Event retention: events older than the configured age are deleted in the background, in
stream order, and the newest deleted position is recorded so that a cursor before it answers
OUT_OF_RANGE instead of skipping events (events.require_retained)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from services.catalog.lease_repository import LeaseRepository
from services.catalog.repository import Repository, Store

log = logging.getLogger("corral.catalog.retention")

BATCH = 5000


def sweep(store: Store, retention_seconds: float, now: datetime | None = None) -> int:
    """Deletes the events written more than `retention_seconds` before `now`, stopping at the
    first younger one in stream order (a later cursor must never cover a kept older event).
    One short transaction per batch. Returns how many were deleted."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=retention_seconds)

    def one_batch(repo: Repository) -> tuple[int, bool]:
        leases = LeaseRepository(repo)
        oldest = leases.oldest_events(BATCH)
        expired = 0
        for _, written in oldest:
            if _aware(written) >= cutoff:
                break
            expired += 1
        if not expired:
            return 0, False
        deleted = leases.delete_events_through(oldest[expired - 1][0], now)
        return deleted, expired == BATCH

    total = 0
    while True:
        deleted, more = store.db.write(lambda conn: one_batch(Repository(conn, store.db)))
        total += deleted
        if not more:
            return total


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def run_periodically(store: Store, retention_seconds: float,
                           interval_seconds: float) -> None:
    """Sweeps every `interval_seconds` until cancelled; a failed sweep is retried next time."""
    while True:
        try:
            deleted = await asyncio.to_thread(sweep, store, retention_seconds)
            if deleted:
                log.info("deleted expired events", extra={"count": deleted})
        except Exception:  # the database may be briefly unreachable: try again later
            log.warning("event retention sweep failed", exc_info=True)
        await asyncio.sleep(interval_seconds)
