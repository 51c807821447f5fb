"""Leased consumer groups: the group's subscribers share its events, each event leased to one
of them at a time and delivered again (to any of them) when its lease expires unacknowledged.

The outbox stays the source. Per group, a frontier marks how far events have been turned into
lease rows; a row is pending (no owner) or leased to a subscriber until an expiry, and an
acknowledgement deletes it. The group's committed cursor (GetConsumerGroup, lag) is the
low-watermark: the position just before its oldest unacknowledged event, or the frontier.

Delivery is at-least-once: an event is handled twice only when a lease expired while its
holder was still working (or had died after the work but before the ack), so handlers must be
idempotent. A subscriber holds at most max_in_flight unacknowledged events; a new claim fills
the room acknowledgements free."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from corral.errors import FailedPrecondition, InvalidArgument
from services.catalog import events
from services.catalog.lease_repository import LeasedGroup, LeaseRepository
from services.catalog.notify import CommitSignal
from services.catalog.records import (
    ConsumerGroupState,
    Dataset,
    Event,
    EventFilter,
    Position,
    PreprocessingMode,
    StartPosition,
)
from services.catalog.repository import Repository, Store
from services.catalog.scope import EVERYWHERE, Scope

T = TypeVar("T")

DEFAULT_MAX_IN_FLIGHT = 64
MAX_IN_FLIGHT_LIMIT = 1024
MAX_LEASE_SECONDS = 3600
SCAN_BATCH = 256
# Events of other types or datasets are stepped over; this bounds one claim's scanning.
MAX_SCANS_PER_CLAIM = 16


@dataclass(frozen=True)
class LeaseRequest:
    consumer_group: str  # as stored (scope.Scope.group)
    subscriber_id: str
    lease_seconds: int
    max_in_flight: int
    event_filter: EventFilter


@dataclass(frozen=True)
class LeasedEvent:
    event: Event
    subscriber_id: str
    expire_ms: int
    # 1 on the first delivery.
    attempt: int


def now_ms() -> int:
    return int(time.time() * 1000)


def lease_request(consumer_group: str, subscriber_id: str, lease_seconds: int,
                  max_in_flight: int, event_filter: EventFilter,
                  start_cursor: str = "", scope: Scope = EVERYWHERE) -> LeaseRequest:
    events.check_group_name(consumer_group)
    if start_cursor:
        raise InvalidArgument("start_cursor cannot be combined with lease_seconds: a leased "
                              "group resumes from its own unacknowledged events")
    _check_lease_seconds(lease_seconds, minimum=1)
    if not 0 <= max_in_flight <= MAX_IN_FLIGHT_LIMIT:
        raise InvalidArgument(f"max_in_flight must be between 0 and {MAX_IN_FLIGHT_LIMIT}")
    if subscriber_id:
        events.check_group_name(subscriber_id, "subscriber_id")
    return LeaseRequest(scope.group(consumer_group), subscriber_id or uuid.uuid4().hex,
                        lease_seconds, max_in_flight or DEFAULT_MAX_IN_FLIGHT,
                        events.check_filter(event_filter, scope))


def _check_lease_seconds(lease_seconds: int, minimum: int) -> None:
    if not minimum <= lease_seconds <= MAX_LEASE_SECONDS:
        raise InvalidArgument(
            f"lease_seconds must be between {minimum} and {MAX_LEASE_SECONDS}")


def _filter_columns(event_filter: EventFilter) -> tuple[str, str, str]:
    return (",".join(sorted(str(kind) for kind in event_filter.types)), event_filter.dataset_id,
            ",".join(sorted(str(mode) for mode in event_filter.dataset_modes)))


def _matches(group: LeasedGroup, kind: str, dataset_id: str, project: str) -> bool:
    return ((not group.event_types or kind in group.event_types.split(","))
            and (not group.dataset_id or dataset_id == group.dataset_id)
            and (not group.project or project == group.project))


def _outside_modes(repo: Repository, modes: frozenset[str], dataset_ids: list[str]) -> set[str]:
    """Those of the datasets whose preprocessing mode is not one of `modes` (deleted ones
    included); none when `modes` is empty (no mode filter)."""
    if not modes or not dataset_ids:
        return set()
    current = repo.dataset_modes(dataset_ids)
    return {d for d in dataset_ids if d not in current or str(current[d]) not in modes}


def write_quietly(store: Store, work: Callable[[Repository], T]) -> T:
    """A write that wakes no subscriber: claims and lease extensions add no event and free no
    room, and waking every subscriber on each claim would make them claim in a loop."""
    return store.db.write(lambda conn: work(Repository(conn, store.db)))


def join(request: LeaseRequest, where: StartPosition,
         scope: Scope = EVERYWHERE) -> Callable[[Repository], None]:
    """Creates the leased group on its first subscriber: it starts after the group's committed
    cursor, else at `where`. Later subscribers must ask for the same filter; the group's
    project is the first subscriber's (a subscriber of every project may join any group, one
    of a project only that project's groups)."""
    name = request.consumer_group
    wanted = _filter_columns(request.event_filter)
    project = request.event_filter.project

    def work(repo: Repository) -> None:
        events.require_filter_dataset(repo, request.event_filter, scope)
        leases = LeaseRepository(repo)
        group = leases.get_group(name)
        if group is None:
            start = repo.get_consumer_group(name)
            if start is not None:
                events.require_retained(repo, start, f"consumer group {name!r} committed cursor")
            elif where == StartPosition.LATEST:
                start = repo.head_position() or events.ORIGIN
            else:
                start = leases.trimmed_through() or events.ORIGIN
            types, dataset_id, modes = wanted
            leases.insert_group(LeasedGroup(name, types, dataset_id, start, modes,
                                            project or ""), datetime.now(UTC))
            group = leases.get_group(name)
            assert group is not None
        if group.dataset_modes is None:  # created before dataset modes existed
            leases.set_group_modes(name, wanted[2])
            group = replace(group, dataset_modes=wanted[2])
        if (group.event_types, group.dataset_id, group.dataset_modes) != wanted:
            raise FailedPrecondition(
                f"consumer group {scope.shown_group(name)!r} leases event_types "
                f"[{group.event_types}] of dataset_id {group.dataset_id!r} and "
                f"dataset_preprocessing [{group.dataset_modes}]: every subscriber of the group "
                "must ask for the same")
        if project is not None and group.project != project:
            # Only instance-wide callers can name a group of another project (or of all).
            raise FailedPrecondition(
                f"consumer group {scope.shown_group(name)!r} leases the events of "
                + (f"project {group.project!r}" if group.project else "every project")
                + f", not of project {project!r}")

    return work


@dataclass(frozen=True)
class Claimed:
    events: list[LeasedEvent]
    # Room is left and events may be claimable right now (a scan stopped at its limit): claim
    # again at once instead of waiting for a commit.
    more: bool = False
    # No room is left: until an acknowledgement, a give-back or an expiry a claim finds
    # nothing however many events are added.
    full: bool = False


def claim(request: LeaseRequest) -> Callable[[Repository], Claimed]:
    """Leases to the subscriber as many events as it has room for: expired or pending ones
    first (oldest first), then new events past the group's frontier."""
    name, owner = request.consumer_group, request.subscriber_id
    modes = frozenset(str(mode) for mode in request.event_filter.dataset_modes)

    def work(repo: Repository) -> Claimed:
        leases = LeaseRepository(repo)
        now = now_ms()
        room = request.max_in_flight - leases.held_by(name, owner, now)
        if room <= 0:
            return Claimed([], full=True)
        expire = now + request.lease_seconds * 1000
        leased: list[LeasedEvent] = []
        skipped = False
        more = True  # until a pass ends without hitting a limit
        for _ in range(MAX_SCANS_PER_CLAIM):
            claims = leases.claim(name, owner, now, expire, room - len(leased))
            beyond = False
            if len(leased) + len(claims) < room:
                extended, beyond = _extend_frontier(repo, leases, name)
                if extended:
                    claims += leases.claim(name, owner, now, expire,
                                           room - len(leased) - len(claims))
            found = leases.events_at([c.position.seq for c in claims])
            # Pending rows added before their dataset changed mode are skipped now: the mode
            # holds for every event not yet delivered.
            outside = _outside_modes(repo, modes, [e.dataset_id for e in found.values()])
            drop = [c.position.seq for c in claims if c.position.seq not in found
                    or found[c.position.seq].dataset_id in outside]
            if drop:  # deleted by retention after they were added, or skipped
                leases.delete_leases(name, drop)
                skipped = True
            leased += [LeasedEvent(found[c.position.seq], owner, expire, c.attempts)
                       for c in claims if c.position.seq not in drop]
            if not drop or len(leased) >= room:
                more = beyond
                break
        if skipped and (group := leases.get_group(name)) is not None:
            _commit_watermark(repo, leases, group, group.frontier)
        return Claimed(leased, more and len(leased) < room, full=len(leased) >= room)

    return work


def _extend_frontier(repo: Repository, leases: LeaseRepository,
                     name: str) -> tuple[bool, bool]:
    """Adds pending rows for the group's next events. (False, _) when there were none, or
    another replica is extending the frontier right now (its rows become claimable when it
    commits); the second value tells whether events beyond the new frontier may remain."""
    group = leases.get_group(name, lock=True)
    if group is None:
        return False, False
    events.require_retained(repo, group.frontier, f"consumer group {name!r}")
    frontier = group.frontier
    beyond = False
    for _ in range(MAX_SCANS_PER_CLAIM):
        scanned = leases.scan_after(frontier, SCAN_BATCH)
        beyond = len(scanned) == SCAN_BATCH
        if not scanned:
            break
        matching = [(position, dataset_id) for position, kind, dataset_id, project in scanned
                    if _matches(group, kind, dataset_id, project)]
        outside = _outside_modes(repo, group.modes, [dataset_id for _, dataset_id in matching])
        wanted = [position for position, dataset_id in matching if dataset_id not in outside]
        frontier = scanned[-1][0]
        leases.add_pending(name, wanted)
        if wanted or len(scanned) < SCAN_BATCH:
            break
    if frontier == group.frontier:
        return False, False
    leases.advance_frontier(name, frontier)
    if leases.oldest_unacked(name) is None:  # only other events: the lag drops to 0
        repo.commit_consumer_group(name, frontier, datetime.now(UTC))
    return True, beyond


def _commit_watermark(repo: Repository, leases: LeaseRepository, group: LeasedGroup,
                      frontier: Position) -> Position:
    # Two replicas acknowledging at once would each miss the other's uncommitted deletes and
    # could both commit a mark below the last event, leaving the group's lag stuck above 0.
    current = leases.lock_group(group.name)
    if current is not None:
        frontier = max(frontier, current.frontier)
    oldest = leases.oldest_unacked(group.name)
    mark = frontier if oldest is None else Position(oldest.txid, oldest.seq - 1)
    if mark > events.ORIGIN:
        return repo.commit_consumer_group(group.name, mark, datetime.now(UTC))
    return repo.get_consumer_group(group.name) or events.ORIGIN


def hand_over_dataset(repo: Repository, dataset: Dataset, new: PreprocessingMode) -> int:
    """Part of a dataset's mode change (from dataset.preprocessing to `new`), in its
    transaction: the leased groups that gain the dataset (their mode filter takes `new`, not
    the old mode) get the events of it that the groups losing it have not acknowledged. The
    losing groups skip those when they come to claim them (see claim); events they already
    leased finish there. Groups of other projects are never involved. Returns the rows handed
    over."""
    dataset_id, old = dataset.id, dataset.preprocessing
    leases = LeaseRepository(repo)
    groups = [g for g in leases.groups_filtering_modes() if g.dataset_id in ("", dataset_id)
              and g.project in ("", dataset.project)]
    gaining = [g for g in groups if str(new) in g.modes and str(old) not in g.modes]
    losing = [g for g in groups if str(old) in g.modes and str(new) not in g.modes]
    return sum(leases.hand_over(source, target, dataset_id)
               for target in gaining for source in losing)


def ack(consumer_group: str, cursor: str, event_cursors: Sequence[str],
        scope: Scope = EVERYWHERE) -> Callable[[Repository], Position]:
    """AckEvents. A leased group: `event_cursors` are done one by one, `cursor` everything up
    to it (also events not delivered yet). Any other group: only `cursor`, which is committed.
    Returns the group's committed cursor. Acknowledging an event twice, or one whose lease
    moved to another subscriber, is harmless."""
    name = scope.group(events.check_group_name(consumer_group))
    positions = [events.parse_cursor(text, "event_cursors") for text in event_cursors]
    through = events.parse_cursor(cursor) if cursor else None
    if through is None and not positions:
        raise InvalidArgument("cursor or event_cursors is required")
    plain_ack = events.ack(consumer_group, cursor, scope) if cursor else None

    def work(repo: Repository) -> Position:
        leases = LeaseRepository(repo)
        group = leases.get_group(name)
        if group is None:
            if positions or plain_ack is None:
                raise FailedPrecondition(
                    f"consumer group {consumer_group!r} has no leased subscribers: "
                    "acknowledge with cursor instead of event_cursors")
            return plain_ack(repo)
        frontier = group.frontier
        if through is not None:
            head = repo.head_position()
            if head is None or through > head:
                raise InvalidArgument(f"cursor {cursor} is ahead of the event stream")
            leases.delete_leases_through(name, through)
            leases.advance_frontier(name, through)
            frontier = max(frontier, through)
        leases.delete_leases(name, [position.seq for position in positions])
        return _commit_watermark(repo, leases, group, frontier)

    return work


def extend(consumer_group: str, subscriber_id: str, event_cursors: Sequence[str],
           lease_seconds: int, scope: Scope = EVERYWHERE
           ) -> Callable[[Repository], tuple[list[Position], int]]:
    """ExtendEventLeases: (the events still held and now extended, their new expiry in ms)."""
    name = scope.group(events.check_group_name(consumer_group))
    events.check_group_name(subscriber_id, "subscriber_id")
    if not event_cursors:
        raise InvalidArgument("event_cursors is required")
    _check_lease_seconds(lease_seconds, minimum=0)
    by_seq = {position.seq: position for position in
              (events.parse_cursor(text, "event_cursors") for text in event_cursors)}

    def work(repo: Repository) -> tuple[list[Position], int]:
        now = now_ms()
        expire = now + lease_seconds * 1000 if lease_seconds else 0
        held = LeaseRepository(repo).extend(name, subscriber_id, list(by_seq), now, expire)
        return sorted(by_seq[seq] for seq in held if seq in by_seq), expire

    return work


async def subscribe(store: Store, signal: CommitSignal, request: LeaseRequest,
                    where: StartPosition, poll_seconds: float,
                    scope: Scope = EVERYWHERE) -> AsyncIterator[LeasedEvent]:
    """Events leased to this subscriber, until cancelled or the signal is closed. Events sent
    on a stream that then broke stay leased until they expire."""
    async for batch in subscribe_batches(store, signal, request, where, poll_seconds, scope):
        for leased in batch:
            yield leased


async def subscribe_batches(store: Store, signal: CommitSignal, request: LeaseRequest,
                            where: StartPosition, poll_seconds: float,
                            scope: Scope = EVERYWHERE) -> AsyncIterator[list[LeasedEvent]]:
    """subscribe(), one claim's events at a time."""
    await asyncio.to_thread(write_quietly, store, join(request, where, scope))
    claim_work = claim(request)
    while not signal.closed:
        ticket, freed = signal.ticket(), signal.freed
        claimed = await asyncio.to_thread(write_quietly, store, claim_work)
        if claimed.events:
            yield claimed.events
        if not claimed.more:
            # Claimed all there was room for, or all there was: only a commit since the
            # ticket (new events, acknowledgements, leases given back) can change that. This
            # replica's commits wake us; other replicas' and lease expiries are polled for.
            await _wait_for_claimable(signal, ticket, poll_seconds,
                                      freed if claimed.full else None)


async def _wait_for_claimable(signal: CommitSignal, ticket: asyncio.Event, poll_seconds: float,
                              freed: int | None) -> None:
    """Until a commit since `ticket`, or the poll interval. With `freed` (the subscriber's
    room was full at signal.freed == freed), only commits that freed room count: waking on
    every other commit (new events while the backlog is long) made ~40% of claims find
    nothing. Room freed elsewhere (other replicas, expiries, retention) is polled for."""
    if freed is None:
        await signal.wait(ticket, poll_seconds)
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + poll_seconds
    while True:
        await signal.wait(ticket, deadline - loop.time())
        if signal.freed != freed or signal.closed or loop.time() >= deadline:
            return
        ticket = signal.ticket()


def consumer_group_state(store: Store, consumer_group: str, scope: Scope = EVERYWHERE
                         ) -> tuple[ConsumerGroupState, int]:
    """The group's cursors and lag, and how many of its events are leased right now. For a
    caller of one project, the head and the lag count that project's events only."""
    name = scope.group(events.check_group_name(consumer_group))
    with store.read() as repo:
        state = repo.consumer_group_state(name, scope.project)
        return (replace(state, name=consumer_group),
                LeaseRepository(repo).leased_count(name, now_ms()))
