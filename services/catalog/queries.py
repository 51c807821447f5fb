"""Listing items with filters, sort keys, keyset paging and counts; and updating the user
metadata of every item that matches a filter.

Keyset paging: a page token holds the sort key values (and the id tiebreaker) of the page's
last item, so the next page starts strictly after it. Items added meanwhile show up if they
sort after that point and never shift or repeat the others, unlike offsets. The token also
holds a digest of the query, so it is refused with any other query."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from corral.errors import InvalidArgument, NotFound
from corral.paths import normalize_dir
from services.catalog.filters import Checked, Filter, check_filter, check_order
from services.catalog.metadata import MERGE, REPLACE, metadata_mode, refuse_system_paths
from services.catalog.metadata import updated_user_metadata as new_user_metadata
from services.catalog.records import EventType, Item, ItemQuery, ItemType, Page
from services.catalog.repository import Repository, Store
from services.catalog.scope import EVERYWHERE, Scope
from services.catalog.validation import BAD_TOKEN, check_json_object, page_size, require_id

# Items read, changed and evented per round of a bulk update (memory stays bounded).
UPDATE_BATCH = 1000


def list_items(store: Store, dataset_id: str, dir_path: str = "/", recursive: bool = False,
               requested_page_size: int = 0, page_token: str = "",
               item_filter: Filter | None = None, order: list[tuple[str, bool]] | None = None,
               include_total_size: bool = False, scope: Scope = EVERYWHERE) -> Page[Item]:
    require_id(dataset_id, "dataset_id")
    query = ItemQuery(dataset_id=dataset_id, dir=normalize_dir(dir_path or "/"),
                      recursive=recursive, filter=check_filter(item_filter),
                      order=check_order(order or []), limit=page_size(requested_page_size))
    digest = _digest(query)
    query = replace(query, after=_decode_token(page_token, digest))
    with store.read() as repo:
        scope.require_dataset(repo, dataset_id)
        _check_folder(repo, dataset_id, query.dir)
        found, last_key = repo.query_items(query)
        total = repo.count_items(query) if include_total_size else None
    token = _encode_token(digest, last_key) if last_key is not None else ""
    return Page(found, token, total)


def _check_folder(repo: Repository, dataset_id: str, dir_path: str) -> None:
    if not repo.dataset_exists(dataset_id):
        raise NotFound(f"dataset {dataset_id} not found")
    if dir_path != "/":
        folder = repo.get_item_by_filename(dataset_id, dir_path)
        if folder is None:
            raise NotFound(f"folder {dir_path} not found in dataset {dataset_id}")
        if folder.type != ItemType.DIR:
            raise InvalidArgument(f"dir: {dir_path} is a file, not a folder")


def _digest(query: ItemQuery) -> str:
    """Identifies the query a token belongs to (the validated filter and order are frozen
    dataclasses, so their repr is canonical)."""
    spec = repr((query.dataset_id, query.dir, query.recursive, query.filter, query.order))
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def _encode_token(digest: str, key: tuple[Any, ...]) -> str:
    text = json.dumps({"q": digest, "k": list(key)}, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode()


def _decode_token(token: str, digest: str) -> tuple[Any, ...] | None:
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidArgument(BAD_TOKEN) from None
    if not isinstance(data, dict) or data.get("q") != digest or not isinstance(
            data.get("k"), list) or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in data["k"]):
        raise InvalidArgument(BAD_TOKEN)
    return tuple(data["k"])


def update_matching_items(store: Store, dataset_id: str, item_filter: Filter | None,
                          user_metadata: dict[str, Any], mask_paths: list[str],
                          scope: Scope = EVERYWHERE) -> int:
    """Replaces or merge-patches metadata.user of every item of the dataset that matches, in
    one transaction, with one UPDATED event per item (rows and events written in batches).
    Returns how many items were updated."""
    require_id(dataset_id, "dataset_id")
    checked = check_filter(item_filter)
    if checked is None:
        raise InvalidArgument("filter is required (the items to update)")
    refuse_system_paths(mask_paths)
    mode = metadata_mode(mask_paths)
    others = [p for p in mask_paths if p not in (REPLACE, MERGE)]
    if mode is None or others:
        raise InvalidArgument(f"update_mask must be exactly one of {REPLACE!r} (replace) and "
                              f"{MERGE!r} (merge patch), got {mask_paths}")
    check_json_object(user_metadata, "user_metadata")

    def work(repo: Repository) -> int:
        scope.require_dataset(repo, dataset_id)
        if not repo.dataset_exists(dataset_id, lock=True):
            raise NotFound(f"dataset {dataset_id} not found")
        return _update_batches(repo, dataset_id, checked, user_metadata, mode)

    return store.write(work)


def _update_batches(repo: Repository, dataset_id: str, checked: Checked,
                    user_metadata: dict[str, Any], mode: str) -> int:
    """Walks the matches in id order: an item the update makes (not) match is still visited
    exactly once, since the next batch starts after the last id seen."""
    now, updated, after = datetime.now(UTC), 0, ""
    while True:
        batch = repo.matching_items(dataset_id, checked, after, UPDATE_BATCH)
        changed = [replace(item, update_time=now, metadata_user=new_user_metadata(
            item.metadata_user, user_metadata, mode, f"metadata.user of {item.filename}"))
            for item in batch]
        repo.set_user_metadata(changed)
        repo.append_events([(EventType.UPDATED, item) for item in changed], now)
        updated += len(changed)
        if len(batch) < UPDATE_BATCH:
            return updated
        after = batch[-1].id
