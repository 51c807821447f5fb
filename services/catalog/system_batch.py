"""BatchUpdateSystemMetadata: many system-metadata write-backs (UpdateSystemMetadata's rules)
in one write, optionally with the acknowledgement of leased events.

Set-based, because preprocessing writes one result per item at hundreds of items a second:
one locking SELECT of every item, one executemany UPDATE, one check of the thumbnails the
batch replaced, instead of a call, a savepoint and three statements per item. Each entry still
succeeds or fails on its own: one that is malformed, names a missing item (or one of another
project) or an item whose content changed gets its error and writes nothing, while the others
apply. A database failure fails the whole write (nothing of it commits) and the group-commit
writer reruns it. Like UpdateSystemMetadata it writes no event."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from corral.errors import CorralError, FailedPrecondition, InvalidArgument, NotFound
from services.catalog import blobs, leases
from services.catalog.items import merge_system
from services.catalog.records import Item, Position
from services.catalog.repository import Repository
from services.catalog.scope import EVERYWHERE, Scope
from services.catalog.validation import check_json_object, require_id

R = TypeVar("R")
MAX_BATCH_ITEMS = 1000


@dataclass(frozen=True)
class SystemUpdate:
    item_id: str
    system: dict[str, Any]
    expected_blob_key: str = ""


@dataclass
class BatchResult:
    # One per entry, in order: the updated item, or the entry's error.
    results: list[Item | CorralError]
    # Thumbnails the batch replaced that no item uses any more: deleted after commit.
    released_blob_keys: list[str] = field(default_factory=list)
    # With acknowledgements: the group's committed cursor, or why they failed.
    committed: Position | None = None
    ack_error: CorralError | None = None


def _entry(index: int, update: SystemUpdate) -> SystemUpdate | CorralError:
    try:
        require_id(update.item_id, f"requests[{index}].item_id")
        check_json_object(update.system, f"requests[{index}].system")
    except CorralError as exc:
        return exc
    return update


def update_many(requests: Sequence[R], to_update: Callable[[int, R], SystemUpdate],
                consumer_group: str = "", ack_event_cursors: Sequence[str] = (),
                scope: Scope = EVERYWHERE,
                max_answer_bytes: int | None = None) -> Callable[[Repository], BatchResult]:
    """Validates the entries (`to_update(index, request)` converts one, raising its own
    InvalidArgument) and returns the write. A malformed acknowledgement (group name, cursor)
    fails the whole call before anything is written. `max_answer_bytes`: the updated items
    are answered, and their metadata may add up to this much; more fails the whole call
    (rolled back) rather than commit an answer that cannot be delivered."""
    if len(requests) > MAX_BATCH_ITEMS:
        raise InvalidArgument(
            f"requests holds {len(requests)} entries; at most {MAX_BATCH_ITEMS} per call")
    entries: list[SystemUpdate | CorralError] = []
    for index, request in enumerate(requests):
        try:
            entries.append(_entry(index, to_update(index, request)))
        except CorralError as exc:
            entries.append(exc)
    ack = None
    if ack_event_cursors:
        ack = leases.ack(consumer_group, "", ack_event_cursors, scope)
    elif consumer_group:
        raise InvalidArgument("consumer_group is only for ack_event_cursors")

    def work(repo: Repository) -> BatchResult:
        wanted = [entry.item_id for entry in entries if isinstance(entry, SystemUpdate)]
        current = repo.get_items(wanted, lock=True)
        original = dict(current)
        now = datetime.now(UTC)
        results: list[Item | CorralError] = []
        for index, entry in enumerate(entries):
            if isinstance(entry, CorralError):
                results.append(entry)
                continue
            item = scope.visible(repo, current.get(entry.item_id))
            if item is None:
                results.append(NotFound(f"requests[{index}]: item {entry.item_id} not found"))
                continue
            if entry.expected_blob_key and item.content_key != entry.expected_blob_key:
                results.append(FailedPrecondition(
                    f"requests[{index}]: item {entry.item_id} no longer has blob "
                    f"{entry.expected_blob_key}: its content changed"))
                continue
            # Later entries for the same item build on this one.
            updated = replace(item, metadata_system=merge_system(item.metadata_system,
                                                                 entry.system),
                              update_time=now)
            current[entry.item_id] = updated
            results.append(updated)
        if max_answer_bytes is not None:
            _check_answer_size(results, max_answer_bytes)
        changed = [item for item_id, item in current.items() if item is not original[item_id]]
        repo.set_system_metadata_many(changed)
        result = BatchResult(results, _released(repo, [original[i.id] for i in changed],
                                                changed))
        if ack is not None:
            try:
                result.committed = ack(repo)
            except CorralError as exc:  # raised before the ack wrote anything
                result.ack_error = exc
        return result

    return work


# An answered item's fields besides its metadata (ids, path, keys, times), at most.
ITEM_FIELDS_BYTES = 2048


def _check_answer_size(results: Sequence[Item | CorralError], most: int) -> None:
    size = 0
    for result in results:
        if isinstance(result, Item):
            size += ITEM_FIELDS_BYTES + len(json.dumps(result.metadata_user)) + len(
                json.dumps(result.metadata_system))
    if size > most:
        raise InvalidArgument(
            f"requests: the updated items would answer about {size} bytes; at most {most} "
            "(half of CORRAL_MAX_MESSAGE_BYTES): split the batch or set omit_items")


def _released(repo: Repository, before: Sequence[Item], after: Sequence[Item]) -> list[str]:
    """Thumbnails the batch replaced that no item (a clone may share one) still uses."""
    old = {key for key in (blobs.thumbnail_key(item.metadata_system) for item in before) if key}
    old -= {blobs.thumbnail_key(item.metadata_system) for item in after}
    if not old:
        return []
    return sorted(old - repo.referenced_blob_keys(sorted(old)))
