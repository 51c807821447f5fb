"""Which project a catalog call may see, and what its consumer group names stand for.

A call acts in one project (its key's, or the one an instance-wide key names) or, for
instance-wide callers naming none (instance admins, the corral services), in every project.
Datasets, items, triggers and events of other projects answer exactly like missing ones
(NOT_FOUND with the same message), so a key never learns whether they exist.

A dataset's project never changes and an item's dataset never changes, so checking the project
of the dataset a call touches, in the call's own transaction, is race-free. The domain
functions take the Scope explicitly (the group-commit writer runs their work on its own
thread, where the caller's context variable is not set).

Consumer groups: a project-bound key's group "g" is stored as "<project>/g", so it can neither
collide with nor reach another project's groups (or the services' shared "preprocess" pool).
Instance-wide callers use names as given. A trigger of project P owns "P/trigger:<name>": its
key names it "trigger:<name>", an instance-wide caller "P/trigger:<name>"."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from corral.errors import NotFound
from services.catalog.records import Item
from services.catalog.repository import Repository

if TYPE_CHECKING:  # auth.py imports grpc; domain code only needs the type
    from services.common.auth import Principal

DEFAULT_PROJECT = "default"
GROUP_SEPARATOR = "/"  # never part of a project name (access.check_project_name)


class ProjectCache:
    """Dataset id -> project. Entries never go stale (ids are random 128-bit values, never
    reused, and a dataset keeps its project); a deleted dataset's entry is harmless because
    the domain call then finds no dataset. Bounded: cleared when full."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max = max_entries
        self._entries: dict[str, str] = {}
        self._lock = threading.Lock()

    def project_of(self, repo: Repository, dataset_id: str) -> str | None:
        project = self._entries.get(dataset_id)
        if project is None:
            project = repo.dataset_project(dataset_id)
            if project is not None:
                with self._lock:
                    if len(self._entries) >= self._max:
                        self._entries.clear()
                    self._entries[dataset_id] = project
        return project


@dataclass(frozen=True)
class Scope:
    """`project` None: every project. `bound`: a project-bound key (its group names are
    stored under its project)."""

    project: str | None
    bound: bool = False
    cache: ProjectCache = field(default_factory=ProjectCache, compare=False, repr=False)

    @property
    def home(self) -> str:
        """Where new datasets and triggers go and where names are looked up (names are unique
        per project): an instance-wide caller naming no project means "default"."""
        return self.project or DEFAULT_PROJECT

    def sees(self, project: str) -> bool:
        return self.project is None or self.project == project

    def sees_dataset(self, repo: Repository, dataset_id: str) -> bool:
        """False for a dataset of another project, and (for a scoped caller) a missing one."""
        if self.project is None:
            return True
        return self.cache.project_of(repo, dataset_id) == self.project

    def require_dataset(self, repo: Repository, dataset_id: str, prefix: str = "") -> None:
        """NOT_FOUND, worded like a missing dataset, unless the caller sees the dataset."""
        if not self.sees_dataset(repo, dataset_id):
            raise NotFound(f"{prefix}dataset {dataset_id} not found")

    def visible(self, repo: Repository, item: Item | None) -> Item | None:
        """`item` unless it is missing or in another project's dataset."""
        if item is None or not self.sees_dataset(repo, item.dataset_id):
            return None
        return item

    # Consumer groups.

    def group(self, name: str) -> str:
        """The stored name of the group the caller calls `name` (validate `name` first)."""
        return f"{self.project}{GROUP_SEPARATOR}{name}" if self.bound else name

    def shown_group(self, stored: str) -> str:
        """The name the caller uses for the stored group `stored`."""
        prefix = f"{self.project}{GROUP_SEPARATOR}"
        return stored.removeprefix(prefix) if self.bound else stored


EVERYWHERE = Scope(None)


def of(principal: Principal, cache: ProjectCache) -> Scope:
    return Scope(principal.project, bound=not principal.instance_wide, cache=cache)


def project_group(project: str, name: str) -> str:
    """The stored name of a project's group `name` (as a project-bound key names it)."""
    return f"{project}{GROUP_SEPARATOR}{name}"
