"""Projects and API keys: who may create which, and resolving a presented key.

Instance admins (instance-wide admin keys, e.g. the one `corral up` creates) manage every
project and key; a project's admins manage only their project's keys. Asking about another
project's key or project answers NOT_FOUND, as if it did not exist.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import Connection, Row, select, update

from corral.credentials import new_api_key, parse_api_key
from corral.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from services.catalog.db import Database
from services.catalog.models import api_keys, projects
from services.catalog.validation import (
    check_description,
    decode_page_token,
    encode_page_token,
    page_size,
)
from services.common.auth import Principal, Role

_PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Project:
    name: str
    description: str
    create_time: datetime


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    project: str | None
    role: Role
    description: str
    create_time: datetime
    revoke_time: datetime | None = None


@dataclass(frozen=True)
class KeyPage:
    entries: list[ApiKey]
    next_page_token: str


@dataclass(frozen=True)
class ProjectPage:
    entries: list[Project]
    next_page_token: str


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _key(row: Row) -> ApiKey:
    return ApiKey(key_id=row.id, project=row.project, role=Role.parse(row.role),
                  description=row.description, create_time=_utc(row.create_time),
                  revoke_time=_utc(row.revoke_time))


def _project(row: Row) -> Project:
    return Project(name=row.name, description=row.description,
                   create_time=_utc(row.create_time))


def check_project_name(name: str, field: str = "name") -> str:
    if not _PROJECT_NAME.fullmatch(name):
        raise InvalidArgument(
            f"{field} must be 1-128 letters, digits, '.', '_' or '-', starting with a letter "
            f"or digit, got {name[:140]!r}")
    return name


def _require_instance_admin(caller: Principal, action: str) -> None:
    if not (caller.instance_wide and caller.role >= Role.ADMIN and not caller.service):
        raise PermissionDenied(f"only instance admins may {action}")


def _may_manage(caller: Principal, project: str | None) -> bool:
    if caller.instance_wide:
        return True
    return project is not None and project == caller.project


def _project_exists(conn: Connection, name: str) -> bool:
    return conn.execute(select(projects.c.name).where(projects.c.name == name)).first() \
        is not None


class Access:
    """Projects and keys in the catalog database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # Projects

    def create_project(self, caller: Principal, name: str, description: str = "") -> Project:
        _require_instance_admin(caller, "create projects")
        name, description = check_project_name(name), check_description(description)
        project = Project(name=name, description=description, create_time=datetime.now(UTC))

        def work(conn: Connection) -> Project:
            if _project_exists(conn, name):
                raise AlreadyExists(f"project {name!r} already exists")
            conn.execute(projects.insert().values(
                name=name, description=description, create_time=project.create_time))
            return project

        return self.db.write(work)

    def project_exists(self, name: str) -> bool:
        with self.db.read(autocommit=True) as conn:
            return _project_exists(conn, name)

    def list_projects(self, caller: Principal, size: int = 0, token: str = "") -> ProjectPage:
        limit = page_size(size)
        after = decode_page_token(token) or ""
        query = select(projects).where(projects.c.name > after).order_by(projects.c.name) \
            .limit(limit + 1)
        if not caller.instance_wide:
            query = query.where(projects.c.name == caller.project)
        with self.db.read(autocommit=True) as conn:
            rows = conn.execute(query).all()
        entries = [_project(row) for row in rows[:limit]]
        more = len(rows) > limit
        return ProjectPage(entries, encode_page_token(entries[-1].name)
                           if more else "")

    # Keys

    def create_key(self, caller: Principal, project: str, role: Role, description: str = "",
                   instance_wide: bool = False) -> tuple[ApiKey, str]:
        """The new key's record and the key itself (shown once)."""
        description = check_description(description)
        if instance_wide:
            if project:
                raise InvalidArgument("project must be empty for an instance-wide key")
            _require_instance_admin(caller, "create instance-wide keys")
        else:
            if not project:
                raise InvalidArgument("project is required (or ask for an instance-wide key)")
            check_project_name(project, "project")
            if not _may_manage(caller, project):
                raise NotFound(f"project {project!r} not found")
        key_id, key = new_api_key()
        parsed = parse_api_key(key)
        assert parsed is not None
        record = ApiKey(key_id=key_id, project=project or None, role=role,
                        description=description, create_time=datetime.now(UTC))

        def work(conn: Connection) -> None:
            if record.project is not None and not _project_exists(conn, record.project):
                raise NotFound(f"project {record.project!r} not found")
            self._insert(conn, record, parsed.secret_sha256)

        self.db.write(work)
        return record, key

    @staticmethod
    def _insert(conn: Connection, record: ApiKey, secret_sha256: str) -> None:
        conn.execute(api_keys.insert().values(
            id=record.key_id, project=record.project, role=record.role.label,
            secret_sha256=secret_sha256, description=record.description,
            create_time=record.create_time))

    def list_keys(self, caller: Principal, project: str = "", include_revoked: bool = False,
                  size: int = 0, token: str = "") -> KeyPage:
        limit = page_size(size)
        after = decode_page_token(token) or ""
        query = select(api_keys).where(api_keys.c.id > after).order_by(api_keys.c.id) \
            .limit(limit + 1)
        if project:
            if not _may_manage(caller, project):
                raise NotFound(f"project {project!r} not found")
            query = query.where(api_keys.c.project == project)
        elif not caller.instance_wide:
            query = query.where(api_keys.c.project == caller.project)
        if not include_revoked:
            query = query.where(api_keys.c.revoke_time.is_(None))
        with self.db.read(autocommit=True) as conn:
            rows = conn.execute(query).all()
        entries = [_key(row) for row in rows[:limit]]
        more = len(rows) > limit
        return KeyPage(entries, encode_page_token(entries[-1].key_id) if more else "")

    def revoke_key(self, caller: Principal, key_id: str) -> ApiKey:
        if not key_id:
            raise InvalidArgument("key_id is required")

        def work(conn: Connection) -> ApiKey:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            if row is None or not _may_manage(caller, row.project):
                raise NotFound(f"API key {key_id[:32]!r} not found")
            if row.revoke_time is None:
                now = datetime.now(UTC)
                conn.execute(update(api_keys).where(api_keys.c.id == key_id)
                             .values(revoke_time=now))
                return replace(_key(row), revoke_time=now)
            return _key(row)

        return self.db.write(work)

    def resolve(self, key: str) -> Principal | None:
        """The Principal of a presented key, or None when it is malformed, unknown or revoked."""
        parsed = parse_api_key(key)
        if parsed is None:
            return None
        with self.db.read(autocommit=True) as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == parsed.key_id)).first()
        if row is None or row.revoke_time is not None \
                or not secrets.compare_digest(row.secret_sha256, parsed.secret_sha256):
            return None
        return Principal(key_id=row.id, role=Role.parse(row.role), project=row.project,
                         instance_wide=row.project is None)

    def ensure_key(self, key: str, role: Role = Role.ADMIN, description: str = "") -> bool:
        """Registers `key` as an instance-wide key unless its id is already known (also when
        revoked: a revoked bootstrap key is never brought back). True if it was added."""
        parsed = parse_api_key(key)
        if parsed is None:
            raise InvalidArgument("the bootstrap admin key is not a corral API key "
                                  "(corral_<16 hex>_<43 characters>)")
        record = ApiKey(key_id=parsed.key_id, project=None, role=role,
                        description=description, create_time=datetime.now(UTC))

        def work(conn: Connection) -> bool:
            if conn.execute(select(api_keys.c.id).where(api_keys.c.id == parsed.key_id)) \
                    .first() is not None:
                return False
            self._insert(conn, record, parsed.secret_sha256)
            return True

        return self.db.write(work)

    def has_keys(self) -> bool:
        with self.db.read(autocommit=True) as conn:
            return conn.execute(select(api_keys.c.id).limit(1)).first() is not None
