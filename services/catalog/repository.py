"""The storage layer: every SQL statement of the catalog, behind a small interface.

`Store.read()` yields a Repository on one snapshot; `Store.write(work)` runs `work(repo)` in
one write transaction (rerun after a lost race). Domain modules only see Repository methods
and plain records."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from services.catalog.db import Database
from services.catalog.models import consumer_groups, datasets, events, items
from services.catalog.records import (
    ConsumerGroupState,
    Dataset,
    Event,
    EventFilter,
    EventType,
    Item,
    ItemType,
    Outcome,
    Position,
)

T = TypeVar("T")

# Every transaction with a smaller id has finished (committed or rolled back), so events
# below it can no longer appear behind a reader's back.
_PG_XMIN = literal_column("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _dataset(row: Row, item_count: int = 0) -> Dataset:
    return Dataset(id=row.id, name=row.name, description=row.description, project=row.project,
                   create_time=_utc(row.create_time), item_count=item_count)


def _item(row: Row) -> Item:
    return Item(
        id=row.id, dataset_id=row.dataset_id, dir=row.dir, name=row.name,
        filename=row.filename, type=ItemType(row.type), size=row.size, sha256=row.sha256,
        blob_key=row.blob_key, description=row.description,
        metadata_system=row.metadata_system or {}, metadata_user=row.metadata_user or {},
        create_time=_utc(row.create_time), update_time=_utc(row.update_time))


def _item_values(item: Item) -> dict[str, Any]:
    return {
        "id": item.id, "dataset_id": item.dataset_id, "dir": item.dir, "name": item.name,
        "filename": item.filename, "type": str(item.type), "size": item.size,
        "sha256": item.sha256, "blob_key": item.blob_key, "description": item.description,
        "metadata_system": item.metadata_system, "metadata_user": item.metadata_user,
        "create_time": item.create_time, "update_time": item.update_time,
    }


def _event(row: Row) -> Event:
    return Event(position=Position(row.txid, row.seq), type=EventType(row.type),
                 item_id=row.item_id, dataset_id=row.dataset_id,
                 item=Item.from_payload(row.payload), create_time=_utc(row.create_time))


class Repository:
    def __init__(self, conn: Connection, db: Database) -> None:
        self._conn, self._db = conn, db

    # -- datasets ---------------------------------------------------------------------------

    def get_dataset(self, dataset_id: str, lock: bool = False) -> Dataset | None:
        """`lock`: hold the row until commit, so no item can be added to it meanwhile."""
        query = select(datasets).where(datasets.c.id == dataset_id)
        if lock:
            query = query.with_for_update()
        row = self._conn.execute(query).first()
        return _dataset(row) if row else None

    def get_dataset_by_name(self, project: str, name: str) -> Dataset | None:
        row = self._conn.execute(select(datasets).where(
            datasets.c.project == project, datasets.c.name == name)).first()
        return _dataset(row) if row else None

    def get_dataset_by_request(self, project: str, request_id: str) -> Dataset | None:
        row = self._conn.execute(select(datasets).where(
            datasets.c.project == project, datasets.c.request_id == request_id)).first()
        return _dataset(row) if row else None

    def dataset_exists(self, dataset_id: str, lock: bool = False) -> bool:
        """`lock`: keep a concurrent DeleteDataset (PostgreSQL) waiting until this commits."""
        query = _DATASET_EXISTS_LOCKED if lock else _DATASET_EXISTS
        return self._conn.execute(query, {"id": dataset_id}).first() is not None

    def insert_dataset(self, dataset: Dataset, request_id: str | None) -> None:
        self._conn.execute(datasets.insert().values(
            id=dataset.id, project=dataset.project, name=dataset.name,
            description=dataset.description, create_time=dataset.create_time,
            request_id=request_id))

    def list_datasets(self, project: str, after_name: str | None, limit: int) -> list[Dataset]:
        query = select(datasets).where(datasets.c.project == project)
        if after_name is not None:
            query = query.where(datasets.c.name > after_name)
        rows = self._conn.execute(query.order_by(datasets.c.name).limit(limit)).all()
        return [_dataset(row) for row in rows]

    def item_counts(self, dataset_ids: Sequence[str]) -> dict[str, int]:
        """File and link items per dataset (folders are not counted)."""
        if not dataset_ids:
            return {}
        rows = self._conn.execute(
            select(items.c.dataset_id, func.count())
            .where(items.c.dataset_id.in_(dataset_ids), items.c.type != str(ItemType.DIR))
            .group_by(items.c.dataset_id)).all()
        return {dataset_id: count for dataset_id, count in rows}

    def delete_dataset(self, dataset_id: str) -> None:
        self._conn.execute(delete(datasets).where(datasets.c.id == dataset_id))

    # -- items ------------------------------------------------------------------------------

    def get_item(self, item_id: str, lock: bool = False) -> Item | None:
        """`lock`: hold the row until commit (read-modify-write on PostgreSQL)."""
        query = _ITEM_BY_ID_LOCKED if lock else _ITEM_BY_ID
        row = self._conn.execute(query, {"id": item_id}).first()
        return _item(row) if row else None

    def get_item_by_filename(self, dataset_id: str, filename: str,
                             lock: bool = False) -> Item | None:
        query = _ITEM_BY_FILENAME_LOCKED if lock else _ITEM_BY_FILENAME
        row = self._conn.execute(query, {"dataset_id": dataset_id, "filename": filename}).first()
        return _item(row) if row else None

    def get_item_by_request(self, dataset_id: str, request_id: str) -> tuple[Item, Outcome] | None:
        row = self._conn.execute(
            _ITEM_BY_REQUEST, {"dataset_id": dataset_id, "request_id": request_id}).first()
        if row is None:
            return None
        return _item(row), Outcome(row.request_outcome or Outcome.CREATED)

    def item_types_at(self, dataset_id: str, filenames: Sequence[str]) -> dict[str, ItemType]:
        """The types of the items at `filenames`. The rows stay key-share locked, so a
        concurrent folder delete (PostgreSQL) waits and then sees what this transaction adds."""
        rows = self._conn.execute(
            _ITEM_TYPES_AT, {"dataset_id": dataset_id, "filenames": list(filenames)}).all()
        return {filename: ItemType(kind) for filename, kind in rows}

    def insert_folders(self, folders: Iterable[Item]) -> None:
        """Folders that already exist (perhaps created concurrently) are left alone."""
        values = [{**_item_values(folder), "request_id": None} for folder in folders]
        if values:
            insert = _PG_INSERT_FOLDERS if self._db.is_postgres else _SQLITE_INSERT_FOLDERS
            self._conn.execute(insert, values)

    def insert_item(self, item: Item, request_id: str | None, outcome: Outcome | None) -> None:
        self._conn.execute(_INSERT_ITEM, {**_item_values(item), "request_id": request_id,
                                          "request_outcome": str(outcome) if outcome else None})

    def replace_item(self, item: Item, request_id: str | None, outcome: Outcome | None) -> None:
        """Writes every mutable column of `item` (by id); the request id only when given."""
        values = _item_values(item)
        del values["id"], values["create_time"]
        if request_id is not None:
            values.update(request_id=request_id, request_outcome=str(outcome) if outcome else None)
        self._conn.execute(update(items).where(items.c.id == item.id).values(**values))

    def list_children(self, dataset_id: str, dir_path: str, after: str | None,
                      limit: int) -> list[Item]:
        query = select(items).where(items.c.dataset_id == dataset_id, items.c.dir == dir_path)
        if after is not None:
            query = query.where(items.c.filename > after)
        rows = self._conn.execute(query.order_by(items.c.filename).limit(limit)).all()
        return [_item(row) for row in rows]

    def list_below(self, dataset_id: str, dir_path: str, after: str | None,
                   limit: int) -> list[Item]:
        """Everything below `dir_path`, at any depth, ordered by filename."""
        query = select(items).where(items.c.dataset_id == dataset_id, *_below(dir_path))
        if after is not None:
            query = query.where(items.c.filename > after)
        rows = self._conn.execute(query.order_by(items.c.filename).limit(limit)).all()
        return [_item(row) for row in rows]

    def subtree(self, dataset_id: str, filename: str) -> list[Item]:
        """The item at `filename` and, for a folder, everything below it."""
        rows = self._conn.execute(select(items).where(
            items.c.dataset_id == dataset_id,
            (items.c.filename == filename) | and_(*_below(filename)),
        )).all()
        return [_item(row) for row in rows]

    def dataset_items(self, dataset_id: str) -> list[Item]:
        rows = self._conn.execute(select(items).where(items.c.dataset_id == dataset_id)).all()
        return [_item(row) for row in rows]

    def delete_items(self, item_ids: Sequence[str]) -> None:
        for start in range(0, len(item_ids), 500):
            self._conn.execute(delete(items).where(items.c.id.in_(item_ids[start:start + 500])))

    def referenced_blob_keys(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        rows = self._conn.execute(
            select(items.c.blob_key).where(items.c.blob_key.in_(keys)).distinct()).all()
        return {key for (key,) in rows}

    # -- events -----------------------------------------------------------------------------

    def append_events(self, entries: Iterable[tuple[EventType, Item]], now: datetime) -> None:
        values = [{"type": str(kind), "item_id": item.id, "dataset_id": item.dataset_id,
                   "payload": item.to_payload(), "create_time": now} for kind, item in entries]
        if values:
            self._conn.execute(_INSERT_EVENT, values)

    def _deliverable(self) -> list[Any]:
        return [events.c.txid < _PG_XMIN] if self._db.is_postgres else []

    def _stream_order(self, descending: bool = False) -> list[Any]:
        # SQLite's txid is always 0: order by the rowid alone so the primary key serves it.
        columns = [events.c.txid, events.c.seq] if self._db.is_postgres else [events.c.seq]
        return [c.desc() for c in columns] if descending else columns

    def _after(self, position: Position) -> Any:
        if self._db.is_postgres:
            return tuple_(events.c.txid, events.c.seq) > tuple_(position.txid, position.seq)
        return events.c.seq > position.seq

    def read_events(self, after: Position, limit: int, event_filter: EventFilter) -> list[Event]:
        """Up to `limit` deliverable events after `after`, in stream order."""
        query = select(events).where(self._after(after), *self._deliverable())
        if event_filter.types:
            query = query.where(events.c.type.in_([str(t) for t in event_filter.types]))
        if event_filter.dataset_id:
            query = query.where(events.c.dataset_id == event_filter.dataset_id)
        query = query.order_by(*self._stream_order()).limit(limit)
        return [_event(row) for row in self._conn.execute(query).all()]

    def head_position(self) -> Position | None:
        """The newest deliverable event's position."""
        row = self._conn.execute(
            select(events.c.txid, events.c.seq).where(*self._deliverable())
            .order_by(*self._stream_order(descending=True)).limit(1)).first()
        return Position(row.txid, row.seq) if row else None

    def count_events_after(self, position: Position) -> int:
        return self._conn.execute(select(func.count()).select_from(events).where(
            self._after(position), *self._deliverable())).scalar_one()

    def get_consumer_group(self, name: str) -> Position | None:
        row = self._conn.execute(select(consumer_groups).where(
            consumer_groups.c.name == name)).first()
        if row is None or (row.committed_seq == 0 and row.committed_txid == 0):
            return None
        return Position(row.committed_txid, row.committed_seq)

    def commit_consumer_group(self, name: str, position: Position, now: datetime) -> Position:
        """Moves the group's cursor forward to `position` (never backwards); returns it."""
        self._conn.execute(self._db.insert(consumer_groups).values(
            name=name, committed_seq=0, committed_txid=0, update_time=now,
        ).on_conflict_do_nothing(index_elements=["name"]))
        behind = tuple_(consumer_groups.c.committed_txid, consumer_groups.c.committed_seq) < \
            tuple_(position.txid, position.seq)
        self._conn.execute(update(consumer_groups).where(consumer_groups.c.name == name, behind)
                           .values(committed_seq=position.seq, committed_txid=position.txid,
                                   update_time=now))
        committed = self.get_consumer_group(name)
        assert committed is not None
        return committed

    def consumer_group_state(self, name: str) -> ConsumerGroupState:
        committed = self.get_consumer_group(name)
        head = self.head_position()
        pending = self.count_events_after(committed or Position(0, 0))
        return ConsumerGroupState(name=name, committed=committed, head=head,
                                  pending_events=pending)


def _key_share(query: Any) -> Any:
    # SQLite renders no locking clause: BEGIN IMMEDIATE already serialises its writers.
    return query.with_for_update(read=True, key_share=True)


# The hot path's statements, built once: CreateItem runs them hundreds of times a second.
_DATASET_EXISTS = select(datasets.c.id).where(datasets.c.id == bindparam("id"))
_DATASET_EXISTS_LOCKED = _key_share(_DATASET_EXISTS)
_ITEM_BY_ID = select(items).where(items.c.id == bindparam("id"))
_ITEM_BY_ID_LOCKED = _ITEM_BY_ID.with_for_update()
_ITEM_BY_FILENAME = select(items).where(items.c.dataset_id == bindparam("dataset_id"),
                                        items.c.filename == bindparam("filename"))
_ITEM_BY_FILENAME_LOCKED = _ITEM_BY_FILENAME.with_for_update()
_ITEM_BY_REQUEST = select(items).where(items.c.dataset_id == bindparam("dataset_id"),
                                       items.c.request_id == bindparam("request_id"))
_ITEM_TYPES_AT = _key_share(select(items.c.filename, items.c.type).where(
    items.c.dataset_id == bindparam("dataset_id"),
    items.c.filename.in_(bindparam("filenames", expanding=True))))
_INSERT_ITEM = items.insert()
_INSERT_EVENT = events.insert()
_PG_INSERT_FOLDERS = postgresql.insert(items).on_conflict_do_nothing(
    index_elements=["dataset_id", "filename"])
_SQLITE_INSERT_FOLDERS = sqlite.insert(items).on_conflict_do_nothing(
    index_elements=["dataset_id", "filename"])


def _below(dir_path: str) -> tuple[Any, Any]:
    """A filename range holding everything under `dir_path`: '/' sorts right before '0', so
    "/a/..." lies strictly between "/a/" and "/a0". Never LIKE, which user text could steer."""
    if dir_path == "/":
        return items.c.filename > "/", items.c.filename < "0"
    return items.c.filename > dir_path + "/", items.c.filename < dir_path + "0"


class Store:
    """`on_commit` runs after every committed write (it wakes subscribers)."""

    def __init__(self, db: Database, on_commit: Callable[[], None] | None = None) -> None:
        self.db, self.on_commit = db, on_commit

    @contextlib.contextmanager
    def read(self) -> Iterator[Repository]:
        with self.db.read() as conn:
            yield Repository(conn, self.db)

    def write(self, work: Callable[[Repository], T]) -> T:
        result = self.db.write(lambda conn: work(Repository(conn, self.db)))
        if self.on_commit is not None:
            self.on_commit()
        return result
