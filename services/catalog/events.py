"""The item event stream: cursors, subscriptions and consumer groups.

Delivery order. SQLite serialises writers, so sequence order is commit order. On PostgreSQL a
transaction that took a smaller sequence number may commit after one with a larger number, so
reading "seq > cursor" could step over it for good. Events are therefore ordered by
(transaction id, seq) and only events of transactions older than the snapshot's xmin are
delivered: every such transaction has finished, so nothing can appear before the cursor later.
An in-flight transaction holds delivery back until it ends."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

from corral.errors import InvalidArgument, OutOfRange
from services.catalog.lease_repository import LeaseRepository
from services.catalog.notify import CommitSignal
from services.catalog.records import (
    ConsumerGroupState,
    Event,
    EventFilter,
    Position,
    StartPosition,
)
from services.catalog.repository import Repository, Store
from services.catalog.scope import EVERYWHERE, Scope
from services.catalog.validation import require_id

T = TypeVar("T")

BATCH_SIZE = 256
MAX_EVENTS_PER_RESPONSE = 256
MAX_GROUP_NAME = 128
_CURSOR = re.compile(r"(?:(\d{1,19})\.)?(\d{1,19})")
ORIGIN = Position(0, 0)


def format_cursor(position: Position) -> str:
    """Opaque to clients: the decimal seq, prefixed by the transaction id on PostgreSQL."""
    return str(position.seq) if position.txid == 0 else f"{position.txid}.{position.seq}"


def parse_cursor(text: str, field: str = "cursor") -> Position:
    match = _CURSOR.fullmatch(text)
    if match is None:
        raise InvalidArgument(f"{field} is not a cursor from this event stream: {text!r}")
    txid, seq = match.groups()
    return Position(int(txid or 0), int(seq))


def check_group_name(name: str, field: str = "consumer_group") -> str:
    if not name or not name.strip():
        raise InvalidArgument(f"{field} is required")
    if len(name) > MAX_GROUP_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidArgument(
            f"{field} must be at most {MAX_GROUP_NAME} printable characters: {name!r}")
    return name


def check_filter(event_filter: EventFilter, scope: Scope = EVERYWHERE) -> EventFilter:
    """The filter, limited to the caller's project."""
    if event_filter.dataset_id:
        require_id(event_filter.dataset_id, "dataset_id")
    return replace(event_filter, project=scope.project)


def require_filter_dataset(repo: Repository, event_filter: EventFilter, scope: Scope) -> None:
    """A filter naming another project's dataset answers NOT_FOUND, like a missing one."""
    if event_filter.dataset_id:
        scope.require_dataset(repo, event_filter.dataset_id)


def start_position(store: Store, consumer_group: str = "", start_cursor: str = "",
                   where: StartPosition = StartPosition.EARLIEST,
                   event_filter: EventFilter | None = None,
                   scope: Scope = EVERYWHERE) -> Position:
    """After start_cursor, else after the group's committed cursor, else `where`. Also checks
    that the caller sees the filter's dataset."""
    if consumer_group:
        consumer_group = scope.group(check_group_name(consumer_group))
    with store.read() as repo:
        if event_filter is not None:
            require_filter_dataset(repo, event_filter, scope)
        if start_cursor:
            position = parse_cursor(start_cursor, "start_cursor")
            require_retained(repo, position, "start_cursor")
            return position
        if consumer_group:
            committed = repo.get_consumer_group(consumer_group)
            if committed is not None:
                require_retained(repo, committed,
                                 f"consumer group {consumer_group!r} committed cursor")
                return committed
        if where == StartPosition.LATEST:
            return repo.head_position() or ORIGIN
    return ORIGIN


def read_batch(store: Store, after: Position, event_filter: EventFilter,
               limit: int = BATCH_SIZE) -> list[Event]:
    with store.read(one_statement=True) as repo:
        return repo.read_events(after, limit, event_filter)


def check_events_per_response(count: int) -> int:
    """SubscribeRequest.max_events_per_response: how many events one response may carry."""
    if not 0 <= count <= MAX_EVENTS_PER_RESPONSE:
        raise InvalidArgument(
            f"max_events_per_response must be between 0 and {MAX_EVENTS_PER_RESPONSE}")
    return max(1, count)


def chunks(batch: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(batch), size):
        yield batch[start:start + size]


async def subscribe_batches(store: Store, signal: CommitSignal, after: Position,
                            event_filter: EventFilter, poll_seconds: float
                            ) -> AsyncIterator[list[Event]]:
    """Every matching event after `after`, as read (in batches), until cancelled or the
    signal is closed."""
    check_filter(event_filter)
    position = after
    while not signal.closed:
        ticket = signal.ticket()
        batch = await asyncio.to_thread(read_batch, store, position, event_filter)
        if batch:
            yield batch
            position = batch[-1].position
        if len(batch) < BATCH_SIZE:
            await signal.wait(ticket, poll_seconds)


async def subscribe(store: Store, signal: CommitSignal, after: Position,
                    event_filter: EventFilter, poll_seconds: float) -> AsyncIterator[Event]:
    """Every matching event after `after`, until cancelled or the signal is closed."""
    async for batch in subscribe_batches(store, signal, after, event_filter, poll_seconds):
        for event in batch:
            yield event


def ack(consumer_group: str, cursor: str,
        scope: Scope = EVERYWHERE) -> Callable[[Repository], Position]:
    """The write that commits the group's cursor (created on first use); it never moves
    backwards."""
    name = scope.group(check_group_name(consumer_group))
    if not cursor:
        raise InvalidArgument("cursor is required")
    position = parse_cursor(cursor)

    def work(repo: Repository) -> Position:
        # The whole stream's head: cursors are positions in the one stream of all projects.
        head = repo.head_position()
        if head is None or position > head:
            raise InvalidArgument(f"cursor {cursor} is ahead of the event stream")
        return repo.commit_consumer_group(name, position, datetime.now(UTC))

    return work


def consumer_group_state(store: Store, consumer_group: str,
                         scope: Scope = EVERYWHERE) -> ConsumerGroupState:
    name = scope.group(check_group_name(consumer_group))
    with store.read() as repo:
        return replace(repo.consumer_group_state(name, scope.project), name=consumer_group)


def require_retained(repo: Repository, position: Position, what: str) -> None:
    """OUT_OF_RANGE when retention deleted events after `position`: resuming there would
    silently skip them."""
    trimmed = LeaseRepository(repo).trimmed_through()
    if trimmed is not None and position < trimmed:
        raise OutOfRange(
            f"{what} {format_cursor(position)} is older than the event retention (events "
            f"through {format_cursor(trimmed)} were deleted): start again from start_position, "
            "or acknowledge a newer cursor for the group")
