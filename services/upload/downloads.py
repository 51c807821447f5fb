"""A download: find the item in the catalog, then stream its blob (or its thumbnail) from an
offset, reading the next chunk while the current one is sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from google.protobuf import struct_pb2

from corral.catalog.v1 import resources_pb2
from corral.errors import (
    Aborted,
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
)
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from services.blobstore.base import BlobStore
from services.fetch import Fetcher
from services.upload.catalog_port import Catalog
from services.upload.sink import run_blocking

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def _string_field(struct: struct_pb2.Struct, key: str) -> str:
    value = struct.fields.get(key)
    return value.string_value if value is not None else ""


def _thumbnail(item: resources_pb2.Item) -> tuple[str, str]:
    """(blob key, content type) of the item's thumbnail, or NotFound."""
    value = item.metadata.system.fields.get("thumbnail")
    thumbnail = value.struct_value if value is not None else None
    key = _string_field(thumbnail, "key") if thumbnail is not None else ""
    if not key:
        raise NotFound(f"item {item.id} has no thumbnail yet")
    return key, _string_field(thumbnail, "mimetype") or DEFAULT_CONTENT_TYPE


def _link_content_type(item: resources_pb2.Item, remote: str) -> str:
    """The declared full type, else what the remote said, else what preprocessing found."""
    declared = item.link.mimetype
    if "/" in declared:
        return declared
    return remote or _string_field(item.metadata.system, "mimetype") or DEFAULT_CONTENT_TYPE


class Downloader:
    def __init__(self, store: BlobStore, catalog: Catalog, fetcher: Fetcher | None = None,
                 chunk_bytes: int = 1 << 20) -> None:
        self._store = store
        self._catalog = catalog
        self._fetcher = fetcher
        self._chunk_bytes = chunk_bytes

    async def download(self, request: upload_pb2.DownloadRequest,
                       ) -> AsyncIterator[upload_pb2.DownloadResponse]:
        if not request.item_id:
            raise InvalidArgument("item_id is required")
        item = await self._catalog.get_item(request.item_id)
        if item.type == resources_pb2.ItemType.ITEM_TYPE_LINK and not request.thumbnail:
            async for response in self._download_link(item, request.read_offset):
                yield response
            return
        key, content_type = self._source(item, request.thumbnail)
        try:
            size = await run_blocking(self._store.size, key)
        except NotFound:
            raise await self._missing_blob_error(item, key, request.thumbnail) from None
        offset = request.read_offset
        if offset < 0 or offset > size:
            raise OutOfRange(f"read_offset {offset} is outside item {item.id} ({size} bytes)")
        first = True
        async for chunk in self._read(key, offset):
            if first:
                yield upload_pb2.DownloadResponse(data=chunk, total_size=size,
                                                  content_type=content_type)
                first = False
            else:
                yield upload_pb2.DownloadResponse(data=chunk)
        if first:  # nothing left after the offset: still say what the object is
            yield upload_pb2.DownloadResponse(total_size=size, content_type=content_type)

    async def _download_link(self, item: resources_pb2.Item, offset: int,
                             ) -> AsyncIterator[upload_pb2.DownloadResponse]:
        """Streams a link's remote content through the SSRF-safe fetcher, so the caller never
        needs the URL or access to it."""
        if self._fetcher is None:
            raise FailedPrecondition("this upload service cannot fetch links")
        if offset < 0:
            raise OutOfRange(f"read_offset {offset} must not be negative")
        body = await run_blocking(self._fetcher.open, item.link.url, offset)
        try:
            yield upload_pb2.DownloadResponse(
                total_size=body.size or 0,
                content_type=_link_content_type(item, body.content_type))
            while chunk := await run_blocking(body.read, self._chunk_bytes):
                yield upload_pb2.DownloadResponse(data=chunk)
        finally:
            await run_blocking(body.close)

    @staticmethod
    def _source(item: resources_pb2.Item, thumbnail: bool) -> tuple[str, str]:
        if item.type == resources_pb2.ItemType.ITEM_TYPE_DIR:
            raise FailedPrecondition(f"item {item.id} is a folder and has no content")
        if thumbnail:
            return _thumbnail(item)
        if not item.blob_key:
            raise FailedPrecondition(f"item {item.id} has no stored content")
        content_type = _string_field(item.metadata.system, "mimetype")
        return item.blob_key, content_type or DEFAULT_CONTENT_TYPE

    async def _missing_blob_error(self, item: resources_pb2.Item, key: str,
                                  thumbnail: bool) -> Exception:
        if thumbnail:
            return NotFound(f"the thumbnail of item {item.id} is gone; retry later")
        current = await self._catalog.get_item(item.id)
        if current.blob_key != key:
            return Aborted(f"item {item.id} was overwritten during the download; retry")
        return DataLoss(f"the content of item {item.id} is missing from the blob store")

    async def _read(self, key: str, offset: int) -> AsyncIterator[bytes]:
        chunks: Iterator[bytes] = await run_blocking(
            self._store.iter_chunks, key, offset, self._chunk_bytes)
        pending = asyncio.ensure_future(run_blocking(next, chunks, None))
        try:
            while (chunk := await pending) is not None:
                pending = asyncio.ensure_future(run_blocking(next, chunks, None))
                yield chunk
        finally:
            # A generator must not be closed while another thread is inside it.
            if not pending.done():
                await asyncio.wait([pending])
            await run_blocking(chunks.close)
