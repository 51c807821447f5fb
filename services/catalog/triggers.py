"""Triggers: a user function's filtered subscription to item events.

Each trigger is its own leased consumer group "<project>/trigger:<name>" on the event stream
(its project's keys call it "trigger:<name>", see scope.py), created
with the trigger and starting at the head of the stream, so only events after the trigger's
creation run through it, a slow trigger never delays another one or preprocessing, and a
paused trigger's events wait in its group (its cursor stays) and run on resume, within the
event retention. The group leases only the trigger's actions (event types) of its dataset
(empty: every dataset of its project): the cheap part of the filter, applied in SQL by the
catalog. A trigger, its dataset and the items it writes to are all of one project. The item
filter is evaluated by the worker against the item as the event carries it
(corral.client.filter_match, the same semantics as the SQL of ListItems).

`once` triggers record the items they claimed (trigger_runs): the first event of an item to
start a run claims it, and only a re-delivery of that same event (its worker died) runs again.
Run records live on the item at metadata.system.executionLogs.<trigger>, the function's
results at metadata.system.<trigger>."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from corral.errors import AlreadyExists, InvalidArgument, NotFound
from services.catalog import events
from services.catalog.filters import MISSING, Condition, Filter, Group, Op, check_filter
from services.catalog.lease_repository import LeasedGroup, LeaseRepository
from services.catalog.paging import PageBudget
from services.catalog.records import EventType, Item, Page
from services.catalog.repository import Repository, Store
from services.catalog.scope import DEFAULT_PROJECT, EVERYWHERE, Scope, project_group
from services.catalog.validation import (
    check_description,
    check_json_object,
    decode_page_token,
    encode_page_token,
    page_size,
    require_id,
)
from services.common.metadata_limits import DEPTH_ENV, metadata_limits, nesting_depth

GROUP_PREFIX = "trigger:"
MODES = ("once", "always")
# A trigger's name is a metadata key: metadata.system.<name>, executionLogs.<name>.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
# Keys of metadata.system the platform writes itself: no trigger may take them over.
RESERVED_NAMES = frozenset({
    "name", "size", "mimetype", "encoding", "exifOrientation", "width", "height",
    "displayWidth", "displayHeight", "mode", "thumbnail", "codec", "duration", "fps",
    "frameCount", "executionLogs", "clonedFrom", "preprocess", "linkInfo"})
UPDATABLE = ("dataset_id", "filter", "actions", "mode", "paused", "description")
RUN_STATUSES = ("success", "failed")
MAX_ERROR = 4096


@dataclass(frozen=True)
class Trigger:
    id: str
    name: str
    project: str = DEFAULT_PROJECT
    description: str = ""
    dataset_id: str = ""
    filter: Filter | None = None
    actions: tuple[EventType, ...] = (EventType.CREATED,)
    mode: str = "once"
    paused: bool = False
    create_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    update_time: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def consumer_group(self) -> str:
        return consumer_group(self.name, self.project)


@dataclass(frozen=True)
class RunRecord:
    status: str
    attempts: int
    duration_ms: int
    error: str
    finish_time: datetime

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "attempts": self.attempts,
                "durationMs": self.duration_ms, "error": self.error,
                "finishedAt": self.finish_time.isoformat().replace("+00:00", "Z")}


def consumer_group(name: str, project: str = DEFAULT_PROJECT) -> str:
    """The stored name of the trigger's group: what a key of its project calls
    "trigger:<name>"."""
    return project_group(project, GROUP_PREFIX + name)


# -- validation ---------------------------------------------------------------------------

def check_name(name: str, where: str = "trigger.name") -> str:
    if not name:
        raise InvalidArgument(f"{where} is required")
    if not _NAME.fullmatch(name):
        raise InvalidArgument(f"{where} {name[:80]!r} must start with a letter or '_' and hold "
                              "only letters, digits, '_' and '-' (at most 64 characters)")
    if name in RESERVED_NAMES:
        raise InvalidArgument(f"{where} {name!r} is a key the platform writes in "
                              "metadata.system; choose another name")
    return name


def check_actions(actions: Sequence[EventType | None]) -> tuple[EventType, ...]:
    if not actions:
        raise InvalidArgument("trigger.actions: at least one of created, updated, deleted")
    if any(action is None for action in actions):
        raise InvalidArgument("trigger.actions: unknown or unspecified event type")
    return tuple(sorted(set(actions), key=list(EventType).index))  # type: ignore[arg-type]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InvalidArgument(f"trigger.mode must be once or always, got {mode!r}")
    return mode


def _check(trigger: Trigger) -> Trigger:
    check_name(trigger.name)
    if trigger.dataset_id:
        require_id(trigger.dataset_id, "trigger.dataset_id")
    check_filter(trigger.filter, "trigger.filter")
    return replace(trigger, actions=check_actions(trigger.actions),
                   mode=check_mode(trigger.mode),
                   description=check_description(trigger.description, "trigger.description"))


# -- filter trees as JSON (stored in the triggers table) ----------------------------------

def filter_to_json(tree: Filter | None) -> dict[str, Any] | None:
    if tree is None:
        return None
    if isinstance(tree, Condition):
        return {"field": tree.field, "op": str(tree.op), "value": tree.value}
    return {"any": tree.any, "members": [filter_to_json(m) for m in tree.members]}


def filter_from_json(data: dict[str, Any] | None) -> Filter | None:
    if data is None:
        return None
    if "members" in data:
        return Group(bool(data["any"]), tuple(filter_from_json(m) for m in data["members"]))
    return Condition(data["field"], Op(data["op"]), data.get("value", MISSING))


# -- storage ------------------------------------------------------------------------------

_COLUMNS = ("id, project, name, description, dataset_id, filter, actions, mode, paused, "
            "create_time, update_time")


class _Rows:
    def __init__(self, repo: Repository) -> None:
        self.repo, self.raw = repo, repo.raw

    def _trigger(self, row: Sequence[Any]) -> Trigger:
        driver = self.raw.driver
        stored = driver.json_out(row[5]) if row[5] is not None else None
        return Trigger(
            id=row[0], project=row[1], name=row[2], description=row[3], dataset_id=row[4],
            filter=filter_from_json(stored or None),
            actions=tuple(EventType(a) for a in row[6].split(",") if a), mode=row[7],
            paused=bool(row[8]), create_time=_utc(driver.time_out(row[9])),
            update_time=_utc(driver.time_out(row[10])))

    def get(self, project: str, name: str, lock: bool = False) -> Trigger | None:
        row = self.raw.one(f"SELECT {_COLUMNS} FROM triggers WHERE project = :project AND "
                           "name = :name" + (" FOR UPDATE" if lock and self.repo.is_postgres
                                             else ""), {"project": project, "name": name})
        return self._trigger(row) if row else None

    def list(self, project: str | None, after: tuple[str, str], limit: int) -> list[Trigger]:
        """Triggers of `project` (None: of every project) after (project, name) `after`."""
        where = "(project > :after_project OR (project = :after_project AND name > :after))"
        if project is not None:
            where += " AND project = :project"
        rows = self.raw.all(f"SELECT {_COLUMNS} FROM triggers WHERE {where} "
                            "ORDER BY project, name LIMIT :limit",
                            {"project": project, "after_project": after[0], "after": after[1],
                             "limit": limit})
        return [self._trigger(row) for row in rows]

    def _values(self, trigger: Trigger) -> dict[str, Any]:
        driver = self.raw.driver
        tree = filter_to_json(trigger.filter)
        return {"id": trigger.id, "project": trigger.project, "name": trigger.name,
                "description": trigger.description, "dataset_id": trigger.dataset_id,
                "filter": driver.json_in(tree) if tree is not None else None,
                "actions": ",".join(str(a) for a in trigger.actions), "mode": trigger.mode,
                "paused": trigger.paused, "create_time": driver.time_in(trigger.create_time),
                "update_time": driver.time_in(trigger.update_time)}

    def insert(self, trigger: Trigger) -> None:
        self.raw.run(f"INSERT INTO triggers ({_COLUMNS}) VALUES (:id, :project, :name, "
                     ":description, :dataset_id, :filter, :actions, :mode, :paused, "
                     ":create_time, :update_time)", self._values(trigger))

    def update(self, trigger: Trigger) -> None:
        self.raw.run("UPDATE triggers SET description = :description, dataset_id = :dataset_id, "
                     "filter = :filter, actions = :actions, mode = :mode, paused = :paused, "
                     "update_time = :update_time WHERE id = :id", self._values(trigger))

    def delete(self, trigger: Trigger) -> None:
        self.raw.run("DELETE FROM trigger_runs WHERE trigger_id = :id", {"id": trigger.id})
        self.raw.run("DELETE FROM triggers WHERE id = :id", {"id": trigger.id})

    # The trigger's leased consumer group.

    def create_group(self, trigger: Trigger) -> None:
        group = trigger.consumer_group
        self.drop_group(group)
        leases = LeaseRepository(self.repo)
        start = self.repo.head_position() or leases.trimmed_through() or events.ORIGIN
        types, dataset_id = _group_filter(trigger)
        leases.insert_group(LeasedGroup(group, types, dataset_id, start,
                                        project=trigger.project), datetime.now(UTC))
        if start > events.ORIGIN:
            self.repo.commit_consumer_group(group, start, datetime.now(UTC))

    def refilter_group(self, trigger: Trigger) -> None:
        """Events from now on are leased by the new actions and scope; those already pending
        stay (the worker checks them against the trigger it has)."""
        types, dataset_id = _group_filter(trigger)
        self.raw.run("UPDATE leased_groups SET event_types = :types, dataset_id = :dataset_id "
                     "WHERE name = :name", {"types": types, "dataset_id": dataset_id,
                                            "name": trigger.consumer_group})

    def drop_group(self, group: str) -> None:
        for table, column in (("event_leases", "group_name"), ("leased_groups", "name"),
                              ("consumer_groups", "name")):
            self.raw.run(f"DELETE FROM {table} WHERE {column} = :name", {"name": group})

    # Runs.

    def claim_run(self, trigger_id: str, item_id: str, event_seq: int) -> bool:
        self.raw.run("INSERT INTO trigger_runs (trigger_id, item_id, event_seq, status, "
                     "update_time) VALUES (:trigger_id, :item_id, :seq, 'running', :now) "
                     "ON CONFLICT (trigger_id, item_id) DO NOTHING",
                     {"trigger_id": trigger_id, "item_id": item_id, "seq": event_seq,
                      "now": self.raw.driver.time_in(datetime.now(UTC))})
        row = self.raw.one("SELECT event_seq FROM trigger_runs WHERE trigger_id = :trigger_id "
                           "AND item_id = :item_id", {"trigger_id": trigger_id,
                                                      "item_id": item_id})
        return row is not None and row[0] == event_seq

    def finish_run(self, trigger_id: str, item_id: str, status: str) -> None:
        self.raw.run("UPDATE trigger_runs SET status = :status, update_time = :now "
                     "WHERE trigger_id = :trigger_id AND item_id = :item_id",
                     {"status": status, "trigger_id": trigger_id, "item_id": item_id,
                      "now": self.raw.driver.time_in(datetime.now(UTC))})


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _group_filter(trigger: Trigger) -> tuple[str, str]:
    # The same spelling as leases._filter_columns, so the worker's Subscribe joins the group.
    return ",".join(sorted(str(a) for a in trigger.actions)), trigger.dataset_id


def _require_dataset(repo: Repository, dataset_id: str, project: str) -> None:
    """The trigger's dataset must be of the trigger's project (another project's answers
    like a missing one)."""
    if dataset_id and repo.dataset_project(dataset_id) != project:
        raise NotFound(f"trigger.dataset_id: dataset {dataset_id} not found")


def _require(rows: _Rows, name: str, scope: Scope, lock: bool = False) -> Trigger:
    """By name, in the caller's project ("default" for instance-wide callers naming none)."""
    check_name(name, "name")
    trigger = rows.get(scope.home, name, lock)
    if trigger is None:
        raise NotFound(f"trigger {name!r} not found")
    return trigger


# -- operations ---------------------------------------------------------------------------

def create_trigger(store: Store, trigger: Trigger, scope: Scope = EVERYWHERE) -> Trigger:
    """In the caller's project (names are unique per project)."""
    now = datetime.now(UTC)
    trigger = _check(replace(trigger, id=uuid.uuid4().hex, project=scope.home,
                             create_time=now, update_time=now))

    def work(repo: Repository) -> Trigger:
        rows = _Rows(repo)
        if not repo.project_exists(trigger.project):
            raise NotFound(f"project {trigger.project!r} not found")
        _require_dataset(repo, trigger.dataset_id, trigger.project)
        if rows.get(trigger.project, trigger.name) is not None:
            raise AlreadyExists(f"trigger {trigger.name!r} already exists")
        rows.insert(trigger)
        rows.create_group(trigger)
        return trigger

    return store.write(work)


def get_trigger(store: Store, name: str, scope: Scope = EVERYWHERE) -> Trigger:
    with store.read() as repo:
        return _require(_Rows(repo), name, scope)


def list_triggers(store: Store, requested_page_size: int = 0, page_token: str = "",
                  scope: Scope = EVERYWHERE, budget: PageBudget[Trigger] | None = None
                  ) -> Page[Trigger]:
    """The caller's project's triggers; every project's, ordered by project, for
    instance-wide callers naming none. `budget` may end a page early (paging.py)."""
    limit = page_size(requested_page_size)
    after = ("", "")
    if (token := decode_page_token(page_token)) is not None:
        project, separator, name = token.partition("/")  # project names hold no '/'
        if not separator:
            raise InvalidArgument("page_token is not a token from a previous response")
        after = (project, name)
    with store.read() as repo:
        found = _Rows(repo).list(scope.project, after, limit + 1)
    page = found[:limit]
    kept = budget.fitting(page) if budget is not None else len(page)
    last = page[kept - 1] if kept else None
    return Page(page[:kept], encode_page_token(f"{last.project}/{last.name}")
                if last is not None and len(found) > kept else "")


def update_trigger(store: Store, changes: Trigger, paths: Sequence[str],
                   scope: Scope = EVERYWHERE) -> Trigger:
    if not paths:
        raise InvalidArgument("update_mask: name at least one of " + ", ".join(UPDATABLE))
    unknown = [p for p in paths if p not in UPDATABLE]
    if unknown:
        raise InvalidArgument(f"update_mask: cannot update {unknown[0]!r}; use "
                              + ", ".join(UPDATABLE))
    check_name(changes.name)

    def work(repo: Repository) -> Trigger:
        rows = _Rows(repo)
        current = _require(rows, changes.name, scope, lock=True)
        updated = _check(replace(current, update_time=datetime.now(UTC),
                                 **{p: getattr(changes, p) for p in paths}))
        if "dataset_id" in paths:
            _require_dataset(repo, updated.dataset_id, updated.project)
        rows.update(updated)
        if _group_filter(updated) != _group_filter(current):
            rows.refilter_group(updated)
        return updated

    return store.write(work)


def delete_trigger(store: Store, name: str, scope: Scope = EVERYWHERE) -> None:
    def work(repo: Repository) -> None:
        rows = _Rows(repo)
        trigger = _require(rows, name, scope, lock=True)
        rows.delete(trigger)
        rows.drop_group(trigger.consumer_group)

    store.write(work)


def start_run(store: Store, name: str, item_id: str, event_cursor: str,
              scope: Scope = EVERYWHERE) -> bool:
    """Whether the worker should run the function for this event (see the module doc)."""
    require_id(item_id, "item_id")
    position = events.parse_cursor(event_cursor, "event_cursor")

    def work(repo: Repository) -> bool:
        rows = _Rows(repo)
        trigger = _require(rows, name, scope)
        if trigger.mode == "always":
            return True
        return rows.claim_run(trigger.id, item_id, position.seq)

    return store.write(work)


def complete_run(store: Store, name: str, item_id: str, record: RunRecord,
                 system: dict[str, Any] | None, scope: Scope = EVERYWHERE) -> Item | None:
    """Writes the run record (and the results) onto the item, without an event. None when
    the item is gone (or is not of the trigger's project: it cannot be the trigger's)."""
    require_id(item_id, "item_id")
    if record.status not in RUN_STATUSES:
        raise InvalidArgument(f"run.status must be success or failed, got {record.status!r}")
    if record.attempts < 1 or record.duration_ms < 0:
        raise InvalidArgument("run.attempts must be at least 1 and run.duration_ms not "
                              "negative")
    if system is not None:
        check_json_object(system, "system")
        # Stored one level down (metadata.system.<trigger>): at the depth limit it would be one
        # level deeper than protobuf can carry, and the item could never be read again.
        limit = metadata_limits().max_depth - 1
        if (depth := nesting_depth(system)) > limit:
            raise InvalidArgument(f"system is nested {depth} levels deep; results are stored "
                                  f"under metadata.system.{name}, so the limit is {limit} "
                                  f"(one less than {DEPTH_ENV})")
    # The error is a worker's exception text, kept as a record: shortened, and NUL (which
    # PostgreSQL's jsonb cannot hold) shown as U+FFFD rather than losing the record.
    record = replace(record, error=record.error[:MAX_ERROR].replace("\x00", "\ufffd"))

    def work(repo: Repository) -> Item | None:
        rows = _Rows(repo)
        trigger = _require(rows, name, scope)
        item = Scope(trigger.project, cache=scope.cache).visible(
            repo, repo.get_item(item_id, lock=True))
        if item is None:
            rows.finish_run(trigger.id, item_id, record.status)
            return None
        merged = dict(item.metadata_system)
        merged["executionLogs"] = {**(merged.get("executionLogs") or {}),
                                   trigger.name: record.to_json()}
        if system is not None:
            merged[trigger.name] = system
        now = datetime.now(UTC)
        repo.set_system_metadata(item_id, merged, now)
        rows.finish_run(trigger.id, item_id, record.status)
        return replace(item, metadata_system=merged, update_time=now)

    return store.write(work)

