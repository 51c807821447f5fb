"""Coalesces many CreateItem calls into BatchCreateItems: callers await their own result,
and a batch goes out when it is full or when the loop has nothing else to do, so a steady
stream of rows costs one catalog call (and one transaction) per few hundred items."""

from __future__ import annotations

import asyncio
import logging

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.errors import CorralError, Unavailable
from services.upload.catalog_port import Catalog

log = logging.getLogger("corral.upload.batching")

# Failures after which the catalog may or may not have committed; every entry carries a
# request_id, so sending the batch again is safe.
_AMBIGUOUS_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL"}
RETRY_DELAYS = (0.2, 0.5, 1.0)

Entry = tuple[catalog_pb2.CreateItemRequest, asyncio.Future[catalog_pb2.CreateItemResponse]]


# A batch's request, and its response (the items echo their metadata), must stay far below
# the gRPC message limit even when entries carry up to a megabyte of metadata each.
MAX_BATCH_BYTES = 4 * 1024 * 1024


class CreateBatcher:
    def __init__(self, catalog: Catalog, max_batch: int = 500,
                 max_batch_bytes: int = MAX_BATCH_BYTES) -> None:
        self._catalog, self._max_batch = catalog, max_batch
        self._max_batch_bytes = max_batch_bytes
        self._waiting: list[Entry] = []
        self._waiting_bytes = 0
        self._scheduled: asyncio.Handle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def create(self, request: catalog_pb2.CreateItemRequest,
                     ) -> catalog_pb2.CreateItemResponse:
        """The entry's result; its error raised as a CorralError."""
        future: asyncio.Future[catalog_pb2.CreateItemResponse] = (
            asyncio.get_running_loop().create_future())
        size = request.ByteSize()
        if self._waiting and self._waiting_bytes + size > self._max_batch_bytes:
            self.flush()  # this entry would make the batch too large: it starts the next one
        self._waiting.append((request, future))
        self._waiting_bytes += size
        if len(self._waiting) >= self._max_batch or self._waiting_bytes >= self._max_batch_bytes:
            self.flush()
        elif self._scheduled is None:
            # call_soon runs after the callbacks already queued: rows parsed in the same
            # turn of the loop join this batch.
            self._scheduled = asyncio.get_running_loop().call_soon(self.flush)
        return await future

    def flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if not self._waiting:
            return
        batch, self._waiting, self._waiting_bytes = self._waiting, [], 0
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def close(self) -> None:
        self.flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def _send(self, batch: list[Entry]) -> None:
        requests = [request for request, _ in batch]
        try:
            results = await self._send_with_retries(requests)
        except CorralError as exc:
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, CorralError):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _send_with_retries(self, requests: list[catalog_pb2.CreateItemRequest],
                                 ) -> list[catalog_pb2.CreateItemResponse | CorralError]:
        last: CorralError | None = None
        for delay in (0.0, *RETRY_DELAYS):
            await asyncio.sleep(delay)
            try:
                return await self._catalog.batch_create_items(requests)
            except CorralError as exc:
                if exc.code not in _AMBIGUOUS_CODES:
                    raise
                last = exc
                log.info("batch create failed; retrying", extra={"error": exc.message})
        raise Unavailable(f"the catalog did not confirm the batch: "
                          f"{last.message if last else 'no answer'}")
