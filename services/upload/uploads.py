"""An upload: validate the spec, stream the bytes into a new blob while checking offsets, size
and sha256, make the blob durable, then register it in the catalog.

Nothing is left behind by a failed one-call upload: the blob writer is aborted on any error
before commit, and a committed blob is deleted when the catalog refuses it. A stream whose
first message carries an upload_id continues a resumable session (resumable.py).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncIterable

from corral.catalog.v1 import resources_pb2
from corral.errors import InvalidArgument
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from services.blobstore.base import BlobStore
from services.upload.batching import CreateBatcher
from services.upload.catalog_port import Catalog
from services.upload.links import MAX_LINK_FILE_BYTES, LinkTarget, parse_link_file
from services.upload.receiving import receive
from services.upload.registration import (
    REGISTER_RETRY_DELAYS,
    Registrar,
    blob_key_for,
    check_content,
    shielded,
)
from services.upload.resumable import ResumableUploads, SessionSettings
from services.upload.sink import GroupCommitter, HashingBlobSink
from services.upload.spec import DEFAULT_MAX_UPLOAD_BYTES, ValidSpec, validate_spec

__all__ = ["REGISTER_RETRY_DELAYS", "Uploader", "blob_key_for"]

SKIPPED = resources_pb2.CreateOutcome.CREATE_OUTCOME_SKIPPED


class Uploader:
    def __init__(self, store: BlobStore, catalog: Catalog, *, write_batch_bytes: int = 1 << 20,
                 dataset_cache_seconds: float = 10.0,
                 sessions: SessionSettings | None = None,
                 max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> None:
        self._store = store
        self._write_batch_bytes = write_batch_bytes
        self._committer = GroupCommitter(store.commit_many) if store.shares_commit_work \
            else None
        self.max_bytes = max_bytes  # per upload (CORRAL_UPLOAD_MAX_BYTES)
        self.registrar = Registrar(store, catalog, dataset_cache_seconds)
        self.resumable = ResumableUploads(self.registrar, write_batch_bytes,
                                          sessions or SessionSettings(), max_bytes=max_bytes)

    async def upload(
            self, requests: AsyncIterable[upload_pb2.UploadItemRequest],
    ) -> upload_pb2.UploadItemResponse:
        messages = aiter(requests)
        first = await anext(messages, None)
        if first is not None and first.WhichOneof("first_message") == "upload_id":
            return await self.resumable.write(first, messages)
        spec = self._first_spec(first, self.max_bytes)
        await self.registrar.check_dataset(spec.dataset_id)
        # Skipped when the first message already finished the stream (nothing left to save;
        # the catalog applies the policy in CreateItem and one lookup less matters for many
        # small files).
        existing = None if first.finish_write else await self.registrar.existing_item(spec)
        if existing is not None:
            return upload_pb2.UploadItemResponse(item=existing, outcome=SKIPPED)

        key, sink = self.new_sink(spec.dataset_id, self._write_batch_bytes)
        try:
            finish_sha256 = await receive(first, messages, sink, spec.declared_size,
                                          self.max_bytes)
            if finish_sha256 is None:
                raise InvalidArgument("the upload stream ended without finish_write")
        except BaseException:
            await sink.abort()
            raise
        return await self.finish(spec, key, sink, finish_sha256)

    def new_sink(self, dataset_id: str, batch_bytes: int) -> tuple[str, HashingBlobSink]:
        """A new blob key and the sink that writes it (nothing is opened yet)."""
        key = blob_key_for(dataset_id)
        return key, HashingBlobSink(functools.partial(self._store.open_writer, key),
                                    functools.partial(self._store.delete, key), batch_bytes,
                                    committer=self._committer)

    async def finish(self, spec: ValidSpec, key: str, sink: HashingBlobSink,
                     finish_sha256: str, batcher: CreateBatcher | None = None,
                     ) -> upload_pb2.UploadItemResponse:
        """After the last message: verifies and commits the blob (or takes a link file as a
        link), then registers it, through `batcher` when given. Leaves nothing on failure."""
        try:
            link = self._link_file(spec, sink, finish_sha256)
            if link is not None:
                await sink.abort()
                return await self.registrar.register_link(spec, link, batcher)
            sha256 = await sink.complete(
                functools.partial(check_content, spec, finish_sha256=finish_sha256))
        except BaseException:
            await sink.abort()
            raise
        assert sha256 is not None
        return await shielded(self.registrar.register(spec, key, sink.size, sha256, batcher))

    @staticmethod
    def _first_spec(first: upload_pb2.UploadItemRequest | None, max_bytes: int) -> ValidSpec:
        if first is None:
            raise InvalidArgument("the upload stream is empty; the first message must carry spec")
        if first.WhichOneof("first_message") != "spec":
            raise InvalidArgument("the first message must carry spec or upload_id")
        return validate_spec(first.spec, max_bytes)

    @staticmethod
    def _link_file(spec: ValidSpec, sink: HashingBlobSink,
                   finish_sha256: str) -> LinkTarget | None:
        """The link a small uploaded link file describes (its content checked like any
        upload's), or None for ordinary content."""
        content = sink.buffered_content(MAX_LINK_FILE_BYTES)
        link = parse_link_file(content) if content else None
        if link is not None:
            check_content(spec, len(content), hashlib.sha256(content).hexdigest(), finish_sha256)
        return link

