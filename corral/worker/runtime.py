"""The trigger worker: subscribes to the trigger's leased consumer group, evaluates the
trigger's filter on each event's item, and runs `func(item, ctx)` with bounded concurrency.

- Each event is leased to this worker for `lease_seconds`; leases of events being handled
  are extended every third of that, so a long run keeps its events, and a worker that dies
  leaves them to expire and be re-delivered to another worker of the trigger.
- A failing function is retried with exponential backoff up to `max_attempts` times; then
  the run is recorded as failed and the event acknowledged, so it never blocks the queue.
- Every finished run is recorded on the item at metadata.system.executionLogs.<trigger>
  {status, attempts, durationMs, error, finishedAt}, together with the results the function
  gave `ctx.set_system` (metadata.system.<trigger>), in one catalog write.
- `once` triggers: the catalog lets one event per item ever run (StartTriggerRun); the
  re-delivery of that same event runs again, any later event of the item is skipped.
- A paused trigger: the worker stops taking events (they wait in the group) and resumes
  when the trigger is active again; a changed trigger is picked up within `refresh_seconds`.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import io
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, BinaryIO

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from corral.catalog.v1 import triggers_pb2 as tpb
from corral.client import filter_match
from corral.client.convert import ItemDict, item_to_dict
from corral.errors import CorralError, InvalidArgument
from corral.rpc import translated
from corral.structs import dict_to_struct
from corral.upload.v1 import upload_service_pb2

log = logging.getLogger("corral.worker")
EVENT_NAMES = {res.EVENT_TYPE_CREATED: "created", res.EVENT_TYPE_UPDATED: "updated",
               res.EVENT_TYPE_DELETED: "deleted"}
MAX_BACKOFF_SECONDS = 30.0


def load_function(spec: str) -> Callable[..., Any]:
    """"package.module:func" -> the function (the current directory is importable)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidArgument(f"--function must look like package.module:func, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgument(f"--function: cannot import {module_name!r}: {exc}") from exc
    function = module
    for part in attr.split("."):
        function = getattr(function, part, None)  # type: ignore[assignment]
        if function is None:
            raise InvalidArgument(f"--function: {module_name!r} has no {attr!r}")
    if not callable(function):
        raise InvalidArgument(f"--function: {spec!r} is not callable")
    return function  # type: ignore[return-value]


class _DownloadReader(io.RawIOBase):
    """A read-only stream over the upload service's Download of an item."""

    def __init__(self, chunks: Iterator[bytes], call: Any) -> None:
        self._chunks, self._call, self._buffer = chunks, call, b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            with translated():
                chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            self._call.cancel()
        super().close()


class Context:
    """What a trigger function gets besides the item."""

    def __init__(self, client: Any, trigger: str, item: ItemDict, event_type: str,
                 attempt: int) -> None:
        self.client, self.trigger, self.item = client, trigger, item
        self.event_type, self.attempt = event_type, attempt
        self.system: dict[str, Any] | None = None

    @property
    def item_id(self) -> str:
        return self.item["id"]

    def open(self) -> BinaryIO:
        """The item's bytes as a buffered binary stream (read through the upload service, so
        link items work too); close it when done."""
        call = self.client._upload.Download(
            upload_service_pb2.DownloadRequest(item_id=self.item_id))
        reader = _DownloadReader((response.data for response in call), call)
        return io.BufferedReader(reader, 1 << 20)  # type: ignore[return-value]

    def read_bytes(self) -> bytes:
        return self.client.download_bytes(self.item_id)

    def set_user_metadata(self, patch: Mapping[str, Any]) -> ItemDict:
        """Merges `patch` into metadata.user now (RFC 7386; None deletes a key). This writes an
        `updated` event: a trigger on `updated` in `always` mode sees its own writes."""
        return self.client.update_item(self.item_id, metadata_patch=dict(patch))

    def set_system(self, values: Mapping[str, Any]) -> None:
        """Results for metadata.system.<trigger>: merged over what this attempt set before,
        written with the run's success record (a failed attempt writes none)."""
        self.system = {**(self.system or {}), **dict(values)}


class TriggerWorker:
    def __init__(self, client: Any, trigger: str, function: Callable[..., Any], *,
                 concurrency: int = 4, max_attempts: int = 3, lease_seconds: int = 60,
                 backoff_seconds: float = 0.5, refresh_seconds: float = 5.0,
                 preprocess_wait_seconds: float = 120.0) -> None:
        if concurrency < 1 or max_attempts < 1 or lease_seconds < 2:
            raise InvalidArgument("concurrency and max_attempts must be at least 1, "
                                  "lease_seconds at least 2")
        self.client, self.name, self.function = client, trigger, function
        self.concurrency, self.max_attempts = concurrency, max_attempts
        self.lease_seconds, self.backoff_seconds = lease_seconds, backoff_seconds
        self.refresh_seconds = refresh_seconds
        self.preprocess_wait_seconds = preprocess_wait_seconds
        self.subscriber_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.stop_event = threading.Event()
        self.counts = {"succeeded": 0, "failed": 0, "skipped": 0}
        self._catalog = client._catalog
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._call: Any = None
        self._group = ""
        self._is_async = inspect.iscoroutinefunction(function)

    # -- control ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Takes no more events; runs in progress finish and are acknowledged."""
        self.stop_event.set()
        call = self._call
        if call is not None:
            call.cancel()

    def run(self) -> None:
        extender = threading.Thread(target=self._extend_leases, daemon=True)
        extender.start()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="trigger") as pool:
            while not self.stop_event.is_set():
                trigger = self.client._get_trigger(self.name)
                if trigger.paused:
                    self.stop_event.wait(self.refresh_seconds)
                    continue
                self._follow(trigger, pool)
        log.info("worker stopped", extra={"trigger": self.name, **self.counts})

    def _follow(self, trigger: tpb.Trigger, pool: ThreadPoolExecutor) -> None:
        """Handles the trigger's events until it changes, pauses or the worker stops."""
        request = api.SubscribeRequest(
            consumer_group=trigger.consumer_group, lease_seconds=self.lease_seconds,
            max_in_flight=self.concurrency, subscriber_id=self.subscriber_id,
            event_types=list(trigger.actions), dataset_id=trigger.dataset_id)
        self._group = trigger.consumer_group
        self._call = call = self._catalog.Subscribe(request)
        watcher = threading.Thread(target=self._watch, args=(trigger, call), daemon=True)
        watcher.start()
        try:
            for response in call:
                cursor = response.event.cursor
                with self._lock:
                    self._in_flight.add(cursor)
                pool.submit(self._handle, trigger, response.event)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                log.warning("subscription ended, reconnecting",
                            extra={"trigger": self.name, "code": exc.code().name})
                self.stop_event.wait(1.0)
        finally:
            call.cancel()
            self._call = None

    def _watch(self, trigger: tpb.Trigger, call: Any) -> None:
        """Ends the subscription when the trigger is paused, changed or deleted."""
        while not self.stop_event.wait(self.refresh_seconds):
            if not call.is_active():
                return
            try:
                current = self.client._get_trigger(self.name)
            except CorralError as exc:
                if exc.code != "NOT_FOUND":
                    continue
                log.error("trigger deleted, stopping", extra={"trigger": self.name})
                self.stop_event.set()
                call.cancel()
                return
            if current.paused or current.update_time != trigger.update_time:
                call.cancel()
                return

    def _extend_leases(self) -> None:
        interval = max(1.0, self.lease_seconds / 3)
        while not (self.stop_event.is_set() and not self._in_flight):
            time.sleep(interval)
            with self._lock:
                cursors = list(self._in_flight)
            if not cursors or not self._group:
                continue
            try:
                self._catalog.ExtendEventLeases(api.ExtendEventLeasesRequest(
                    consumer_group=self._group, subscriber_id=self.subscriber_id,
                    event_cursors=cursors, lease_seconds=self.lease_seconds),
                    timeout=self.client.timeout)
            except grpc.RpcError as exc:
                log.warning("lease extension failed", extra={"code": exc.code().name})

    # -- one event ----------------------------------------------------------------------------

    def _handle(self, trigger: tpb.Trigger, event: res.ItemEvent) -> None:
        try:
            self._handle_event(trigger, event)
            self._ack(trigger, event.cursor)
        except Exception:
            # Not acknowledged: the lease expires and the event is delivered again.
            log.exception("event not handled; it will be re-delivered",
                          extra={"trigger": self.name, "cursor": event.cursor})
        finally:
            with self._lock:
                self._in_flight.discard(event.cursor)

    def _ack(self, trigger: tpb.Trigger, cursor: str) -> None:
        with translated():
            self._catalog.AckEvents(api.AckEventsRequest(
                consumer_group=trigger.consumer_group, event_cursors=[cursor]),
                timeout=self.client.timeout)

    def _handle_event(self, trigger: tpb.Trigger, event: res.ItemEvent) -> None:
        item_filter = trigger.filter if trigger.HasField("filter") else None
        snapshot = event.item
        if (item_filter is not None and event.type != res.EVENT_TYPE_DELETED
                and filter_match.reads_system_metadata(item_filter)):
            snapshot = self._preprocessed(event.item)
            if snapshot is None:  # deleted meanwhile
                self.counts["skipped"] += 1
                return
        if event.type not in trigger.actions or not filter_match.matches(snapshot,
                                                                         item_filter):
            self.counts["skipped"] += 1
            return
        with translated():
            proceed = self._catalog.StartTriggerRun(tpb.StartTriggerRunRequest(
                trigger=self.name, item_id=event.item_id, event_cursor=event.cursor),
                timeout=self.client.timeout).proceed
        if not proceed:
            self.counts["skipped"] += 1
            return
        item = item_to_dict(snapshot)
        started = time.monotonic()
        error, context, attempt = "", None, 0
        for attempt in range(1, self.max_attempts + 1):
            context = Context(self.client, self.name, item, EVENT_NAMES.get(event.type, ""),
                              attempt)
            try:
                self._call_function(item, context)
                error = ""
                break
            except Exception as exc:  # the user's function: any failure is its result
                error = f"{type(exc).__name__}: {exc}"
                log.warning("function failed", extra={"trigger": self.name,
                                                      "item_id": event.item_id,
                                                      "attempt": attempt, "error": error})
                if attempt < self.max_attempts:
                    time.sleep(min(self.backoff_seconds * 2 ** (attempt - 1),
                                   MAX_BACKOFF_SECONDS))
        finish = Timestamp()
        finish.FromDatetime(datetime.now(UTC))
        run = tpb.TriggerRun(status="failed" if error else "success", attempts=attempt,
                             duration_ms=int((time.monotonic() - started) * 1000),
                             error=error, finish_time=finish)
        request = tpb.CompleteTriggerRunRequest(trigger=self.name, item_id=event.item_id,
                                                event_cursor=event.cursor, run=run)
        if not error and context is not None and context.system is not None:
            request.system.CopyFrom(dict_to_struct(context.system, "set_system"))
        with translated():
            self._catalog.CompleteTriggerRun(request, timeout=self.client.timeout)
        self.counts["failed" if error else "succeeded"] += 1
        log.info("run finished", extra={"trigger": self.name, "item_id": event.item_id,
                                        "status": run.status, "attempts": attempt})

    def _preprocessed(self, item: res.Item) -> res.Item | None:
        """The current item once preprocessing has described it (mimetype, size, ...), or
        as it is after `preprocess_wait_seconds`: metadata.system is written after the
        `created` event, so a filter on it is evaluated against the described item."""
        deadline = time.monotonic() + self.preprocess_wait_seconds
        delay = 0.2
        while True:
            try:
                with translated():
                    current = self._catalog.GetItem(api.GetItemRequest(item_id=item.id),
                                                    timeout=self.client.timeout).item
            except CorralError as exc:
                if exc.code == "NOT_FOUND":
                    return None
                raise
            logs = current.metadata.system.fields.get("executionLogs")
            done = logs is not None and "preprocess" in logs.struct_value.fields
            if done or time.monotonic() >= deadline or self.stop_event.is_set():
                return current
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _call_function(self, item: ItemDict, context: Context) -> None:
        if self._is_async:
            asyncio.run(self.function(item, context))
            return
        result = self.function(item, context)
        if inspect.isawaitable(result):
            asyncio.run(_awaited(result))


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
