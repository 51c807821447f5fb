"""Datasets: create (idempotent with request_id), look up, list, delete with their items."""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from corral.errors import AlreadyExists, InvalidArgument, NotFound
from services.blobstore.base import BlobStore
from services.catalog import blobs
from services.catalog.items import unreferenced_blobs
from services.catalog.leases import hand_over_dataset
from services.catalog.paging import PageBudget
from services.catalog.records import (
    Dataset,
    Deletion,
    EventType,
    ItemType,
    Page,
    PreprocessingMode,
)
from services.catalog.repository import Repository, Store
from services.catalog.scope import EVERYWHERE, Scope
from services.catalog.validation import (
    check_dataset_name,
    check_description,
    check_request_id,
    decode_page_token,
    encode_page_token,
    page_size,
    require_id,
)


def create_dataset(store: Store, name: str, description: str = "",
                   request_id: str = "", scope: Scope = EVERYWHERE) -> Dataset:
    """In the caller's project (names and request ids are unique per project)."""
    name = check_dataset_name(name)
    description = check_description(description)
    request = check_request_id(request_id)
    project = scope.home

    def work(repo: Repository) -> Dataset:
        if not repo.project_exists(project):
            raise NotFound(f"project {project!r} not found")
        if request is not None:
            earlier = repo.get_dataset_by_request(project, request)
            if earlier is not None:
                return earlier
        if repo.get_dataset_by_name(project, name) is not None:
            raise AlreadyExists(f"dataset {name!r} already exists")
        dataset = Dataset(id=uuid.uuid4().hex, name=name, description=description,
                          project=project, create_time=datetime.now(UTC))
        repo.insert_dataset(dataset, request)
        return dataset

    return store.write(work)


def _with_count(repo: Repository, dataset: Dataset) -> Dataset:
    return replace(dataset, item_count=repo.item_counts([dataset.id]).get(dataset.id, 0))


def get_dataset(store: Store, dataset_id: str = "", name: str = "",
                scope: Scope = EVERYWHERE) -> Dataset:
    """By id, or by name in the caller's project ("default" for instance-wide callers naming
    no project: names are only unique per project)."""
    if bool(dataset_id) == bool(name):
        raise InvalidArgument("set exactly one of dataset_id and name")
    with store.read() as repo:
        if dataset_id:
            dataset = repo.get_dataset(require_id(dataset_id, "dataset_id"))
            if dataset is None or not scope.sees(dataset.project):
                raise NotFound(f"dataset {dataset_id} not found")
        else:  # stored in NFC (check_dataset_name): any spelling of the name finds it
            dataset = repo.get_dataset_by_name(scope.home, unicodedata.normalize("NFC", name))
            if dataset is None:
                raise NotFound(f"dataset {name!r} not found")
        return _with_count(repo, dataset)


def list_datasets(store: Store, requested_page_size: int = 0, page_token: str = "",
                  scope: Scope = EVERYWHERE, budget: PageBudget[Dataset] | None = None
                  ) -> Page[Dataset]:
    """The datasets of the caller's project; of every project, ordered by project, for
    instance-wide callers naming none. `budget` may end a page early (paging.py)."""
    limit = page_size(requested_page_size)
    after = _decode_after(page_token)
    with store.read() as repo:
        found = repo.list_datasets(scope.project, after, limit + 1)
        counts = repo.item_counts([d.id for d in found[:limit]])
    page = [replace(d, item_count=counts.get(d.id, 0)) for d in found[:limit]]
    kept = budget.fitting(page) if budget is not None else len(page)
    token = encode_page_token(f"{page[kept - 1].project}/{page[kept - 1].name}") \
        if len(found) > kept else ""
    return Page(page[:kept], token)


def _decode_after(page_token: str) -> tuple[str, str] | None:
    """(project, name) of the previous page's last dataset: project names hold no '/'."""
    text = decode_page_token(page_token)
    if text is None:
        return None
    project, separator, name = text.partition("/")
    if not separator:
        raise InvalidArgument("page_token is not a token from a previous response")
    return project, name


def set_dataset_preprocessing(store: Store, dataset_id: str,
                              mode: PreprocessingMode | None,
                              scope: Scope = EVERYWHERE) -> Dataset:
    """Switches who preprocesses the dataset's items. The new mode holds for every event not
    yet delivered: the leased groups gaining the dataset get the events the groups losing it
    have not acknowledged (leases.hand_over_dataset), in the same transaction."""
    require_id(dataset_id, "dataset_id")
    if mode is None:
        raise InvalidArgument("mode is required: PREPROCESSING_MODE_GLOBAL, "
                              "PREPROCESSING_MODE_PRIVATE or PREPROCESSING_MODE_OFF")

    def work(repo: Repository) -> Dataset:
        dataset = repo.get_dataset(dataset_id, lock=True)
        if dataset is None or not scope.sees(dataset.project):
            raise NotFound(f"dataset {dataset_id} not found")
        if dataset.preprocessing != mode:
            repo.set_dataset_preprocessing(dataset_id, mode)
            hand_over_dataset(repo, dataset, mode)
        return _with_count(repo, replace(dataset, preprocessing=mode))

    return store.write(work)


def delete_dataset(store: Store, blob_store: BlobStore | None, dataset_id: str,
                   scope: Scope = EVERYWHERE) -> Deletion:
    """Deletes the dataset and its items, writes a DELETED event per file item, then deletes
    the binaries nothing references any more."""
    require_id(dataset_id, "dataset_id")

    def work(repo: Repository) -> Deletion:
        dataset = repo.get_dataset(dataset_id)
        if dataset is None or not scope.sees(dataset.project):
            raise NotFound(f"dataset {dataset_id} not found")
        doomed = repo.dataset_items(dataset_id)
        files = [item for item in doomed if item.type != ItemType.DIR]
        repo.append_events(((EventType.DELETED, item) for item in files), datetime.now(UTC))
        repo.delete_items([item.id for item in doomed])
        repo.delete_dataset(dataset_id)
        return Deletion(len(files), unreferenced_blobs(repo, files))

    deletion = store.write(work)
    blobs.release(blob_store, deletion.released_blob_keys)
    return deletion

