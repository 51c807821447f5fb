"""CSV import: rows stream in with the file, each becomes a link item, a fetched-and-stored
binary, or a stored base64 binary, and a result per row streams back as it completes.

Memory stays constant for any file size: the parser holds at most one row beyond the chunk
being parsed, and reading the next chunk waits while `max_pending` rows are unfinished.
Link rows are created in batches (one catalog call and one transaction for many rows).
Every row's request_id is derived from the import folder and its ID, so importing the same
CSV again returns the items of the first import instead of creating duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import resources_pb2
from corral.errors import CorralError, InvalidArgument
from corral.paths import check_name, check_path_length, join, normalize_dir
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from services.blobstore.base import BlobStore
from services.fetch import Fetcher, check_url
from services.upload.batching import CreateBatcher
from services.upload.catalog_port import Catalog
from services.upload.csv_rows import CsvRow, CsvRowParser, RowError
from services.upload.registration import blob_key_for, visible_dataset
from services.upload.sink import run_blocking
from services.upload.spec import DEFAULT_MAX_UPLOAD_BYTES, too_large

log = logging.getLogger("corral.upload.import")

ItemType = resources_pb2.ItemType
CreateOutcome = resources_pb2.CreateOutcome


@dataclass
class ImportLimits:
    fetch_concurrency: int = 16
    max_pending_rows: int = 2000
    batch_size: int = 500
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES  # per stored row (CORRAL_UPLOAD_MAX_BYTES)


@dataclass
class _Counts:
    rows: int = 0
    created: int = 0
    skipped: int = 0
    failed: int = 0


def row_request_id(folder: str, item_id: str) -> str:
    """The idempotency key of a row: its import folder and ID."""
    digest = hashlib.sha256(f"{folder}\n{item_id}".encode()).hexdigest()[:40]
    return f"csv:{digest}"


def import_folder(spec: upload_pb2.ImportCsvSpec) -> str:
    """"/remote_dir/<csv name without extension>"."""
    remote_dir = normalize_dir(spec.remote_dir or "/", "spec.remote_dir")
    csv_name = check_name(spec.csv_name, "spec.csv_name")
    stem = PurePosixPath(csv_name).stem or csv_name
    return check_path_length(join(remote_dir, check_name(stem, "spec.csv_name")),
                             "the import folder spec.remote_dir/spec.csv_name")


class CsvImporter:
    def __init__(self, store: BlobStore, catalog: Catalog, fetcher: Fetcher,
                 limits: ImportLimits | None = None) -> None:
        self._store, self._catalog, self._fetcher = store, catalog, fetcher
        self._limits = limits or ImportLimits()

    async def run(self, requests: AsyncIterable[upload_pb2.ImportCsvRequest],
                  ) -> AsyncIterator[upload_pb2.ImportCsvResponse]:
        messages = aiter(requests)
        first = await anext(messages, None)
        if first is None or not first.HasField("spec"):
            raise InvalidArgument("the first message must carry spec")
        spec = first.spec
        if not spec.dataset_id:
            raise InvalidArgument("spec.dataset_id is required")
        folder = import_folder(spec)
        if spec.fetch_concurrency < 0:
            raise InvalidArgument("spec.fetch_concurrency must not be negative")
        concurrency = min(spec.fetch_concurrency or self._limits.fetch_concurrency,
                          self._limits.fetch_concurrency)
        await visible_dataset(self._catalog, spec.dataset_id)  # before any row is stored
        run = _ImportRun(self, spec.dataset_id, folder, concurrency)
        async for response in run.stream(first, messages):
            yield response


class _ImportRun:
    """One import: parses rows while finishing earlier ones, and yields their results."""

    def __init__(self, importer: CsvImporter, dataset_id: str, folder: str,
                 concurrency: int) -> None:
        self._store, self._catalog = importer._store, importer._catalog
        self._fetcher, limits = importer._fetcher, importer._limits
        self._dataset_id, self._folder, self._concurrency = dataset_id, folder, concurrency
        self._max_bytes = limits.max_upload_bytes
        self._fetch_slots = asyncio.Semaphore(concurrency)
        self._pending = asyncio.Semaphore(limits.max_pending_rows)
        self._results: asyncio.Queue[upload_pb2.ImportCsvRowResult | None] = asyncio.Queue()
        self._batcher = CreateBatcher(self._catalog, limits.batch_size)
        self._tasks: set[asyncio.Task[None]] = set()
        self._counts = _Counts()

    async def stream(self, first: upload_pb2.ImportCsvRequest,
                     messages: AsyncIterator[upload_pb2.ImportCsvRequest],
                     ) -> AsyncIterator[upload_pb2.ImportCsvResponse]:
        reader = asyncio.ensure_future(self._read(first, messages))
        try:
            while (result := await self._results.get()) is not None:
                yield upload_pb2.ImportCsvResponse(row=result)
            await reader  # re-raises a failure of the whole import (e.g. a bad header)
        finally:
            reader.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(reader, *self._tasks, return_exceptions=True)
            await self._batcher.close()
        counts = self._counts
        yield upload_pb2.ImportCsvResponse(summary=upload_pb2.ImportCsvSummary(
            folder=self._folder, rows=counts.rows, created=counts.created,
            skipped=counts.skipped, failed=counts.failed,
            fetch_concurrency=self._concurrency))

    async def _read(self, first: upload_pb2.ImportCsvRequest,
                    messages: AsyncIterator[upload_pb2.ImportCsvRequest]) -> None:
        parser = CsvRowParser(check_url)
        try:
            message: upload_pb2.ImportCsvRequest | None = first
            while message is not None:
                if message is not first and message.HasField("spec"):
                    raise InvalidArgument("only the first message may carry spec")
                for row in parser.feed(message.data):
                    await self._start(row)
                message = await anext(messages, None)
            for row in parser.finish():
                await self._start(row)
            await self._drain()
        except CorralError:
            # The file is refused from here on (e.g. a line that is not UTF-8), but rows
            # already under way may be fetched, stored or created by now: they finish and are
            # reported first, so that no item or blob appears that the client never heard of.
            await self._drain()
            raise
        finally:
            self._results.put_nowait(None)

    async def _drain(self) -> None:
        """Sends the batched link rows and waits for every started row."""
        self._batcher.flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _start(self, row: CsvRow | RowError) -> None:
        self._counts.rows += 1
        if isinstance(row, RowError):
            self._report_error(row.row, row.line, row.item_id, row.action,
                               row.code, row.message)
            return
        await self._pending.acquire()  # back-pressure: stop parsing while rows pile up
        task = asyncio.ensure_future(self._finish_row(row))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish_row(self, row: CsvRow) -> None:
        try:
            reply = await self._create(row)
        except CorralError as exc:
            self._report_error(row.row, row.line, row.item_id, row.action, exc.code,
                               exc.message)
        except Exception as exc:  # noqa: BLE001 - one row's bug must not end the import
            log.exception("import row failed", extra={"row": row.row})
            self._report_error(row.row, row.line, row.item_id, row.action, "INTERNAL",
                               f"internal error: {type(exc).__name__}")
        else:
            outcome = CreateOutcome.CREATE_OUTCOME_SKIPPED if reply.replayed else reply.outcome
            if outcome == CreateOutcome.CREATE_OUTCOME_SKIPPED:
                self._counts.skipped += 1
            else:
                self._counts.created += 1
            self._results.put_nowait(upload_pb2.ImportCsvRowResult(
                row=row.row, line=row.line, id=row.item_id, action=row.action,
                item=reply.item, outcome=outcome))
        finally:
            self._pending.release()

    def _report_error(self, row: int, line: int, item_id: str, action: str, code: str,
                      message: str) -> None:
        self._counts.failed += 1
        self._results.put_nowait(upload_pb2.ImportCsvRowResult(
            row=row, line=line, id=item_id, action=action,
            error=resources_pb2.ItemError(code=code, message=f"row {row}: {message}")))

    def _request(self, row: CsvRow) -> catalog_pb2.CreateItemRequest:
        request = catalog_pb2.CreateItemRequest(
            dataset_id=self._dataset_id, dir=self._folder, name=row.name,
            description=row.description, request_id=row_request_id(self._folder, row.item_id),
            duplicate_policy=resources_pb2.DuplicatePolicy.DUPLICATE_POLICY_SKIP)
        request.user_metadata.update(row.user_metadata)
        return request

    async def _create(self, row: CsvRow) -> catalog_pb2.CreateItemResponse:
        # Refused before anything is fetched or stored (the catalog checks it again).
        check_path_length(join(self._folder, row.name), "name: the item's full path")
        request = self._request(row)
        if row.action == "link":
            request.type = ItemType.ITEM_TYPE_LINK
            request.link.url, request.link.mimetype = row.url, row.mimetype
            return await self._batcher.create(request)
        if row.content is None:
            earlier = await self._catalog.find_item_by_request(self._dataset_id,
                                                               request.request_id)
            if earlier is not None:  # imported before: do not fetch it again
                return catalog_pb2.CreateItemResponse(item=earlier, replayed=True,
                                                      outcome=CreateOutcome.CREATE_OUTCOME_SKIPPED)
        key = blob_key_for(self._dataset_id)
        if row.content is not None:
            if len(row.content) > self._max_bytes:
                raise too_large(f"image_bytes holds {len(row.content)} bytes", self._max_bytes)
            size, sha256 = await run_blocking(self._put, key, row.content)
        else:
            async with self._fetch_slots:
                size, sha256 = await run_blocking(self._fetch_to_blob, row.url, key)
        request.type = ItemType.ITEM_TYPE_FILE
        request.size, request.sha256, request.blob_key = size, sha256, key
        try:
            reply = await self._batcher.create(request)
        except CorralError as exc:
            if exc.code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                await run_blocking(self._store.delete, key)
            raise
        except asyncio.CancelledError:
            raise  # the catalog may have committed it: keep the blob (an orphan at worst)
        if reply.item.blob_key != key:  # an earlier import's item
            await run_blocking(self._store.delete, key)
        return reply

    def _put(self, key: str, content: bytes) -> tuple[int, str]:
        self._store.put_bytes(key, content)
        return len(content), hashlib.sha256(content).hexdigest()

    def _fetch_to_blob(self, url: str, key: str) -> tuple[int, str]:
        """Streams the remote body into a new blob (nothing left behind on failure)."""
        digest, size = hashlib.sha256(), 0
        writer = self._store.open_writer(key)
        try:
            with self._fetcher.open(url) as body:
                for chunk in body.iter_chunks():
                    if size + len(chunk) > self._max_bytes:
                        raise too_large(f"URL: the body of {url} is larger", self._max_bytes)
                    digest.update(chunk)
                    writer.write(chunk)
                    size += len(chunk)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        return size, digest.hexdigest()
