"""Event consumers for the fault tests, each on its own thread over real gRPC: a leased-group
member that acknowledges every event, and a cursor subscriber that resumes after the last
event it saw. Both reconnect whenever their stream breaks (a catalog restart)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import grpc

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import catalog_service_pb2_grpc as api_grpc
from corral.catalog.v1 import resources_pb2 as res
from corral.rpc import open_channel

RECONNECT_PAUSE = 0.2


@dataclass(frozen=True)
class Delivery:
    item_id: str
    cursor: str
    attempt: int
    subscriber: str


class Consumer:
    def __init__(self, addr: str, name: str) -> None:
        self.addr, self.name = addr, name
        self.deliveries: list[Delivery] = []
        self.stream_failures = 0
        self._stopped = threading.Event()
        self._call: grpc.Call | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Consumer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._call is not None:
            self._call.cancel()
        self._thread.join(10)

    @property
    def item_ids(self) -> list[str]:
        return [delivery.item_id for delivery in self.deliveries]

    def _run(self) -> None:
        with open_channel(self.addr) as channel:
            stub = api_grpc.CatalogServiceStub(channel)
            while not self._stopped.is_set():
                try:
                    self._call = stub.Subscribe(self.request())
                    for response in self._call:
                        self.handle(stub, response)
                except grpc.RpcError:
                    self.stream_failures += 1
                if not self._stopped.is_set():
                    time.sleep(RECONNECT_PAUSE)

    def request(self) -> api.SubscribeRequest:
        raise NotImplementedError

    def handle(self, stub: api_grpc.CatalogServiceStub, response: api.SubscribeResponse) -> None:
        raise NotImplementedError


TRANSIENT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED,
                   grpc.StatusCode.DEADLINE_EXCEEDED)


class LeasedConsumer(Consumer):
    """Acknowledges each event as soon as it arrives; an acknowledgement lost to a restart
    means the event comes back after its lease."""

    def __init__(self, addr: str, name: str, group: str, dataset_id: str,
                 lease_seconds: int = 5, max_in_flight: int = 16) -> None:
        super().__init__(addr, name)
        self.group, self.dataset_id = group, dataset_id
        self.lease_seconds, self.max_in_flight = lease_seconds, max_in_flight

    def request(self) -> api.SubscribeRequest:
        return api.SubscribeRequest(
            consumer_group=self.group, subscriber_id=self.name, dataset_id=self.dataset_id,
            event_types=[res.EVENT_TYPE_CREATED], lease_seconds=self.lease_seconds,
            max_in_flight=self.max_in_flight)

    def handle(self, stub: api_grpc.CatalogServiceStub, response: api.SubscribeResponse) -> None:
        event = response.event
        self.deliveries.append(Delivery(event.item_id, event.cursor,
                                        response.lease.delivery_attempt, self.name))
        request = api.AckEventsRequest(consumer_group=self.group, event_cursors=[event.cursor])
        # Like the preprocess worker, retry an ack that failed for a passing reason (a busy
        # machine, a write conflict between replicas); one lost for good (the catalog went
        # away) is re-delivered after the lease.
        for delay in (0.0, 0.2, 0.5, 1.0):
            time.sleep(delay)
            try:
                stub.AckEvents(request, timeout=5)
                return
            except grpc.RpcError as exc:
                if exc.code() not in TRANSIENT_CODES:
                    return


class CursorConsumer(Consumer):
    """An ephemeral subscription that resumes after the last cursor it received."""

    def __init__(self, addr: str, name: str, dataset_id: str) -> None:
        super().__init__(addr, name)
        self.dataset_id = dataset_id
        self.last_cursor = ""

    def request(self) -> api.SubscribeRequest:
        return api.SubscribeRequest(dataset_id=self.dataset_id, start_cursor=self.last_cursor,
                                    event_types=[res.EVENT_TYPE_CREATED])

    def handle(self, stub: api_grpc.CatalogServiceStub, response: api.SubscribeResponse) -> None:
        event = response.event
        self.deliveries.append(Delivery(event.item_id, event.cursor, 1, self.name))
        self.last_cursor = event.cursor
