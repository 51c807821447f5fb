"""Registering durable blobs in the catalog: the dataset check, the duplicate-policy check up
front, and CreateItem retried idempotently. Shared by one-call and resumable uploads.

A blob is deleted when the catalog definitely refuses it; when the catalog's answer stays
unknown it is kept (a possible orphan), because a dangling item is worse than an orphan blob.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import resources_pb2
from corral.errors import (
    AlreadyExists,
    CorralError,
    DataLoss,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from services.blobstore.base import BlobStore
from services.common.caller import caller_or_none
from services.upload.batching import CreateBatcher
from services.upload.catalog_port import Catalog
from services.upload.links import LinkTarget
from services.upload.sink import run_blocking
from services.upload.spec import DuplicatePolicy, ValidSpec

log = logging.getLogger("corral.upload")

ItemType = resources_pb2.ItemType
# Failures after which the catalog may or may not have committed the item.
_AMBIGUOUS_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL"}
# Pauses between CreateItem retries while the catalog's answer is unknown.
REGISTER_RETRY_DELAYS = (0.2, 0.5, 1.0)


# Blob keys: a random prefix per process and a counter, as unique as uuid4 per key across
# processes and restarts, without a getrandom call per file.
_KEY_PREFIX = uuid.uuid4().hex[:20]
_key_numbers = itertools.count()


def blob_key_for(dataset_id: str) -> str:
    return f"items/{dataset_id}/{_KEY_PREFIX}{next(_key_numbers):012x}"


def item_request_id(spec: ValidSpec, key: str) -> str:
    """CreateItem's request_id: the caller's, else one derived from the blob key (unique per
    upload), so a retry after a lost reply returns the first result."""
    return spec.request_id or f"upload:{key.rsplit('/', 1)[-1]}"


def check_content(spec: ValidSpec, size: int, sha256: str | None,
                  finish_sha256: str = "") -> None:
    """Refuses received content that differs from the declared size or sha256 (in the spec,
    or sent with finish_write). A None sha256 (not known yet) checks the size only."""
    if spec.declared_size is not None and size != spec.declared_size:
        raise InvalidArgument(f"received {size} bytes, but spec.size declared {spec.declared_size}")
    if sha256 is None:
        return
    for field, declared in (("spec.sha256", spec.declared_sha256), ("sha256", finish_sha256)):
        if declared and sha256 != declared:
            raise DataLoss(f"sha256 of the received bytes is {sha256}, but {field} declared "
                           f"{declared}")


class DatasetCache:
    """Datasets recently found in the catalog, so small uploads skip a lookup. Safe because the
    catalog checks the dataset again in CreateItem; this only makes unknown ones fail early.

    Entries are per caller project (None: callers that see every project): a lookup answered
    for project A must never let a key of project B skip its own lookup."""

    def __init__(self, ttl_seconds: float, max_entries: int = 4096) -> None:
        self._ttl, self._max = ttl_seconds, max_entries
        # (caller project, dataset id) -> (expiry, the dataset's own project)
        self._entries: dict[tuple[str | None, str], tuple[float, str]] = {}

    def get(self, scope: str | None, dataset_id: str) -> str | None:
        """The owning project of a dataset `scope` recently saw, else None."""
        entry = self._entries.get((scope, dataset_id))
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def add(self, scope: str | None, dataset_id: str, project: str) -> None:
        if self._ttl <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[(scope, dataset_id)] = (time.monotonic() + self._ttl, project)


def caller_project() -> str | None:
    """The project the current call acts in; None for callers that see every project (and
    for calls made without an authenticated caller, e.g. unit tests and background sweeps)."""
    principal = caller_or_none()
    return principal.project if principal is not None else None


async def visible_dataset(catalog: Catalog, dataset_id: str) -> resources_pb2.Dataset:
    """The dataset, or NotFound when the caller cannot see it."""
    dataset = await catalog.get_dataset(dataset_id)
    # The catalog already scopes the lookup to the caller's project (the call carries it);
    # checked here again so that nothing can land in another project's dataset even if that
    # ever changed.
    scope = caller_project()
    if scope is not None and dataset.project and dataset.project != scope:
        raise NotFound(f"dataset {dataset_id} not found")
    return dataset


class Registrar:
    def __init__(self, store: BlobStore, catalog: Catalog,
                 dataset_cache_seconds: float = 10.0) -> None:
        self.store = store
        self.catalog = catalog
        self._datasets = DatasetCache(dataset_cache_seconds)

    async def check_dataset(self, dataset_id: str) -> str:
        """The project owning the dataset, or NotFound when the caller cannot see it. Called
        before any byte of an upload is stored."""
        scope = caller_project()
        project = self._datasets.get(scope, dataset_id)
        if project is not None:
            return project
        dataset = await visible_dataset(self.catalog, dataset_id)
        self._datasets.add(scope, dataset_id, dataset.project)
        return dataset.project

    async def existing_item(self, spec: ValidSpec) -> resources_pb2.Item | None:
        """For SKIP: the existing file to return without reading the content; for FAIL:
        refuses an existing path up front. With a request_id and FAIL it is left to the
        catalog, so that a retry of a call that did create the item gets that result, not
        ALREADY_EXISTS; a retried SKIP may answer SKIPPED for the item its first try created
        (the same item)."""
        policy = spec.duplicate_policy
        if policy == DuplicatePolicy.DUPLICATE_POLICY_OVERWRITE or (
                spec.request_id and policy == DuplicatePolicy.DUPLICATE_POLICY_FAIL):
            return None
        existing = await self.catalog.find_item(spec.dataset_id, spec.filename)
        if existing is None:
            return None
        if spec.duplicate_policy == DuplicatePolicy.DUPLICATE_POLICY_FAIL:
            raise AlreadyExists(f"{spec.filename} already exists in dataset {spec.dataset_id}")
        return existing if existing.type != ItemType.ITEM_TYPE_DIR else None

    async def register_link(self, spec: ValidSpec, link: LinkTarget,
                            batcher: CreateBatcher | None = None,
                            ) -> upload_pb2.UploadItemResponse:
        request = catalog_pb2.CreateItemRequest(
            dataset_id=spec.dataset_id, dir=spec.remote_dir, name=spec.name,
            type=ItemType.ITEM_TYPE_LINK,
            link=resources_pb2.LinkInfo(url=link.url, mimetype=link.mimetype),
            description=spec.description, user_metadata=spec.user_metadata,
            duplicate_policy=spec.duplicate_policy,
            request_id=spec.request_id or f"upload:{uuid.uuid4().hex}")
        reply = await self._create_item_with_retries(request, None, batcher)
        return upload_pb2.UploadItemResponse(item=reply.item, outcome=reply.outcome)

    async def register(self, spec: ValidSpec, key: str, size: int, sha256: str,
                       batcher: CreateBatcher | None = None) -> upload_pb2.UploadItemResponse:
        """CreateItem for the durable blob at `key`; through `batcher` (BatchCreateItems
        shared with other uploads) when given."""
        request = catalog_pb2.CreateItemRequest(
            dataset_id=spec.dataset_id, dir=spec.remote_dir, name=spec.name,
            type=ItemType.ITEM_TYPE_FILE, size=size, sha256=sha256, blob_key=key,
            description=spec.description, user_metadata=spec.user_metadata,
            duplicate_policy=spec.duplicate_policy,
            request_id=item_request_id(spec, key))
        reply = await self._create_item_with_retries(request, key, batcher)
        if reply.item.blob_key != key:
            # SKIPPED after a race, or a request_id replay: the catalog kept another blob.
            await self.delete_blob(key)
        return upload_pb2.UploadItemResponse(item=reply.item, outcome=reply.outcome)

    async def _create_item_with_retries(self, request: catalog_pb2.CreateItemRequest,
                                        key: str | None, batcher: CreateBatcher | None,
                                        ) -> catalog_pb2.CreateItemResponse:
        """CreateItem, retried while its outcome is unknown (by the batcher, if any). A
        definite refusal deletes the blob. If the catalog stays unreachable the blob is kept:
        the catalog may have committed an item that references it, and a dangling item is
        worse than an orphan blob."""
        create, retry_delays = ((batcher.create, ()) if batcher is not None
                                else (self.catalog.create_item, REGISTER_RETRY_DELAYS))
        last_error: CorralError | None = None
        for delay in (0.0, *retry_delays):
            if delay:  # the first try goes at once (a sleep(0) would cost a loop turn per file)
                await asyncio.sleep(delay)
            try:
                return await create(request)
            except CorralError as exc:
                if exc.code not in _AMBIGUOUS_CODES:
                    if key is not None:
                        await self.delete_blob(key)
                    raise
                last_error = exc
        reason = last_error.message if last_error else "no answer"
        log.warning("catalog outcome unknown; blob kept as a possible orphan",
                    extra={"blob_key": key, "error": reason})
        raise Unavailable(f"the catalog did not confirm {request.dir}/{request.name}: {reason}; "
                          "retry the upload")

    async def is_registered(self, spec: ValidSpec, key: str) -> bool:
        """Whether the catalog holds the item `register(spec, key, ...)` would create."""
        item = await self.catalog.find_item_by_request(spec.dataset_id,
                                                       item_request_id(spec, key))
        return item is not None and item.blob_key == key

    async def delete_blob(self, key: str) -> None:
        try:
            await run_blocking(self.store.delete, key)
        except Exception:
            log.warning("could not delete an unregistered blob", exc_info=True,
                        extra={"blob_key": key})


def retrieve_result(task: asyncio.Future) -> None:
    """Marks a shielded task's outcome as seen when its caller was cancelled."""
    if not task.cancelled():
        task.exception()


async def shielded(coro) -> upload_pb2.UploadItemResponse:
    """Runs `coro` to the end even if the caller is cancelled: once a blob is durable, a
    cancelled call still registers it or deletes it."""
    task = asyncio.ensure_future(coro)
    task.add_done_callback(retrieve_result)
    return await asyncio.shield(task)
