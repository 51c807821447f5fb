"""Bulk uploads: many files on one UploadItems stream, a result per file as each completes.

Each file goes through the same steps as a one-call upload (uploads.py): its bytes are
checked and fed to a sink as they arrive, and after its finish_write the blob is verified,
made durable, then registered. Registration goes through a CreateBatcher shared by every
stream, so concurrent files cost one BatchCreateItems (one catalog transaction) per batch.

A file that fails (bad spec, offset, checksum, duplicate with FAIL, missing dataset...) gets
an ItemError result and leaves nothing behind; its later messages are dropped until its
finish_write, and the stream goes on. Only broken framing of the stream itself ends it.

Memory per stream is bounded: at most `max_open_files` files are being received (each
holds at most two sink batches of `batch_bytes`), else the stream ends with
RESOURCE_EXHAUSTED; at most `max_finishing_files` are being stored and registered (each
holds less than one batch), and at that limit the reader stops reading, so HTTP/2 flow
control holds the client back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from corral.catalog.v1 import resources_pb2
from corral.errors import CorralError, InvalidArgument, ResourceExhausted
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from services.upload.batching import CreateBatcher
from services.upload.receiving import accept
from services.upload.sink import HashingBlobSink
from services.upload.spec import ValidSpec, validate_spec
from services.upload.uploads import Uploader

log = logging.getLogger("corral.upload.bulk")


@dataclass(frozen=True)
class BulkLimits:
    max_open_files: int = 32
    max_finishing_files: int = 128
    # Small: bulk files are small, and open files hold up to two batches each.
    batch_bytes: int = 256 * 1024


@dataclass(slots=True)
class _OpenFile:
    """A file whose finish_write has not arrived; without a sink it failed and its remaining
    messages are dropped."""

    spec: ValidSpec | None = None
    key: str = ""
    sink: HashingBlobSink | None = None


class BulkUploads:
    def __init__(self, uploader: Uploader, batcher: CreateBatcher,
                 limits: BulkLimits | None = None) -> None:
        self.uploader, self.batcher = uploader, batcher
        self.limits = limits or BulkLimits()

    async def run(self, requests: AsyncIterable[upload_pb2.UploadItemsRequest],
                  ) -> AsyncIterator[upload_pb2.UploadItemsResponse]:
        async for response in _BulkStream(self).responses(requests):
            yield response


class _BulkStream:
    def __init__(self, bulk: BulkUploads) -> None:
        self._uploader, self._batcher, self._limits = bulk.uploader, bulk.batcher, bulk.limits
        self._open: dict[int, _OpenFile] = {}
        self._finishing = asyncio.Semaphore(self._limits.max_finishing_files)
        # Results not sent yet; all of them go out in the next response message (fewer
        # messages: each costs more CPU than a small result).
        self._results: list[upload_pb2.UploadItemsResult] = []
        self._have_results = asyncio.Event()
        self._read_all = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def responses(self, requests: AsyncIterable[upload_pb2.UploadItemsRequest],
                        ) -> AsyncIterator[upload_pb2.UploadItemsResponse]:
        reader = asyncio.ensure_future(self._read(requests))
        try:
            while True:
                await self._have_results.wait()
                self._have_results.clear()
                results, self._results = self._results, []
                if results:
                    yield upload_pb2.UploadItemsResponse(results=results)
                if self._read_all and not self._results:
                    break
            await reader  # re-raises what ended the stream
        finally:
            # Cancelled: files being received are aborted (reader), files being finished
            # abort too unless their blob is durable, which then is registered or deleted.
            reader.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(reader, *self._tasks, return_exceptions=True)

    async def _read(self, requests: AsyncIterable[upload_pb2.UploadItemsRequest]) -> None:
        try:
            async for message in requests:
                await self._accept(message)
                for inner in message.batched:
                    if inner.batched:
                        raise InvalidArgument(
                            "a message in batched may not carry batched messages itself")
                    await self._accept(inner)
            for index, file in list(self._open.items()):
                if file.sink is not None:
                    await self._fail(index, file, InvalidArgument(
                        "the stream ended before the file's finish_write"))
            await self._finish_started()
        except CorralError:
            # The stream is refused from here on (an undecodable message, too many open
            # files, an idle client), but files that were already finishing may be stored and
            # catalogued by now: they complete and their results go out before the error, so
            # that no item appears that the client was never told about.
            await self._finish_started()
            raise
        finally:
            for file in self._open.values():
                if file.sink is not None:
                    await file.sink.abort()
            self._open.clear()
            self._read_all = True
            self._have_results.set()

    async def _finish_started(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _accept(self, message: upload_pb2.UploadItemsRequest) -> None:
        index = message.file_index
        file = self._open.get(index)
        if file is None:
            file = await self._start(index, message)
        elif message.HasField("spec") and file.sink is not None:
            await self._fail(index, file, InvalidArgument(
                "spec may only be sent in a file's first message"))
        if file.sink is not None:
            try:
                await accept(message, file.sink, file.spec.declared_size,
                             self._uploader.max_bytes)
            except Exception as exc:  # noqa: BLE001 - one file's failure must not end the stream
                await self._fail(index, file, exc)
        if not message.finish_write:
            return
        del self._open[index]
        if file.sink is None:
            return
        await self._finishing.acquire()  # back-pressure: stop reading while many finish
        task = asyncio.ensure_future(self._finish(index, file, message.sha256.lower()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, index: int, message: upload_pb2.UploadItemsRequest) -> _OpenFile:
        if len(self._open) >= self._limits.max_open_files:
            raise ResourceExhausted(
                f"file_index {index} would be more than {self._limits.max_open_files} files "
                "open on one UploadItems stream; send finish_write of earlier files first")
        file = self._open[index] = _OpenFile()
        try:
            if not message.HasField("spec"):
                raise InvalidArgument("a file's first message must carry spec")
            spec = validate_spec(message.spec, self._uploader.max_bytes)
            await self._uploader.registrar.check_dataset(spec.dataset_id)
        except Exception as exc:  # noqa: BLE001 - one file's failure must not end the stream
            await self._fail(index, file, exc)
            return file
        file.spec = spec
        file.key, file.sink = self._uploader.new_sink(spec.dataset_id, self._limits.batch_bytes)
        return file

    async def _fail(self, index: int, file: _OpenFile, exc: BaseException) -> None:
        """Reports the file's error and discards what it stored; its later messages are
        dropped until its finish_write."""
        sink, file.sink = file.sink, None
        if sink is not None:
            await sink.abort()
        self._report_error(index, file.spec, exc)

    async def _finish(self, index: int, file: _OpenFile, finish_sha256: str) -> None:
        try:
            assert file.spec is not None and file.sink is not None
            reply = await self._uploader.finish(file.spec, file.key, file.sink, finish_sha256,
                                                self._batcher)
        except Exception as exc:  # noqa: BLE001 - one file's failure must not end the stream
            self._report_error(index, file.spec, exc)
        else:
            self._add_result(upload_pb2.UploadItemsResult(
                file_index=index, item=reply.item, outcome=reply.outcome))
        finally:
            self._finishing.release()

    def _report_error(self, index: int, spec: ValidSpec | None, exc: BaseException) -> None:
        if isinstance(exc, CorralError):
            code, message = exc.code, exc.message
        else:
            log.error("bulk upload file failed", exc_info=exc, extra={"file_index": index})
            code, message = "INTERNAL", f"internal error: {type(exc).__name__}"
        where = spec.filename if spec is not None else f"file_index {index}"
        self._add_result(upload_pb2.UploadItemsResult(
            file_index=index, error=resources_pb2.ItemError(code=code,
                                                            message=f"{where}: {message}")))

    def _add_result(self, result: upload_pb2.UploadItemsResult) -> None:
        self._results.append(result)
        self._have_results.set()
