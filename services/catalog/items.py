"""Items and folders: create (with duplicate policies and request ids), get, list, update,
delete, and platform-written system metadata. Every change to a file item writes its event in
the same transaction (transactional outbox)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from corral.errors import (
    AlreadyExists,
    CorralError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from corral.paths import ancestors, check_name, join, normalize_dir, split_filename
from services.blobstore.base import BlobStore
from services.catalog import blobs, metadata
from services.catalog.records import (
    CloneRequest,
    CreateItemResult,
    Deletion,
    DuplicatePolicy,
    EventType,
    Item,
    ItemChanges,
    ItemType,
    NewItem,
    Outcome,
)
from services.catalog.repository import Repository, Store
from services.catalog.scope import EVERYWHERE, Scope
from services.catalog.validation import (
    check_blob_key,
    check_description,
    check_filename_length,
    check_json_object,
    check_link_mimetype,
    check_request_id,
    check_sha256,
    require_id,
)
from services.fetch.urls import check_url

UPDATABLE_PATHS = ("name", "dir", "description", metadata.REPLACE, metadata.MERGE)


def _folder(dataset_id: str, filename: str, now: datetime) -> Item:
    dir_path, name = split_filename(filename)
    return Item(id=uuid.uuid4().hex, dataset_id=dataset_id, dir=dir_path, name=name,
                filename=filename, type=ItemType.DIR, size=0, sha256="", blob_key="",
                description="", metadata_system={}, metadata_user={}, create_time=now,
                update_time=now)


def _ensure_folders(repo: Repository, dataset_id: str, dir_path: str, target: str,
                    now: datetime) -> ItemType | None:
    """Creates the missing folders of `dir_path`; returns the type of the item already at
    `target`, if any. A file where a folder is needed is refused."""
    folders = ancestors(dir_path)
    existing = repo.item_types_at(dataset_id, [*folders, target])
    for folder in folders:
        if existing.get(folder, ItemType.DIR) != ItemType.DIR:
            raise FailedPrecondition(f"{folder} is a file in dataset {dataset_id}, not a folder")
    repo.insert_folders(_folder(dataset_id, f, now) for f in folders if f not in existing)
    return existing.get(target)


def unreferenced_blobs(repo: Repository, removed: Sequence[Item]) -> list[str]:
    """Blob and thumbnail keys of `removed` items that no remaining item references (clones
    share both)."""
    keys = sorted({item.blob_key for item in removed if item.blob_key}
                  | {key for item in removed if (key := blobs.thumbnail_key(item.metadata_system))})
    still_used = repo.referenced_blob_keys(keys)
    return [key for key in keys if key not in still_used]


@dataclass(frozen=True)
class _Target:
    """Where a new item goes, validated."""
    dataset_id: str
    dir: str
    name: str
    filename: str
    duplicate_policy: DuplicatePolicy
    request_id: str | None


def _target(dataset_id: str, dir_path: str, name: str, duplicate_policy: DuplicatePolicy,
            request_id: str, field_prefix: str = "") -> _Target:
    dataset_id = require_id(dataset_id, f"{field_prefix}dataset_id")
    dir_path = normalize_dir(dir_path or "/", f"{field_prefix}dir")
    name = check_name(name, f"{field_prefix}name")
    filename = check_filename_length(join(dir_path, name),
                                     f"{field_prefix}dir + {field_prefix}name")
    return _Target(dataset_id, dir_path, name, filename, duplicate_policy,
                   check_request_id(request_id))


def _place(repo: Repository, target: _Target, content: Item, scope: Scope) -> CreateItemResult:
    """Puts `content` (an item whose id, place and times are filled in here) at `target`,
    applying the duplicate policy and request id, and writes its CREATED event."""
    scope.require_dataset(repo, target.dataset_id)  # before a replay could answer
    if target.request_id is not None:
        earlier = repo.get_item_by_request(target.dataset_id, target.request_id)
        if earlier is not None:
            return CreateItemResult(*earlier, replayed=True)
    if not repo.dataset_exists(target.dataset_id, lock=True):
        raise NotFound(f"dataset {target.dataset_id} not found")
    now = datetime.now(UTC)
    existing_type = _ensure_folders(repo, target.dataset_id, target.dir, target.filename, now)
    placed = replace(content, dataset_id=target.dataset_id, dir=target.dir, name=target.name,
                     filename=target.filename, update_time=now)
    if existing_type is None:
        item = replace(placed, id=uuid.uuid4().hex, create_time=now)
        repo.insert_item(item, target.request_id, Outcome.CREATED)
        repo.append_events([(EventType.CREATED, item)], now)
        return CreateItemResult(item, Outcome.CREATED)
    if existing_type == ItemType.DIR:
        raise AlreadyExists(
            f"a folder already exists at {target.filename} in dataset {target.dataset_id}")
    if target.duplicate_policy == DuplicatePolicy.FAIL:
        raise AlreadyExists(
            f"an item already exists at {target.filename} in dataset {target.dataset_id}")
    overwrite = target.duplicate_policy == DuplicatePolicy.OVERWRITE
    old = repo.get_item_by_filename(target.dataset_id, target.filename, lock=overwrite)
    assert old is not None
    if not overwrite:
        return CreateItemResult(old, Outcome.SKIPPED)
    item = replace(placed, id=old.id, create_time=old.create_time)
    repo.replace_item(item, target.request_id, Outcome.OVERWRITTEN)
    repo.append_events([(EventType.CREATED, item)], now)
    kept = {item.blob_key, blobs.thumbnail_key(item.metadata_system)}
    released = [key for key in unreferenced_blobs(repo, [old]) if key not in kept]
    return CreateItemResult(item, Outcome.OVERWRITTEN, released)


def _content(new: NewItem) -> Item:
    """The validated content of a new file or link item (its place is filled in later)."""
    check_description(new.description)
    check_json_object(new.user_metadata, "user_metadata")
    epoch = datetime.fromtimestamp(0, UTC)
    base = Item(id="", dataset_id="", dir="", name="", filename="", type=new.type, size=0,
                sha256="", blob_key="", description=new.description, metadata_system={},
                metadata_user=new.user_metadata, create_time=epoch, update_time=epoch)
    if new.type == ItemType.LINK:
        if new.size or new.sha256 or new.blob_key:
            raise InvalidArgument("size, sha256 and blob_key must be empty for a link item")
        return replace(base, link_url=check_url(new.link_url, "link.url"),
                       link_mimetype=check_link_mimetype(new.link_mimetype, "link.mimetype"))
    if new.type != ItemType.FILE:
        raise InvalidArgument(f"type: {new.type} items cannot be created; folders are "
                              "created from the paths of the items below them")
    if new.link_url or new.link_mimetype:
        raise InvalidArgument("link is only allowed for link items (type ITEM_TYPE_LINK)")
    if new.size < 0:
        raise InvalidArgument(f"size must not be negative, got {new.size}")
    return replace(base, size=new.size, sha256=check_sha256(new.sha256),
                   blob_key=check_blob_key(new.blob_key))


def create_item(new: NewItem, scope: Scope = EVERYWHERE
                ) -> Callable[[Repository], CreateItemResult]:
    """Validates `new` and returns the write that creates it (run by the group-commit writer);
    the caller deletes the result's released blobs after commit."""
    target = _target(new.dataset_id, new.dir, new.name, new.duplicate_policy, new.request_id)
    content = _content(new)
    return lambda repo: _place(repo, target, content, scope)


@dataclass(frozen=True)
class PreparedCreate:
    """A validated CreateItem: where the item goes and its content (see create_items)."""
    target: _Target
    content: Item


def prepare_create(new: NewItem) -> PreparedCreate:
    """Validates `new` like create_item, outside any transaction."""
    return PreparedCreate(
        _target(new.dataset_id, new.dir, new.name, new.duplicate_policy, new.request_id),
        _content(new))


def create_items(entries: Sequence[PreparedCreate], scope: Scope = EVERYWHERE
                 ) -> Callable[[Repository], list[CreateItemResult | CorralError]]:
    """The write that creates many items with the result each would get from create_item
    run one after the other, in order; one entry's error fails it alone.

    Set-based, because per entry a savepoint and five statements cost more than the rest of
    a small upload: per dataset, one statement finds request replays, one the types at every
    path involved, then the new items, their folders and their events are inserted with one
    executemany each. Entries that meet an existing item or another entry of the batch (same
    path or request id) take _place one by one afterwards, each in its own savepoint, which
    keeps their order's outcome. Entries whose path is another entry's folder make the whole
    dataset's entries go one by one (which entry wins depends on their order)."""

    def work(repo: Repository) -> list[CreateItemResult | CorralError]:
        results: list[CreateItemResult | CorralError | None] = [None] * len(entries)
        by_dataset: dict[str, list[int]] = {}
        for index, entry in enumerate(entries):
            by_dataset.setdefault(entry.target.dataset_id, []).append(index)
        for dataset_id, indexes in by_dataset.items():
            _create_in_dataset(repo, dataset_id, indexes, entries, scope, results)
        assert all(result is not None for result in results)
        return results  # type: ignore[return-value]

    return work


def _create_in_dataset(repo: Repository, dataset_id: str, indexes: list[int],
                       entries: Sequence[PreparedCreate], scope: Scope,
                       results: list[CreateItemResult | CorralError | None]) -> None:
    try:
        scope.require_dataset(repo, dataset_id)  # before a replay could answer
    except NotFound as exc:
        for index in indexes:
            results[index] = exc
        return
    earlier = repo.items_by_requests(dataset_id, sorted(
        {rid for index in indexes if (rid := entries[index].target.request_id) is not None}))
    pending: list[int] = []
    for index in indexes:
        replay = earlier.get(entries[index].target.request_id or "")
        if replay is not None:
            results[index] = CreateItemResult(*replay, replayed=True)
        else:
            pending.append(index)
    if not pending:
        return
    if not repo.dataset_exists(dataset_id, lock=True):
        missing = NotFound(f"dataset {dataset_id} not found")
        for index in pending:
            results[index] = missing
        return
    now = datetime.now(UTC)
    folders_of = {d: ancestors(d) for d in {entries[index].target.dir for index in pending}}
    all_folders = {folder for folders in folders_of.values() for folder in folders}
    filenames = [entries[index].target.filename for index in pending]
    if all_folders.intersection(filenames):
        _create_one_by_one(repo, pending, entries, scope, results)
        return
    existing = repo.item_types_at(dataset_id, [*sorted(all_folders), *dict.fromkeys(filenames)])
    fast: list[int] = []
    slow: list[int] = []
    seen_files: set[str] = set()
    seen_requests: set[str] = set()
    needed: set[str] = set()
    for index in pending:
        target = entries[index].target
        if (target.filename in existing or target.filename in seen_files
                or target.request_id in seen_requests):
            slow.append(index)
        else:
            bad = next((folder for folder in folders_of[target.dir]
                        if existing.get(folder, ItemType.DIR) != ItemType.DIR), None)
            if bad is not None:
                results[index] = FailedPrecondition(
                    f"{bad} is a file in dataset {dataset_id}, not a folder")
                continue
            fast.append(index)
            needed.update(folders_of[target.dir])
        seen_files.add(target.filename)
        if target.request_id is not None:
            seen_requests.add(target.request_id)
    if fast:
        repo.insert_folders(_folder(dataset_id, f, now) for f in sorted(needed)
                            if f not in existing)
        created = [_placed(entries[index], now) for index in fast]
        repo.insert_items(created, [entries[index].target.request_id for index in fast],
                          Outcome.CREATED)
        repo.append_events([(EventType.CREATED, item) for item in created], now)
        for index, item in zip(fast, created, strict=True):
            results[index] = CreateItemResult(item, Outcome.CREATED)
    _create_one_by_one(repo, slow, entries, scope, results)


def _placed(entry: PreparedCreate, now: datetime) -> Item:
    """The new item `entry` creates (what _place builds; dataclasses.replace costs about
    three times as much per item)."""
    content, target = entry.content, entry.target
    return Item(id=uuid.uuid4().hex, dataset_id=target.dataset_id, dir=target.dir,
                name=target.name, filename=target.filename, type=content.type,
                size=content.size, sha256=content.sha256, blob_key=content.blob_key,
                description=content.description, metadata_system=content.metadata_system,
                metadata_user=content.metadata_user, create_time=now, update_time=now,
                link_url=content.link_url, link_mimetype=content.link_mimetype)


def _create_one_by_one(repo: Repository, indexes: list[int], entries: Sequence[PreparedCreate],
                       scope: Scope, results: list[CreateItemResult | CorralError | None],
                       ) -> None:
    """_place per entry, each in its own savepoint. Errors that can resolve on a rerun (a
    lost race) propagate, and the whole write reruns."""
    for index in indexes:
        entry = entries[index]
        try:
            with repo.savepoint():
                results[index] = _place(repo, entry.target, entry.content, scope)
        except CorralError as exc:
            results[index] = exc


def clone_item(request: CloneRequest, scope: Scope = EVERYWHERE
               ) -> Callable[[Repository], CreateItemResult]:
    """The write that clones a file or link item: the clone shares the source's blob and
    thumbnail and copies its system metadata (so preprocessing has nothing to redo); it gets
    its own user metadata, a copy of the source's unless given."""
    require_id(request.item_id, "item_id")
    if request.user_metadata is not None:
        check_json_object(request.user_metadata, "user_metadata")
    request_id = check_request_id(request.request_id)

    def work(repo: Repository) -> CreateItemResult:
        source = scope.visible(repo, repo.get_item(request.item_id))
        if source is None:
            raise NotFound(f"item {request.item_id} not found")
        if source.type == ItemType.DIR:
            raise FailedPrecondition(
                f"{source.filename} is a folder: only files and links can be cloned")
        target = _target(request.dataset_id or source.dataset_id, request.dir,
                         request.name or source.name, request.duplicate_policy,
                         request_id or "")
        system = {**source.metadata_system,
                  "clonedFrom": {"itemId": source.id, "datasetId": source.dataset_id}}
        user = source.metadata_user if request.user_metadata is None else request.user_metadata
        return _place(repo, target, replace(source, metadata_system=system, metadata_user=user),
                      scope)

    return work


def get_item(store: Store, item_id: str = "", dataset_id: str = "", filename: str = "",
             request_id: str = "", scope: Scope = EVERYWHERE) -> Item:
    if item_id:
        if dataset_id or filename or request_id:
            raise InvalidArgument("set either item_id, or dataset_id and filename, not both")
        require_id(item_id, "item_id")
        with store.read(one_statement=True) as repo:
            item = scope.visible(repo, repo.get_item(item_id))
        if item is None:
            raise NotFound(f"item {item_id} not found")
        return item
    if request_id:
        return _get_item_by_request(store, dataset_id, request_id, filename, scope)
    if not dataset_id or not filename:
        raise InvalidArgument("set item_id, or both dataset_id and filename")
    require_id(dataset_id, "dataset_id")
    full = join(*split_filename(filename))
    with store.read() as repo:
        scope.require_dataset(repo, dataset_id)
        item = repo.get_item_by_filename(dataset_id, full)
        if item is None:
            if not repo.dataset_exists(dataset_id):
                raise NotFound(f"dataset {dataset_id} not found")
            raise NotFound(f"item {full} not found in dataset {dataset_id}")
    return item


def _get_item_by_request(store: Store, dataset_id: str, request_id: str, filename: str,
                         scope: Scope) -> Item:
    if filename:
        raise InvalidArgument("set either filename or request_id, not both")
    require_id(dataset_id, "dataset_id")
    request_id = check_request_id(request_id) or ""
    with store.read() as repo:
        # Another project's dataset answers like a missing one: no such request.
        found = repo.get_item_by_request(dataset_id, request_id) \
            if scope.sees_dataset(repo, dataset_id) else None
    if found is None:
        raise NotFound(f"no item was created with request_id {request_id!r} "
                       f"in dataset {dataset_id}")
    return found[0]


def _check_changes(changes: ItemChanges) -> None:
    require_id(changes.item_id, "item.id")
    if not changes.paths:
        raise InvalidArgument(f"update_mask must name at least one of {', '.join(UPDATABLE_PATHS)}")
    metadata.refuse_system_paths(changes.paths)
    for path in changes.paths:
        if path not in UPDATABLE_PATHS:
            raise InvalidArgument(
                f"update_mask path {path!r} is not one of {', '.join(UPDATABLE_PATHS)}")
    if "description" in changes.paths:
        check_description(changes.description, "item.description")
    if metadata.metadata_mode(changes.paths) is not None:
        check_json_object(changes.metadata_user, "item.metadata.user")


def update_item(store: Store, changes: ItemChanges, scope: Scope = EVERYWHERE) -> Item:
    """Applies the fields named in the mask; a new name or dir moves the item (folders cannot
    move yet). Writes an UPDATED event with the new state."""
    _check_changes(changes)
    paths = changes.paths
    new_name = check_name(changes.name, "item.name") if "name" in paths else None
    new_dir = normalize_dir(changes.dir or "/", "item.dir") if "dir" in paths else None
    metadata_mode = metadata.metadata_mode(paths)

    def work(repo: Repository) -> Item:
        item = scope.visible(repo, repo.get_item(changes.item_id, lock=True))
        if item is None:
            raise NotFound(f"item {changes.item_id} not found")
        now = datetime.now(UTC)
        dir_path, name = new_dir or item.dir, new_name or item.name
        filename = join(dir_path, name)
        if filename != item.filename:
            if item.type == ItemType.DIR:
                raise FailedPrecondition(
                    f"{item.filename} is a folder: moving folders is not supported yet")
            check_filename_length(filename, "item.dir + item.name")
            if _ensure_folders(repo, item.dataset_id, dir_path, filename, now) is not None:
                raise AlreadyExists(
                    f"an item already exists at {filename} in dataset {item.dataset_id}")
        updated = replace(
            item, dir=dir_path, name=name, filename=filename, update_time=now,
            description=changes.description if "description" in paths else item.description,
            metadata_user=metadata.updated_user_metadata(
                item.metadata_user, changes.metadata_user, metadata_mode, "item.metadata.user")
            if metadata_mode else item.metadata_user)
        repo.replace_item(updated, None, None)
        repo.append_events([(EventType.UPDATED, updated)], now)
        return updated

    return store.write(work)


def delete_item(store: Store, blob_store: BlobStore | None, item_id: str,
                scope: Scope = EVERYWHERE) -> Deletion:
    """Deletes an item, or a folder with everything below it; DELETED events for file items;
    then the binaries nothing references any more."""
    require_id(item_id, "item_id")

    def work(repo: Repository) -> Deletion:
        item = scope.visible(repo, repo.get_item(item_id, lock=True))
        if item is None:
            raise NotFound(f"item {item_id} not found")
        doomed = repo.subtree(item.dataset_id, item.filename) if item.type == ItemType.DIR \
            else [item]
        files = [entry for entry in doomed if entry.type != ItemType.DIR]
        repo.append_events(((EventType.DELETED, entry) for entry in files), datetime.now(UTC))
        repo.delete_items([entry.id for entry in doomed])
        return Deletion(len(files), unreferenced_blobs(repo, doomed))

    deletion = store.write(work)
    blobs.release(blob_store, deletion.released_blob_keys)
    return deletion


def merge_system(current: dict[str, Any], system: dict[str, Any]) -> dict[str, Any]:
    """metadata.system after an update: top-level keys replace, executionLogs merges one
    level deeper."""
    merged = {**current, **system}
    if isinstance(system.get("executionLogs"), dict) and isinstance(
            current.get("executionLogs"), dict):
        # One log per writer (preprocess, each trigger): a writer's read-modify-write of
        # executionLogs must not drop a log another one wrote meanwhile.
        merged["executionLogs"] = {**current["executionLogs"], **system["executionLogs"]}
    return merged


def update_system_metadata(item_id: str, system: dict[str, Any], expected_blob_key: str = "",
                           scope: Scope = EVERYWHERE
                           ) -> Callable[[Repository], tuple[Item, list[str]]]:
    """The write that merges top-level keys into metadata.system; it returns the item and the
    replaced thumbnail's blob, which the caller deletes after commit. Writes no event on
    purpose: preprocessing subscribes to events and writes system metadata, so an event here
    would feed back into it forever."""
    require_id(item_id, "item_id")
    check_json_object(system, "system")

    def work(repo: Repository) -> tuple[Item, list[str]]:
        item = scope.visible(repo, repo.get_item(item_id, lock=True))
        if item is None:
            raise NotFound(f"item {item_id} not found")
        if expected_blob_key and item.content_key != expected_blob_key:
            raise FailedPrecondition(
                f"item {item_id} no longer has blob {expected_blob_key}: its content changed")
        updated = replace(item, metadata_system=merge_system(item.metadata_system, system),
                          update_time=datetime.now(UTC))
        repo.set_system_metadata(item_id, updated.metadata_system, updated.update_time)
        old_thumbnail = blobs.thumbnail_key(item.metadata_system)
        if not old_thumbnail or old_thumbnail == blobs.thumbnail_key(updated.metadata_system):
            return updated, []
        # A clone may still show the old thumbnail.
        return updated, [] if repo.referenced_blob_keys([old_thumbnail]) else [old_thumbnail]

    return work
