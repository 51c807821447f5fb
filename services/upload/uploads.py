"""An upload: validate the spec, stream the bytes into a new blob while checking offsets, size
and sha256, make the blob durable, then register it in the catalog.

Nothing is left behind by a failed upload: the blob writer is aborted on any error before
commit, and a committed blob is deleted when the catalog refuses it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import resources_pb2
from corral.errors import (
    AlreadyExists,
    CorralError,
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from services.blobstore.base import BlobStore
from services.upload.catalog_port import Catalog
from services.upload.links import MAX_LINK_FILE_BYTES, LinkTarget, parse_link_file
from services.upload.sink import HashingBlobSink, run_blocking
from services.upload.spec import DuplicatePolicy, ValidSpec, validate_spec

log = logging.getLogger("corral.upload")

CreateOutcome = resources_pb2.CreateOutcome
ItemType = resources_pb2.ItemType
SKIPPED = CreateOutcome.CREATE_OUTCOME_SKIPPED
CREATED = CreateOutcome.CREATE_OUTCOME_CREATED
# Failures after which the catalog may or may not have committed the item.
_AMBIGUOUS_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL"}
# Pauses between CreateItem retries while the catalog's answer is unknown.
REGISTER_RETRY_DELAYS = (0.2, 0.5, 1.0)


def blob_key_for(dataset_id: str) -> str:
    return f"items/{dataset_id}/{uuid.uuid4().hex}"


def _check_content(spec: ValidSpec, size: int, sha256: str) -> None:
    """Refuses received content that differs from the declared size or sha256."""
    if spec.declared_size is not None and size != spec.declared_size:
        raise InvalidArgument(f"received {size} bytes, but spec.size declared {spec.declared_size}")
    if spec.declared_sha256 and sha256 != spec.declared_sha256:
        raise DataLoss(f"sha256 of the received bytes is {sha256}, but spec.sha256 declared "
                       f"{spec.declared_sha256}")


def _retrieve_result(task: asyncio.Future) -> None:
    """Marks a shielded task's outcome as seen when its caller was cancelled."""
    if not task.cancelled():
        task.exception()


class DatasetCache:
    """Datasets recently found in the catalog, so small uploads skip a lookup. Safe because the
    catalog checks the dataset again in CreateItem; this only makes unknown ones fail early."""

    def __init__(self, ttl_seconds: float, max_entries: int = 4096) -> None:
        self._ttl, self._max = ttl_seconds, max_entries
        self._expiry: dict[str, float] = {}

    def __contains__(self, dataset_id: str) -> bool:
        expiry = self._expiry.get(dataset_id)
        return expiry is not None and expiry > time.monotonic()

    def add(self, dataset_id: str) -> None:
        if self._ttl <= 0:
            return
        if len(self._expiry) >= self._max:
            self._expiry.clear()
        self._expiry[dataset_id] = time.monotonic() + self._ttl


class Uploader:
    def __init__(self, store: BlobStore, catalog: Catalog, *, write_batch_bytes: int = 1 << 20,
                 dataset_cache_seconds: float = 10.0) -> None:
        self._store = store
        self._catalog = catalog
        self._write_batch_bytes = write_batch_bytes
        self._datasets = DatasetCache(dataset_cache_seconds)

    async def upload(
            self, requests: AsyncIterable[upload_pb2.UploadItemRequest],
    ) -> upload_pb2.UploadItemResponse:
        messages = aiter(requests)
        first = await anext(messages, None)
        spec = self._first_spec(first)
        await self._check_dataset(spec.dataset_id)
        existing = None if first.finish_write else await self._existing_item(spec)
        if existing is not None:
            return upload_pb2.UploadItemResponse(item=existing, outcome=SKIPPED)

        key = blob_key_for(spec.dataset_id)
        sink = HashingBlobSink(self._store, key, self._write_batch_bytes)
        try:
            await self._receive(first, messages, spec, sink)
            link = self._link_file(spec, sink)
            if link is not None:
                await sink.abort()
                return await self._register_link(spec, link)
            sha256 = await sink.complete(functools.partial(_check_content, spec))
        except BaseException:
            await sink.abort()
            raise
        # Shielded: once the blob is durable, a cancelled call still registers it or deletes it.
        registration = asyncio.ensure_future(self._register(spec, key, sink.size, sha256))
        registration.add_done_callback(_retrieve_result)
        return await asyncio.shield(registration)

    @staticmethod
    def _first_spec(first: upload_pb2.UploadItemRequest | None) -> ValidSpec:
        if first is None:
            raise InvalidArgument("the upload stream is empty; the first message must carry spec")
        kind = first.WhichOneof("first_message")
        if kind == "upload_id":
            raise FailedPrecondition("upload_id: resumable sessions are not available yet")
        if kind != "spec":
            raise InvalidArgument("the first message must carry spec")
        return validate_spec(first.spec)

    async def _check_dataset(self, dataset_id: str) -> None:
        if dataset_id in self._datasets:
            return
        await self._catalog.get_dataset(dataset_id)
        self._datasets.add(dataset_id)

    async def _existing_item(self, spec: ValidSpec) -> resources_pb2.Item | None:
        """For SKIP: the existing file to return without reading the stream; for FAIL: refuses
        an existing path up front. Skipped when the first message already finished the stream
        (nothing left to save; the catalog applies the policy in CreateItem and one lookup less
        matters for many small files). With a request_id and FAIL it is left to the catalog, so
        that a retry of a call that did create the item gets that result, not ALREADY_EXISTS; a
        retried SKIP may answer SKIPPED for the item its first try created (the same item)."""
        policy = spec.duplicate_policy
        if policy == DuplicatePolicy.DUPLICATE_POLICY_OVERWRITE or (
                spec.request_id and policy == DuplicatePolicy.DUPLICATE_POLICY_FAIL):
            return None
        existing = await self._catalog.find_item(spec.dataset_id, spec.filename)
        if existing is None:
            return None
        if spec.duplicate_policy == DuplicatePolicy.DUPLICATE_POLICY_FAIL:
            raise AlreadyExists(f"{spec.filename} already exists in dataset {spec.dataset_id}")
        return existing if existing.type != ItemType.ITEM_TYPE_DIR else None

    @staticmethod
    async def _receive(first: upload_pb2.UploadItemRequest,
                       messages: AsyncIterator[upload_pb2.UploadItemRequest],
                       spec: ValidSpec, sink: HashingBlobSink) -> None:
        """Streams every message's data into `sink` up to the one with finish_write."""
        message: upload_pb2.UploadItemRequest | None = first
        while True:
            if message.write_offset != sink.size:
                raise InvalidArgument(
                    f"write_offset {message.write_offset}, expected {sink.size}")
            data = message.data  # each access copies the bytes out of the message
            if data:
                declared = spec.declared_size
                if declared is not None and sink.size + len(data) > declared:
                    raise InvalidArgument(
                        f"received more than the declared spec.size of {declared} bytes")
                await sink.write(data)
            if message.finish_write:
                return
            message = await anext(messages, None)
            if message is None:
                raise InvalidArgument("the upload stream ended without finish_write")
            if message.WhichOneof("first_message"):
                raise InvalidArgument("only the first message may carry spec or upload_id")

    @staticmethod
    def _link_file(spec: ValidSpec, sink: HashingBlobSink) -> LinkTarget | None:
        """The link a small uploaded link file describes (its content checked like any
        upload's), or None for ordinary content."""
        content = sink.buffered_content(MAX_LINK_FILE_BYTES)
        link = parse_link_file(content) if content else None
        if link is not None:
            _check_content(spec, len(content), hashlib.sha256(content).hexdigest())
        return link

    async def _register_link(self, spec: ValidSpec,
                             link: LinkTarget) -> upload_pb2.UploadItemResponse:
        request = catalog_pb2.CreateItemRequest(
            dataset_id=spec.dataset_id, dir=spec.remote_dir, name=spec.name,
            type=ItemType.ITEM_TYPE_LINK,
            link=resources_pb2.LinkInfo(url=link.url, mimetype=link.mimetype),
            description=spec.description, user_metadata=spec.user_metadata,
            duplicate_policy=spec.duplicate_policy,
            request_id=spec.request_id or f"upload:{uuid.uuid4().hex}")
        reply = await self._create_item_with_retries(request, None)
        return upload_pb2.UploadItemResponse(item=reply.item, outcome=reply.outcome)

    async def _register(self, spec: ValidSpec, key: str, size: int,
                        sha256: str) -> upload_pb2.UploadItemResponse:
        # Without the caller's request_id, the blob key (unique per upload) makes the call
        # idempotent, so a retry after a lost reply returns the first result.
        request = catalog_pb2.CreateItemRequest(
            dataset_id=spec.dataset_id, dir=spec.remote_dir, name=spec.name,
            type=ItemType.ITEM_TYPE_FILE, size=size, sha256=sha256, blob_key=key,
            description=spec.description, user_metadata=spec.user_metadata,
            duplicate_policy=spec.duplicate_policy,
            request_id=spec.request_id or f"upload:{key.rsplit('/', 1)[-1]}")
        reply = await self._create_item_with_retries(request, key)
        if reply.item.blob_key != key:
            # SKIPPED after a race, or a request_id replay: the catalog kept another blob.
            await self._delete_blob(key)
        return upload_pb2.UploadItemResponse(item=reply.item, outcome=reply.outcome)

    async def _create_item_with_retries(self, request: catalog_pb2.CreateItemRequest,
                                        key: str | None) -> catalog_pb2.CreateItemResponse:
        """CreateItem, retried while its outcome is unknown. A definite refusal deletes the
        blob. If the catalog stays unreachable the blob is kept: the catalog may have committed
        an item that references it, and a dangling item is worse than an orphan blob."""
        last_error: CorralError | None = None
        for delay in (0.0, *REGISTER_RETRY_DELAYS):
            await asyncio.sleep(delay)
            try:
                return await self._catalog.create_item(request)
            except CorralError as exc:
                if exc.code not in _AMBIGUOUS_CODES:
                    if key is not None:
                        await self._delete_blob(key)
                    raise
                last_error = exc
        reason = last_error.message if last_error else "no answer"
        log.warning("catalog outcome unknown; blob kept as a possible orphan",
                    extra={"blob_key": key, "error": reason})
        raise Unavailable(f"the catalog did not confirm {request.dir}/{request.name}: {reason}; "
                          "retry the upload")

    async def _delete_blob(self, key: str) -> None:
        try:
            await run_blocking(self._store.delete, key)
        except Exception:
            log.warning("could not delete an unregistered blob", exc_info=True,
                        extra={"blob_key": key})
