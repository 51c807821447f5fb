"""The SQL of leased consumer groups and of event retention (see leases.py, retention.py).

PostgreSQL: several catalog replicas claim from one group at once. Claims take the pending
rows with FOR UPDATE SKIP LOCKED, so two replicas never lease the same row and never wait on
each other; extending the group's frontier locks the group row the same way, so one replica at
a time turns new events into pending rows. SQLite serialises all writers instead."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.catalog.records import Event, Position
from services.catalog.repository import Repository

_EVENT_COLUMNS = "seq, txid, type, item_id, dataset_id, payload, create_time"
_GROUP_COLUMNS = ("name, event_types, dataset_id, frontier_txid, frontier_seq, dataset_modes, "
                  "project")


@dataclass(frozen=True)
class LeasedGroup:
    name: str
    event_types: str
    dataset_id: str
    frontier: Position
    # Comma-separated dataset preprocessing modes ("" = every dataset); None for a group
    # created before they existed (its next subscriber sets them).
    dataset_modes: str | None = ""
    # Events of this project only ("" = every project).
    project: str = ""

    @property
    def modes(self) -> frozenset[str]:
        return frozenset(self.dataset_modes.split(",")) if self.dataset_modes else frozenset()


@dataclass(frozen=True)
class Claim:
    position: Position
    attempts: int


def _group(row: Sequence[Any]) -> LeasedGroup:
    return LeasedGroup(row[0], row[1], row[2], Position(row[3], row[4]), row[5], row[6])


def _in_list(prefix: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    params = {f"{prefix}{i}": value for i, value in enumerate(values)}
    return "(" + ", ".join(f":{key}" for key in params) + ")", params


class LeaseRepository:
    def __init__(self, repo: Repository) -> None:
        self._repo, self._raw, self._pg = repo, repo.raw, repo.is_postgres

    def _skip_locked(self) -> str:
        return " FOR UPDATE SKIP LOCKED" if self._pg else ""

    # -- groups -----------------------------------------------------------------------------

    def get_group(self, name: str, lock: bool = False) -> LeasedGroup | None:
        """`lock` (PostgreSQL): None as well while another transaction holds the row."""
        row = self._raw.one(
            f"SELECT {_GROUP_COLUMNS} FROM leased_groups WHERE name = :name"
            + (self._skip_locked() if lock else ""), {"name": name})
        return _group(row) if row is not None else None

    def lock_group(self, name: str) -> LeasedGroup | None:
        """The group, its row locked until commit (PostgreSQL; waiting, not skipping), so
        transactions computing its low-watermark on different replicas run one after the
        other and each sees what the one before it acknowledged."""
        row = self._raw.one(
            f"SELECT {_GROUP_COLUMNS} FROM leased_groups WHERE name = :name"
            + (" FOR UPDATE" if self._pg else ""), {"name": name})
        return _group(row) if row is not None else None

    def groups_filtering_modes(self) -> list[LeasedGroup]:
        """Groups that filter by dataset preprocessing mode, each row locked until commit
        (PostgreSQL; waiting, not skipping) so no frontier moves while a mode changes."""
        rows = self._raw.all(
            f"SELECT {_GROUP_COLUMNS} FROM leased_groups WHERE dataset_modes IS NOT NULL AND "
            "dataset_modes <> '' ORDER BY name" + (" FOR UPDATE" if self._pg else ""))
        return [_group(row) for row in rows]

    def set_group_modes(self, name: str, dataset_modes: str) -> None:
        self._raw.run("UPDATE leased_groups SET dataset_modes = :modes WHERE name = :name",
                      {"name": name, "modes": dataset_modes})

    def insert_group(self, group: LeasedGroup, now: datetime) -> None:
        """Does nothing if a concurrent subscriber created it first."""
        self._raw.run(
            "INSERT INTO leased_groups (name, event_types, dataset_id, dataset_modes, "
            "frontier_txid, frontier_seq, create_time, project) VALUES (:name, :types, "
            ":dataset_id, :modes, :txid, :seq, :now, :project) ON CONFLICT (name) DO NOTHING",
            {"name": group.name, "types": group.event_types, "dataset_id": group.dataset_id,
             "modes": group.dataset_modes or "", "txid": group.frontier.txid,
             "seq": group.frontier.seq, "now": self._raw.driver.time_in(now),
             "project": group.project})

    def advance_frontier(self, name: str, position: Position) -> None:
        self._raw.run(
            "UPDATE leased_groups SET frontier_txid = :txid, frontier_seq = :seq "
            "WHERE name = :name AND (frontier_txid, frontier_seq) < (:txid, :seq)",
            {"name": name, "txid": position.txid, "seq": position.seq})

    # -- events and lease rows --------------------------------------------------------------

    def scan_after(self, position: Position,
                   limit: int) -> list[tuple[Position, str, str, str]]:
        """(position, type, dataset id, project) of the next deliverable events, in stream
        order."""
        where, params = self._repo.deliverable_after(position)
        order = "txid, seq" if self._pg else "seq"
        rows = self._raw.all(f"SELECT txid, seq, type, dataset_id, project FROM events "
                             f"WHERE {where} ORDER BY {order} LIMIT :limit",
                             {**params, "limit": limit})
        return [(Position(row[0], row[1]), row[2], row[3], row[4]) for row in rows]

    def add_pending(self, name: str, positions: Sequence[Position]) -> None:
        self._raw.many(
            "INSERT INTO event_leases (group_name, seq, txid, owner, lease_expire_ms, attempts) "
            "VALUES (:name, :seq, :txid, '', 0, 0) ON CONFLICT (group_name, seq) DO NOTHING",
            [{"name": name, "seq": p.seq, "txid": p.txid} for p in positions])

    def hand_over(self, source: LeasedGroup, target: LeasedGroup, dataset_id: str) -> int:
        """Gives `target` pending rows for the events of `dataset_id` that `source` has not
        acknowledged and `target`'s frontier has already passed: `source`'s rows of them, and
        the events after `source`'s frontier. Events after `target`'s frontier need nothing:
        its own scan meets them. The rows count one delivery already, so the worker asks the
        catalog whether the item was done before redoing it. Returns the rows added."""
        params: dict[str, Any] = {
            "target": target.name, "source": source.name, "dataset_id": dataset_id,
            "ttxid": target.frontier.txid, "tseq": target.frontier.seq,
            "stxid": source.frontier.txid, "sseq": source.frontier.seq}
        types = ""
        if target.event_types:
            in_list, type_params = _in_list("k", target.event_types.split(","))
            types, params = f" AND e.type IN {in_list}", {**params, **type_params}
        # SQLite's txid is always 0: compare seq alone, so its primary key serves the range.
        upto = "(e.txid, e.seq) <= (:ttxid, :tseq)" if self._pg else "e.seq <= :tseq"
        after = "(e.txid, e.seq) > (:stxid, :sseq)" if self._pg else "e.seq > :sseq"
        insert = ("INSERT INTO event_leases (group_name, seq, txid, owner, lease_expire_ms, "
                  "attempts) SELECT :target, e.seq, e.txid, '', 0, 1 ")
        added = self._raw.run(
            insert + "FROM event_leases l JOIN events e ON e.seq = l.seq "
            f"WHERE l.group_name = :source AND e.dataset_id = :dataset_id AND {upto}{types} "
            "ON CONFLICT (group_name, seq) DO NOTHING", params)
        if source.frontier < target.frontier:
            added += self._raw.run(
                insert + f"FROM events e WHERE {after} AND {upto} "
                f"AND e.dataset_id = :dataset_id{types} "
                "ON CONFLICT (group_name, seq) DO NOTHING", params)
        return added

    def held_by(self, name: str, owner: str, now_ms: int) -> int:
        row = self._raw.one(
            "SELECT count(*) FROM event_leases WHERE group_name = :name AND owner = :owner "
            "AND lease_expire_ms >= :now", {"name": name, "owner": owner, "now": now_ms})
        assert row is not None
        return row[0]

    def claim(self, name: str, owner: str, now_ms: int, expire_ms: int,
              limit: int) -> list[Claim]:
        """Leases up to `limit` of the oldest pending or expired rows to `owner`."""
        # A materialized CTE runs the locking pick once: as an IN subquery PostgreSQL may
        # rescan it, and with SKIP LOCKED each rescan picks other rows past the LIMIT.
        rows = self._raw.all(
            "WITH picked AS MATERIALIZED (SELECT seq FROM event_leases "
            "WHERE group_name = :name AND lease_expire_ms < :now "
            f"ORDER BY txid, seq LIMIT :limit{self._skip_locked()}) "
            "UPDATE event_leases SET owner = :owner, lease_expire_ms = :expire, "
            "attempts = attempts + 1 FROM picked "
            "WHERE event_leases.group_name = :name AND event_leases.seq = picked.seq "
            "RETURNING event_leases.txid, event_leases.seq, event_leases.attempts",
            {"name": name, "owner": owner, "now": now_ms, "expire": expire_ms, "limit": limit})
        return sorted((Claim(Position(row[0], row[1]), row[2]) for row in rows),
                      key=lambda claim: claim.position)

    def events_at(self, seqs: Sequence[int]) -> dict[int, Event]:
        if not seqs:
            return {}
        in_list, params = _in_list("s", seqs)
        rows = self._raw.all(f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq IN {in_list}",
                             params)
        events = [self._repo.event_from_row(row) for row in rows]
        return {event.position.seq: event for event in events}

    def delete_leases(self, name: str, seqs: Sequence[int]) -> None:
        for start in range(0, len(seqs), 500):
            in_list, params = _in_list("s", seqs[start:start + 500])
            self._raw.run(f"DELETE FROM event_leases WHERE group_name = :name AND seq IN "
                          f"{in_list}", {"name": name, **params})

    def delete_leases_through(self, name: str, position: Position) -> None:
        self._raw.run("DELETE FROM event_leases WHERE group_name = :name "
                      "AND (txid, seq) <= (:txid, :seq)",
                      {"name": name, "txid": position.txid, "seq": position.seq})

    def oldest_unacked(self, name: str) -> Position | None:
        row = self._raw.one("SELECT txid, seq FROM event_leases WHERE group_name = :name "
                            "ORDER BY txid, seq LIMIT 1", {"name": name})
        return Position(row[0], row[1]) if row else None

    def extend(self, name: str, owner: str, seqs: Sequence[int], now_ms: int,
               expire_ms: int) -> list[int]:
        """Moves the expiry of the unexpired leases `owner` holds; expire 0 gives them back."""
        if not seqs:
            return []
        in_list, params = _in_list("s", seqs)
        give_back = expire_ms == 0
        rows = self._raw.all(
            "UPDATE event_leases SET lease_expire_ms = :expire"
            + (", owner = ''" if give_back else "")
            + " WHERE group_name = :name AND owner = :owner AND lease_expire_ms >= :now "
            f"AND seq IN {in_list} RETURNING seq",
            {"name": name, "owner": owner, "now": now_ms, "expire": expire_ms, **params})
        return [row[0] for row in rows]

    def leased_count(self, name: str, now_ms: int) -> int:
        row = self._raw.one("SELECT count(*) FROM event_leases WHERE group_name = :name "
                            "AND owner <> '' AND lease_expire_ms >= :now",
                            {"name": name, "now": now_ms})
        assert row is not None
        return row[0]

    # -- retention --------------------------------------------------------------------------

    def trimmed_through(self) -> Position | None:
        row = self._raw.one("SELECT trimmed_txid, trimmed_seq FROM event_retention WHERE id = 1")
        return Position(row[0], row[1]) if row else None

    def oldest_events(self, limit: int) -> list[tuple[Position, datetime]]:
        """The oldest deliverable events, in stream order, with their write times."""
        where, params = self._repo.deliverable_after(Position(0, 0))
        order = "txid, seq" if self._pg else "seq"
        rows = self._raw.all(f"SELECT txid, seq, create_time FROM events WHERE {where} "
                             f"ORDER BY {order} LIMIT :limit", {**params, "limit": limit})
        driver = self._raw.driver
        return [(Position(row[0], row[1]), driver.time_out(row[2])) for row in rows]

    def delete_events_through(self, position: Position, now: datetime) -> int:
        """Deletes every event up to `position`, and the lease rows of those events; records
        `position` as trimmed (never backwards)."""
        params = {"txid": position.txid, "seq": position.seq,
                  "now": self._raw.driver.time_in(now)}
        # SQLite's txid is always 0: compare seq alone, so its primary key serves the delete.
        through = "(txid, seq) <= (:txid, :seq)" if self._pg else "seq <= :seq"
        deleted = self._raw.run(f"DELETE FROM events WHERE {through}", params)
        self._raw.run("DELETE FROM event_leases WHERE (txid, seq) <= (:txid, :seq)", params)
        if not self._raw.run(
                "UPDATE event_retention SET trimmed_txid = :txid, trimmed_seq = :seq, "
                "update_time = :now WHERE id = 1 AND (trimmed_txid, trimmed_seq) < (:txid, :seq)",
                params):
            self._raw.run("INSERT INTO event_retention (id, trimmed_txid, trimmed_seq, "
                          "update_time) VALUES (1, :txid, :seq, :now) ON CONFLICT (id) DO NOTHING",
                          params)
        return deleted
