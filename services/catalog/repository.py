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
    delete,
    func,
    select,
    union,
    update,
)

from services.catalog.blobs import thumbnail_key
from services.catalog.db import Database
from services.catalog.driver import Raw
from services.catalog.filter_sql import SortColumn, SqlBuilder, order_by_sql
from services.catalog.filters import Checked
from services.catalog.models import datasets, items, projects
from services.catalog.records import (
    ConsumerGroupState,
    Dataset,
    Event,
    EventFilter,
    EventType,
    Item,
    ItemQuery,
    ItemType,
    Outcome,
    Position,
    PreprocessingMode,
)

T = TypeVar("T")

def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _dataset(row: Row, item_count: int = 0) -> Dataset:
    return Dataset(id=row.id, name=row.name, description=row.description, project=row.project,
                   create_time=_utc(row.create_time), item_count=item_count,
                   preprocessing=PreprocessingMode(row.preprocessing))


def _item(row: Row) -> Item:
    return Item(
        id=row.id, dataset_id=row.dataset_id, dir=row.dir, name=row.name,
        filename=row.filename, type=ItemType(row.type), size=row.size, sha256=row.sha256,
        blob_key=row.blob_key, description=row.description,
        metadata_system=row.metadata_system or {}, metadata_user=row.metadata_user or {},
        create_time=_utc(row.create_time), update_time=_utc(row.update_time),
        link_url=row.link_url, link_mimetype=row.link_mimetype)


def _item_values(item: Item) -> dict[str, Any]:
    return {
        "id": item.id, "dataset_id": item.dataset_id, "dir": item.dir, "name": item.name,
        "filename": item.filename, "type": str(item.type), "size": item.size,
        "sha256": item.sha256, "blob_key": item.blob_key, "description": item.description,
        "metadata_system": item.metadata_system, "metadata_user": item.metadata_user,
        "create_time": item.create_time, "update_time": item.update_time,
        "link_url": item.link_url, "link_mimetype": item.link_mimetype,
        "thumbnail_key": thumbnail_key(item.metadata_system),
    }


def _raw_item(row: Sequence[Any], raw: Raw) -> Item:
    driver = raw.driver
    return Item(
        id=row[0], dataset_id=row[1], dir=row[2], name=row[3], filename=row[4],
        type=ItemType(row[5]), size=row[6], sha256=row[7], blob_key=row[8], description=row[9],
        metadata_system=driver.json_out(row[10]), metadata_user=driver.json_out(row[11]),
        create_time=_utc(driver.time_out(row[12])), update_time=_utc(driver.time_out(row[13])),
        link_url=row[14], link_mimetype=row[15])


def _raw_item_values(item: Item, raw: Raw) -> dict[str, Any]:
    driver = raw.driver
    return {**_item_values(item), "metadata_system": driver.json_in(item.metadata_system),
            "metadata_user": driver.json_in(item.metadata_user),
            "create_time": driver.time_in(item.create_time),
            "update_time": driver.time_in(item.update_time)}


class ItemRows:
    """Rows of a listing: each item with its sort key, the page token's content when the
    page ends at that item."""

    def __init__(self, fetch: Callable[[int], list[Sequence[Any]]], raw: Raw,
                 columns: Sequence[SortColumn]) -> None:
        self._fetch, self._raw, self._columns = fetch, raw, columns

    def fetch(self, count: int) -> list[tuple[Item, Sequence[Any]]]:
        """The next `count` rows (fewer at the end): (item, raw sort key values)."""
        return [(_raw_item(row, self._raw), row[_ITEM_COLUMN_COUNT:])
                for row in self._fetch(count)]

    def page_key(self, raw_key: Sequence[Any]) -> tuple[Any, ...]:
        """Sort key values as JSON values for a page token (times as ISO 8601 strings)."""
        return tuple(self._key_out(c.kind, v) for c, v in zip(self._columns, raw_key,
                                                                 strict=True))

    def _key_out(self, kind: str, value: Any) -> Any:
        if kind == "time":
            return _utc(self._raw.driver.time_out(value)).isoformat()
        return value


class Repository:
    def __init__(self, conn: Connection, db: Database) -> None:
        self._conn = conn
        self._raw = Raw(conn, db.driver)
        # PostgreSQL's row locks; SQLite has none (BEGIN IMMEDIATE serialises its writers).
        self._pg = db.is_postgres
        self._indexed = db.indexed_metadata

    def _lock(self, clause: str, wanted: bool = True) -> str:
        return clause if wanted and self._pg else ""

    def snapshot(self) -> None:
        """Makes the following reads see one consistent state (a read transaction)."""
        if not self._conn.in_transaction():
            self._conn.begin()

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

    def dataset_project(self, dataset_id: str) -> str | None:
        row = self._raw.one("SELECT project FROM datasets WHERE id = :id", {"id": dataset_id})
        return row[0] if row else None

    def project_exists(self, name: str) -> bool:
        return self._conn.execute(select(projects.c.name).where(projects.c.name == name)) \
            .first() is not None

    def dataset_exists(self, dataset_id: str, lock: bool = False) -> bool:
        """`lock`: keep a concurrent DeleteDataset (PostgreSQL) waiting until this commits."""
        sql = "SELECT 1 FROM datasets WHERE id = :id" + self._lock(" FOR KEY SHARE", lock)
        return self._raw.one(sql, {"id": dataset_id}) is not None

    def insert_dataset(self, dataset: Dataset, request_id: str | None) -> None:
        self._conn.execute(datasets.insert().values(
            id=dataset.id, project=dataset.project, name=dataset.name,
            description=dataset.description, create_time=dataset.create_time,
            request_id=request_id, preprocessing=str(dataset.preprocessing)))

    def set_dataset_preprocessing(self, dataset_id: str, mode: PreprocessingMode) -> None:
        self._conn.execute(update(datasets).where(datasets.c.id == dataset_id)
                           .values(preprocessing=str(mode)))

    def dataset_modes(self, dataset_ids: Sequence[str]) -> dict[str, PreprocessingMode]:
        """The preprocessing mode of each of these datasets that exists."""
        if not dataset_ids:
            return {}
        # Raw SQL: every lease claim asks (see driver.py).
        params = {f"d{n}": dataset_id for n, dataset_id in enumerate(sorted(set(dataset_ids)))}
        rows = self._raw.all("SELECT id, preprocessing FROM datasets WHERE id IN ("
                             + ", ".join(f":{key}" for key in params) + ")", params)
        return {dataset_id: PreprocessingMode(mode) for dataset_id, mode in rows}

    def list_datasets(self, project: str | None, after: tuple[str, str] | None,
                      limit: int) -> list[Dataset]:
        """Datasets of `project` (None: of every project) after (project, name) `after`, in
        that order."""
        query = select(datasets)
        if project is not None:
            query = query.where(datasets.c.project == project)
        if after is not None:
            after_project, after_name = after
            query = query.where((datasets.c.project > after_project) | (
                (datasets.c.project == after_project) & (datasets.c.name > after_name)))
        rows = self._conn.execute(
            query.order_by(datasets.c.project, datasets.c.name).limit(limit)).all()
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
        row = self._raw.one(_ITEM_BY_ID + self._lock(" FOR UPDATE", lock), {"id": item_id})
        return _raw_item(row, self._raw) if row else None

    def get_items(self, item_ids: Sequence[str], lock: bool = False) -> dict[str, Item]:
        """The items among `item_ids` that exist, by id; `lock` as get_item (rows locked in
        id order, so two transactions locking overlapping sets cannot deadlock)."""
        found: dict[str, Item] = {}
        ids = sorted(set(item_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            params = {f"i{n}": item_id for n, item_id in enumerate(chunk)}
            rows = self._raw.all(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE id IN "
                f"({', '.join(':' + key for key in params)}) ORDER BY id"
                + self._lock(" FOR UPDATE", lock), params)
            for row in rows:
                item = _raw_item(row, self._raw)
                found[item.id] = item
        return found

    def get_item_by_filename(self, dataset_id: str, filename: str,
                             lock: bool = False) -> Item | None:
        row = self._raw.one(_ITEM_BY_FILENAME + self._lock(" FOR UPDATE", lock),
                            {"dataset_id": dataset_id, "filename": filename})
        return _raw_item(row, self._raw) if row else None

    def get_item_by_request(self, dataset_id: str, request_id: str) -> tuple[Item, Outcome] | None:
        row = self._raw.one(_ITEM_BY_REQUEST, {"dataset_id": dataset_id, "request_id": request_id})
        if row is None:
            return None
        return _raw_item(row, self._raw), Outcome(row[_ITEM_COLUMN_COUNT] or Outcome.CREATED)

    def item_types_at(self, dataset_id: str, filenames: Sequence[str]) -> dict[str, ItemType]:
        """The types of the items at `filenames`. The rows stay key-share locked, so a
        concurrent folder delete (PostgreSQL) waits and then sees what this transaction adds."""
        if self._pg:
            # One array parameter: a prepared statement with thousands of parameters (bulk
            # loads) gets a generic plan that may scan the table once per listed value.
            rows = self._raw.all(
                "SELECT filename, type FROM items WHERE dataset_id = :dataset_id "
                "AND filename = ANY(:filenames) FOR KEY SHARE",
                {"dataset_id": dataset_id, "filenames": list(filenames)})
            return {filename: ItemType(kind) for filename, kind in rows}
        params = {f"f{i}": filename for i, filename in enumerate(filenames)}
        rows = self._raw.all(
            "SELECT filename, type FROM items WHERE dataset_id = :dataset_id AND filename IN ("
            + ", ".join(f":{key}" for key in params) + ")", {"dataset_id": dataset_id, **params})
        return {filename: ItemType(kind) for filename, kind in rows}

    def insert_folders(self, folders: Iterable[Item]) -> None:
        """Folders that already exist (perhaps created concurrently) are left alone."""
        self._raw.many(_INSERT_ITEM + " ON CONFLICT (dataset_id, filename) DO NOTHING",
                       [{**_raw_item_values(folder, self._raw), "request_id": None,
                         "request_outcome": None} for folder in folders])

    def insert_encoded_items(self, rows: Sequence[dict[str, Any]], payloads: Sequence[str],
                             now: datetime) -> None:
        """New items and their CREATED events, with every JSON value already encoded as text
        (bulk loads): item rows hold the item columns but the times, which are `now`."""
        stamp = self._raw.driver.time_in(now)
        item_rows = [{**row, "create_time": stamp, "update_time": stamp, "request_id": None,
                      "request_outcome": None} for row in rows]
        event_rows = [{"type": str(EventType.CREATED), "item_id": row["id"],
                       "dataset_id": row["dataset_id"], "payload": payload,
                       "create_time": stamp}
                      for row, payload in zip(rows, payloads, strict=True)]
        if self._pg:  # COPY: one stream instead of a statement per row
            projects_of = {d: self.dataset_project(d) or ""
                           for d in {row["dataset_id"] for row in rows}}
            self._raw.copy("items", item_rows)
            self._raw.copy("events", [{**row, "project": projects_of[row["dataset_id"]]}
                                      for row in event_rows])
            return
        self._raw.many(_INSERT_ITEM, item_rows)
        self._raw.many(_INSERT_EVENT, [{**row, "of_dataset": row["dataset_id"]}
                                       for row in event_rows])

    def items_by_requests(self, dataset_id: str, request_ids: Sequence[str],
                          ) -> dict[str, tuple[Item, Outcome]]:
        """get_item_by_request for many request ids at once (one statement)."""
        if not request_ids:
            return {}
        if self._pg:
            rows = self._raw.all(_ITEMS_BY_REQUESTS + " = ANY(:request_ids)",
                                 {"dataset_id": dataset_id, "request_ids": list(request_ids)})
        else:
            params = {f"r{i}": request_id for i, request_id in enumerate(request_ids)}
            rows = self._raw.all(
                _ITEMS_BY_REQUESTS + " IN (" + ", ".join(f":{key}" for key in params) + ")",
                {"dataset_id": dataset_id, **params})
        return {row[_ITEM_COLUMN_COUNT + 1]: (
                    _raw_item(row, self._raw), Outcome(row[_ITEM_COLUMN_COUNT] or Outcome.CREATED))
                for row in rows}

    def insert_items(self, new: Sequence[Item], request_ids: Sequence[str | None],
                     outcome: Outcome) -> None:
        """insert_item for many items in one executemany."""
        self._raw.many(_INSERT_ITEM, [
            {**_raw_item_values(item, self._raw), "request_id": request_id,
             "request_outcome": str(outcome)}
            for item, request_id in zip(new, request_ids, strict=True)])

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undoes the block's writes if it raises (the transaction goes on)."""
        dbapi = self._conn.connection.driver_connection
        dbapi.execute("SAVEPOINT corral_entry")
        try:
            yield
        except BaseException:
            dbapi.execute("ROLLBACK TO SAVEPOINT corral_entry")
            dbapi.execute("RELEASE SAVEPOINT corral_entry")
            raise
        dbapi.execute("RELEASE SAVEPOINT corral_entry")

    def insert_item(self, item: Item, request_id: str | None, outcome: Outcome | None) -> None:
        self._raw.run(_INSERT_ITEM, {**_raw_item_values(item, self._raw),
                                     "request_id": request_id,
                                     "request_outcome": str(outcome) if outcome else None})

    def replace_item(self, item: Item, request_id: str | None, outcome: Outcome | None) -> None:
        """Writes every mutable column of `item` (by id); the request id only when given."""
        values = _item_values(item)
        del values["id"], values["create_time"]
        if request_id is not None:
            values.update(request_id=request_id, request_outcome=str(outcome) if outcome else None)
        self._conn.execute(update(items).where(items.c.id == item.id).values(**values))

    def set_system_metadata(self, item_id: str, metadata_system: dict[str, Any],
                            update_time: datetime) -> None:
        driver = self._raw.driver
        self._raw.run("UPDATE items SET metadata_system = :metadata_system, "
                      "thumbnail_key = :thumbnail_key, update_time = :update_time WHERE id = :id",
                      {"id": item_id, "metadata_system": driver.json_in(metadata_system),
                       "thumbnail_key": thumbnail_key(metadata_system),
                       "update_time": driver.time_in(update_time)})

    def set_system_metadata_many(self, changed: Sequence[Item]) -> None:
        """set_system_metadata for several items in one executemany."""
        driver = self._raw.driver
        self._raw.many(
            "UPDATE items SET metadata_system = :metadata_system, "
            "thumbnail_key = :thumbnail_key, update_time = :update_time WHERE id = :id",
            [{"id": item.id, "metadata_system": driver.json_in(item.metadata_system),
              "thumbnail_key": thumbnail_key(item.metadata_system),
              "update_time": driver.time_in(item.update_time)} for item in changed])

    def _listing(self, query: ItemQuery) -> tuple[SqlBuilder, list[str]]:
        """The builder and WHERE terms of a listing: dataset, folder scope, filter."""
        builder = SqlBuilder(self._pg, self._indexed, self._raw.driver.time_in)
        terms = [f"dataset_id = {builder.bind(query.dataset_id)}"]
        if not query.recursive:
            terms.append(f"dir = {builder.bind(query.dir)}")
        elif query.dir != "/":  # every item is below the root: no term needed
            low, high = _below_bounds(query.dir)
            terms.append(f"filename > {builder.bind(low)} AND filename < {builder.bind(high)}")
        if query.filter is not None:
            builder.prefer_equalities(query.filter)
            terms.append(builder.where(query.filter))
        return builder, terms

    def _page_sql(self, query: ItemQuery) -> tuple[str, dict[str, Any], list[SortColumn]]:
        builder, terms = self._listing(query)
        columns = builder.sort_columns(query.order)
        if query.after is not None:
            terms.append(builder.after(columns, query.after))
        where = " AND ".join(terms)
        sort_matches = query.filter is not None and not self._pg and self._few_matches(
            where, builder.params)
        keys = ", ".join(c.sql for c in columns)
        sql = (f"SELECT {_ITEM_COLUMNS}, {keys} FROM items WHERE {where} ORDER BY "
               f"{order_by_sql(columns, sort_matches)} LIMIT {builder.bind(query.limit + 1)}")
        return sql, builder.params, columns

    def refresh_statistics(self) -> None:
        """PostgreSQL: gathers the planner's statistics now, as autovacuum would later (after
        a bulk load queries would otherwise be planned without them). SQLite: nothing. Its
        planner without statistics picks well for these queries (the index of an equality
        over a range), while statistics sampled with analysis_limit mislead it and a full
        ANALYZE holds the write lock for seconds on a large catalog."""
        if self._pg:
            self._raw.run("ANALYZE items")

    def _few_matches(self, where: str, params: dict[str, Any]) -> bool:
        """SQLite only. Its planner likes to walk an index in the sort order and test every
        row against the filter, which scans the whole dataset when matches are rare; given
        few matches, finding them through the filter's own index and sorting them is far
        cheaper. PostgreSQL decides this itself from its column statistics."""
        row = self._raw.one(f"SELECT count(*) FROM (SELECT 1 FROM items WHERE {where} "
                            f"LIMIT {_FEW_MATCHES})", params)
        return row is not None and row[0] < _FEW_MATCHES

    @contextlib.contextmanager
    def item_rows(self, query: ItemQuery) -> Iterator[ItemRows]:
        """A listing's rows (at most `query.limit` + 1, the last telling that more follow),
        read as the caller fetches them: a page that ends early at its byte budget leaves
        the rest in the database."""
        sql, params, columns = self._page_sql(query)
        with self._raw.fetching(sql, params) as fetch:
            yield ItemRows(fetch, self._raw, columns)

    def explain_items(self, query: ItemQuery) -> str:
        """The database's plan for one page of a listing (tests and benchmarks check that
        the indexes are used)."""
        sql, params, _columns = self._page_sql(query)
        prefix = "EXPLAIN " if self._pg else "EXPLAIN QUERY PLAN "
        return "\n".join(str(row[-1]) for row in self._raw.all(prefix + sql, params))

    def count_items(self, query: ItemQuery) -> int:
        builder, terms = self._listing(query)
        row = self._raw.one(f"SELECT count(*) FROM items WHERE {' AND '.join(terms)}",
                            builder.params)
        assert row is not None
        return row[0]

    def matching_items(self, dataset_id: str, where: Checked, after_id: str,
                       limit: int) -> list[Item]:
        """The next `limit` items (by id) of the dataset that match `where`; locked on
        PostgreSQL until commit."""
        builder = SqlBuilder(self._pg, self._indexed, self._raw.driver.time_in)
        rows = self._raw.all(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE dataset_id = {builder.bind(dataset_id)} "
            f"AND id > {builder.bind(after_id)} AND {builder.where(where)} "
            f"ORDER BY id LIMIT {builder.bind(limit)}" + self._lock(" FOR UPDATE"),
            builder.params)
        return [_raw_item(row, self._raw) for row in rows]

    def set_user_metadata(self, changed: Sequence[Item]) -> None:
        """Writes metadata_user and update_time of each item, in one batch."""
        driver = self._raw.driver
        self._raw.many("UPDATE items SET metadata_user = :metadata_user, "
                       "update_time = :update_time WHERE id = :id",
                       [{"id": item.id, "metadata_user": driver.json_in(item.metadata_user),
                         "update_time": driver.time_in(item.update_time)} for item in changed])

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
        """The keys some remaining item still uses, as its binary or as its thumbnail."""
        if not keys:
            return set()
        used: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            # One statement per chunk; each half is an index lookup on its own column.
            rows = self._conn.execute(union(
                select(items.c.blob_key).where(items.c.blob_key.in_(chunk)),
                select(items.c.thumbnail_key).where(items.c.thumbnail_key.in_(chunk))))
            used.update(key for (key,) in rows)
        return used

    def hold_off_item_writes(self, lock_timeout_seconds: float) -> None:
        """Until this write transaction ends, no other transaction can add or change an item
        (so a reference read now stays true). SQLite: the write transaction already excludes
        every other writer. PostgreSQL: a SHARE lock on items, which waits for uncommitted item
        writes to finish and holds new ones back; failing after `lock_timeout_seconds`."""
        if not self._pg:
            return
        self._conn.exec_driver_sql(
            f"SET LOCAL lock_timeout = {int(lock_timeout_seconds * 1000)}")
        self._conn.exec_driver_sql("LOCK TABLE items IN SHARE MODE")

    # -- events -----------------------------------------------------------------------------

    def append_events(self, entries: Iterable[tuple[EventType, Item]], now: datetime) -> None:
        driver = self._raw.driver
        created = driver.time_in(now)
        self._raw.many(
            _INSERT_EVENT,
            [{"type": str(kind), "item_id": item.id, "dataset_id": item.dataset_id,
              "of_dataset": item.dataset_id,
              "payload": driver.json_in(item.to_payload()), "create_time": created}
             for kind, item in entries])

    def _event(self, row: Sequence[Any]) -> Event:
        driver = self._raw.driver
        return Event(position=Position(row[1], row[0]), type=EventType(row[2]),
                     item_id=row[3], dataset_id=row[4],
                     item=Item.from_payload(driver.json_out(row[5])),
                     create_time=_utc(driver.time_out(row[6])))

    def _where_after(self, position: Position) -> tuple[str, dict[str, Any]]:
        """Deliverable events after `position` (see events.py for why PostgreSQL differs)."""
        params = {"txid": position.txid, "seq": position.seq}
        if self._pg:
            return f"(txid, seq) > (:txid, :seq) AND txid < {_PG_XMIN}", params
        return "seq > :seq", params

    def read_events(self, after: Position, limit: int, event_filter: EventFilter) -> list[Event]:
        """Up to `limit` deliverable events after `after`, in stream order."""
        where, params = self._where_after(after)
        if event_filter.types:
            kinds = {f"t{i}": str(kind) for i, kind in enumerate(sorted(event_filter.types))}
            where += " AND type IN (" + ", ".join(f":{key}" for key in kinds) + ")"
            params.update(kinds)
        if event_filter.dataset_id:
            where += " AND dataset_id = :dataset_id"
            params["dataset_id"] = event_filter.dataset_id
        if event_filter.project is not None:
            where += " AND project = :project"
            params["project"] = event_filter.project
        rows = self._raw.all(
            "SELECT seq, txid, type, item_id, dataset_id, payload, create_time FROM events "
            f"WHERE {where} ORDER BY {self._stream_order()} LIMIT :limit",
            {**params, "limit": limit})
        return [self._event(row) for row in rows]

    def _stream_order(self, descending: bool = False) -> str:
        # SQLite's txid is always 0: order by the rowid alone so the primary key serves it.
        order = "txid DESC, seq DESC" if descending else "txid, seq"
        return order if self._pg else order.split(", ")[-1]

    def head_position(self, project: str | None = None) -> Position | None:
        """The newest deliverable event's position (of `project`'s events; None: of all)."""
        terms = [f"txid < {_PG_XMIN}"] if self._pg else []
        if project is not None:
            terms.append("project = :project")
        where = f"WHERE {' AND '.join(terms)} " if terms else ""
        row = self._raw.one(f"SELECT txid, seq FROM events {where}"
                            f"ORDER BY {self._stream_order(descending=True)} LIMIT 1",
                            {"project": project} if project is not None else None)
        return Position(row[0], row[1]) if row else None

    def count_events_after(self, position: Position, project: str | None = None) -> int:
        where, params = self._where_after(position)
        if project is not None:
            where, params = where + " AND project = :project", {**params, "project": project}
        row = self._raw.one(f"SELECT count(*) FROM events WHERE {where}", params)
        assert row is not None
        return row[0]

    def get_consumer_group(self, name: str) -> Position | None:
        row = self._raw.one("SELECT committed_txid, committed_seq FROM consumer_groups "
                            "WHERE name = :name", {"name": name})
        if row is None or (row[0] == 0 and row[1] == 0):
            return None
        return Position(row[0], row[1])

    def commit_consumer_group(self, name: str, position: Position, now: datetime) -> Position:
        """Moves the group's cursor forward to `position` (never backwards); returns it."""
        params = {"name": name, "txid": position.txid, "seq": position.seq,
                  "now": self._raw.driver.time_in(now)}
        if self._raw.run(_ADVANCE_GROUP, params) or self._raw.run(_INSERT_GROUP, params):
            return position
        # A concurrent first commit inserted the row meanwhile: it exists now.
        if self._raw.run(_ADVANCE_GROUP, params):
            return position
        committed = self.get_consumer_group(name)
        return committed or position

    def consumer_group_state(self, name: str, project: str | None = None) -> ConsumerGroupState:
        """The group's cursors; head and lag count `project`'s events only (None: all)."""
        self.snapshot()
        committed = self.get_consumer_group(name)
        head = self.head_position(project)
        pending = self.count_events_after(committed or Position(0, 0), project)
        return ConsumerGroupState(name=name, committed=committed, head=head,
                                  pending_events=pending)

    # For the statements of other modules (lease_repository.py) on this transaction.
    @property
    def raw(self) -> Raw:
        return self._raw

    @property
    def is_postgres(self) -> bool:
        return self._pg

    def deliverable_after(self, position: Position) -> tuple[str, dict[str, Any]]:
        return self._where_after(position)

    def event_from_row(self, row: Sequence[Any]) -> Event:
        """A row of (seq, txid, type, item_id, dataset_id, payload, create_time)."""
        return self._event(row)


# The hot path's statements (plain SQL on the driver connection, see driver.py).
# Every transaction with a smaller id has finished (committed or rolled back), so events
# below it can no longer appear behind a reader's back.
_PG_XMIN = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
_ITEM_COLUMNS = ("id, dataset_id, dir, name, filename, type, size, sha256, blob_key, "
                 "description, metadata_system, metadata_user, create_time, update_time, "
                 "link_url, link_mimetype")
# Below this many matches SQLite sorts them rather than walk an index in sort order.
_FEW_MATCHES = 1000
_ITEM_COLUMN_COUNT = len(_ITEM_COLUMNS.split(", "))
_ITEM_BY_ID = f"SELECT {_ITEM_COLUMNS} FROM items WHERE id = :id"
_ITEM_BY_FILENAME = (f"SELECT {_ITEM_COLUMNS} FROM items "
                     "WHERE dataset_id = :dataset_id AND filename = :filename")
_ITEM_BY_REQUEST = (f"SELECT {_ITEM_COLUMNS}, request_outcome FROM items "
                    "WHERE dataset_id = :dataset_id AND request_id = :request_id")
_ITEMS_BY_REQUESTS = (f"SELECT {_ITEM_COLUMNS}, request_outcome, request_id FROM items "
                      "WHERE dataset_id = :dataset_id AND request_id")
_INSERT_ITEM = (f"INSERT INTO items ({_ITEM_COLUMNS}, thumbnail_key, request_id, "
                "request_outcome) VALUES ("
                + ", ".join(f":{c}" for c in _ITEM_COLUMNS.split(", "))
                + ", :thumbnail_key, :request_id, :request_outcome)")
# The event takes its dataset's project (read in the writing transaction, so it is the one
# the dataset has; '' only if the dataset were gone, which only instance-wide callers see).
# The dataset id is bound twice: PostgreSQL deduces one parameter's type once per statement.
_INSERT_EVENT = ("INSERT INTO events (type, item_id, dataset_id, payload, create_time, project) "
                 "VALUES (:type, :item_id, :dataset_id, :payload, :create_time, "
                 "COALESCE((SELECT project FROM datasets WHERE id = :of_dataset), ''))")
_ADVANCE_GROUP = ("UPDATE consumer_groups SET committed_txid = :txid, committed_seq = :seq, "
                  "update_time = :now WHERE name = :name "
                  "AND (committed_txid, committed_seq) < (:txid, :seq)")
_INSERT_GROUP = ("INSERT INTO consumer_groups (name, committed_txid, committed_seq, update_time) "
                 "VALUES (:name, :txid, :seq, :now) ON CONFLICT (name) DO NOTHING")


def _below_bounds(dir_path: str) -> tuple[str, str]:
    """Exclusive filename bounds of everything under `dir_path`: '/' sorts right before '0',
    so "/a/..." lies strictly between "/a/" and "/a0". Never LIKE, which user text could
    steer."""
    if dir_path == "/":
        return "/", "0"
    return dir_path + "/", dir_path + "0"


def _below(dir_path: str) -> tuple[Any, Any]:
    low, high = _below_bounds(dir_path)
    return items.c.filename > low, items.c.filename < high


class Store:
    """`on_commit` runs after every committed write (it wakes subscribers)."""

    def __init__(self, db: Database, on_commit: Callable[[], None] | None = None) -> None:
        self.db, self.on_commit = db, on_commit

    @contextlib.contextmanager
    def read(self, one_statement: bool = False) -> Iterator[Repository]:
        """A consistent snapshot; `one_statement` when the caller runs a single statement,
        which needs no transaction."""
        with self.db.read(autocommit=one_statement) as conn:
            repo = Repository(conn, self.db)
            if not one_statement:
                repo.snapshot()
            yield repo

    def write(self, work: Callable[[Repository], T]) -> T:
        result = self.db.write(lambda conn: work(Repository(conn, self.db)))
        if self.on_commit is not None:
            self.on_commit()
        return result
