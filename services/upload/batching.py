"""Coalesces many CreateItem calls into BatchCreateItems: callers await their own result,
and a batch goes out when it is full, or once the loop has run the callbacks already queued
while fewer than `max_in_flight` batches are being sent; otherwise it grows until one of them
returns (group commit: under load each call carries what arrived during the previous one, so
a steady stream of rows costs one catalog call and one transaction per many items, while a
lone create still goes out at once).

A batcher may be shared by the calls of many callers (the bulk streams share one), so entries
wait in groups of one project and role each: a batch never mixes callers, and it is sent with
its group's caller bound, so the catalog call carries that caller's project and role (the
flush runs in a loop callback or in another caller's task, never in the entry's own)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.errors import CorralError, Unavailable
from services.common.caller import Principal, bind_caller, caller_or_none
from services.common.futures import resolve
from services.upload.catalog_port import Catalog

log = logging.getLogger("corral.upload.batching")

# Failures after which the catalog may or may not have committed; every entry carries a
# request_id, so sending the batch again is safe.
_AMBIGUOUS_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL"}
RETRY_DELAYS = (0.2, 0.5, 1.0)

Entry = tuple[catalog_pb2.CreateItemRequest, asyncio.Future[catalog_pb2.CreateItemResponse]]
# What the catalog call says about its caller: project, role, and whether it is a service.
GroupKey = tuple[str | None, int, bool] | None


def group_key(principal: Principal | None) -> GroupKey:
    if principal is None:
        return None
    return principal.project, int(principal.role), principal.service


@dataclass
class _Group:
    principal: Principal | None
    entries: list[Entry] = field(default_factory=list)
    size: int = 0  # bytes of the entries' requests


# A batch's request, and its response (the items echo their metadata), must stay far below
# the gRPC message limit even when entries carry up to a megabyte of metadata each.
MAX_BATCH_BYTES = 4 * 1024 * 1024


class CreateBatcher:
    def __init__(self, catalog: Catalog, max_batch: int = 500,
                 max_batch_bytes: int = MAX_BATCH_BYTES, max_in_flight: int = 2) -> None:
        self._catalog, self._max_batch = catalog, max_batch
        self._max_batch_bytes = max_batch_bytes
        self._max_in_flight = max_in_flight
        self._waiting: dict[GroupKey, _Group] = {}
        self._scheduled: asyncio.Handle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def create(self, request: catalog_pb2.CreateItemRequest,
                     ) -> catalog_pb2.CreateItemResponse:
        """The entry's result; its error raised as a CorralError. Sent on behalf of the
        caller bound to the current task."""
        future: asyncio.Future[catalog_pb2.CreateItemResponse] = (
            asyncio.get_running_loop().create_future())
        principal = caller_or_none()
        key = group_key(principal)
        size = request.ByteSize()
        group = self._waiting.get(key)
        if group is not None and group.size + size > self._max_batch_bytes:
            self._send_group(key)  # this entry would make the batch too large: it starts the next
            group = None
        if group is None:
            group = self._waiting[key] = _Group(principal)
        group.entries.append((request, future))
        group.size += size
        if len(group.entries) >= self._max_batch or group.size >= self._max_batch_bytes:
            self._send_group(key)
        else:
            self._schedule_flush()
        return await future

    def _schedule_flush(self) -> None:
        if self._scheduled is None and len(self._sending) < self._max_in_flight:
            # call_soon runs after the callbacks already queued: rows parsed in the same
            # turn of the loop join this batch.
            self._scheduled = asyncio.get_running_loop().call_soon(self.flush)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if self._waiting:
            self._schedule_flush()  # what waited for this call goes out now

    def flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        for key in list(self._waiting):
            self._send_group(key)

    def _send_group(self, key: GroupKey) -> None:
        group = self._waiting.pop(key, None)
        if group is None or not group.entries:
            return
        task = asyncio.ensure_future(self._send(group.principal, group.entries))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    async def close(self) -> None:
        self.flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def _send(self, principal: Principal | None, batch: list[Entry]) -> None:
        # This task's context is a copy of whichever task flushed: bind the group's caller.
        bind_caller(principal)
        requests = [request for request, _ in batch]
        try:
            results = await self._send_with_retries(requests)
        except CorralError as exc:
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            resolve(future, result)

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
