"""CORRAL_CATALOG_MAX_SUBSCRIPTIONS_PER_KEY: one API key holds at most that many Subscribe
streams (plain or leased) at once; beyond it RESOURCE_EXHAUSTED names the limit and the
setting; a slot comes back when a stream ends however it ends (cancel, deadline), other keys
are not affected and the services' own key is exempt. The catalog runs as a child process
configured through its environment, on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
import testkeys
from upload.waiting import wait_for

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import catalog_service_pb2_grpc as api_grpc
from corral.client import Client
from corral.credentials import Credentials
from corral.errors import ResourceExhausted
from corral.launcher import ServiceProcess
from corral.rpc import open_channel
from services.common.caller import Principal, Role
from services.common.per_key import PerKeyLimit

CAP = 2
SETTING = "CORRAL_CATALOG_MAX_SUBSCRIPTIONS_PER_KEY"


class Subscriber:
    """Subscribe streams carrying one key; each opened stream is known to be admitted (it
    delivered the dataset's one event) and is cancelled at the end."""

    def __init__(self, addr: str, key: str, dataset_id: str) -> None:
        self._channel = open_channel(addr, Credentials(api_key=key))
        self.stub = api_grpc.CatalogServiceStub(self._channel)
        self._dataset_id = dataset_id
        self.streams: list[grpc.Future] = []

    def request(self, leased: bool = False) -> api.SubscribeRequest:
        group = {"consumer_group": f"g-{uuid.uuid4().hex[:8]}", "lease_seconds": 30} \
            if leased else {}
        return api.SubscribeRequest(dataset_id=self._dataset_id,
                                    start_position=api.START_POSITION_EARLIEST, **group)

    def open(self, leased: bool = False, timeout: float = 60.0) -> grpc.RpcError | None:
        """Opens a stream and reads its first event; the refusal if it was refused."""
        stream = self.stub.Subscribe(self.request(leased), timeout=timeout)
        try:
            next(stream)
        except grpc.RpcError as exc:
            return exc
        self.streams.append(stream)
        return None

    def close(self) -> None:
        for stream in self.streams:
            stream.cancel()
        self._channel.close()


@pytest.fixture
def catalog(service_factory) -> ServiceProcess:
    return service_factory("catalog", env={SETTING: str(CAP), "CORRAL_GRACE_SECONDS": "1"})


@pytest.fixture
def project(catalog: ServiceProcess) -> Iterator[tuple[dict[str, str], str]]:
    """({role: key} of a new project, the id of its dataset holding one item)."""
    name = f"p{uuid.uuid4().hex[:8]}"
    with Client(catalog_addr=catalog.addr, api_key=testkeys.ADMIN_KEY) as admin:
        admin.create_project(name)
        keys = {role: admin.create_api_key(name, "reader")[1] for role in ("a", "b")}
    with Client(catalog_addr=catalog.addr, api_key=testkeys.ADMIN_KEY, project=name) as admin:
        dataset_id = admin.create_dataset("events")["id"]
    with open_channel(catalog.addr, Credentials(api_key=testkeys.ADMIN_KEY)) as channel:
        api_grpc.CatalogServiceStub(channel).CreateItem(api.CreateItemRequest(
            dataset_id=dataset_id, name="one.bin", size=1, sha256="0" * 64,
            blob_key=f"items/{dataset_id}/{uuid.uuid4().hex}"), timeout=30)
    yield keys, dataset_id


def _refused_for_cap(error: grpc.RpcError | None, key: str) -> None:
    assert error is not None, "a subscription beyond the cap was admitted"
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    key_id = key.split("_")[1]
    assert f"key {key_id} already holds {CAP} open subscriptions" in error.details(), \
        error.details()
    assert f"({SETTING})" in error.details(), error.details()
    assert key not in error.details()


def test_a_key_holds_at_most_the_cap_and_gets_slots_back_when_streams_end(
        catalog: ServiceProcess, project: tuple[dict[str, str], str]) -> None:
    keys, dataset_id = project
    first = Subscriber(catalog.addr, keys["a"], dataset_id)
    other = Subscriber(catalog.addr, keys["b"], dataset_id)
    try:
        assert first.open() is None
        assert first.open(leased=True) is None  # leased subscriptions count alike
        _refused_for_cap(first.open(), keys["a"])
        _refused_for_cap(first.open(leased=True), keys["a"])
        # Per key: another key of the same project still subscribes.
        assert other.open() is None

        # A cancelled stream gives its slot back (once the catalog has seen the cancel).
        first.streams.pop(0).cancel()
        wait_for(lambda: first.open() is None, "a slot freed by a cancelled stream")
        _refused_for_cap(first.open(), keys["a"])

        # So does one that ran out its deadline.
        first.streams.pop(0).cancel()
        short = first.stub.Subscribe(first.request(), timeout=1.0)
        next(short)
        with pytest.raises(grpc.RpcError) as ended:
            for _ in short:
                pass
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        wait_for(lambda: first.open() is None, "a slot freed by a deadline")
    finally:
        first.close()
        other.close()


def test_the_services_key_is_exempt(catalog: ServiceProcess,
                                    project: tuple[dict[str, str], str]) -> None:
    _keys, dataset_id = project
    service = Subscriber(catalog.addr, testkeys.SERVICE_KEY, dataset_id)
    try:
        for leased in (False, True) * CAP:
            assert service.open(leased=leased) is None
        assert len(service.streams) == 2 * CAP
    finally:
        service.close()


def test_slots_are_counted_per_key_and_released_on_error() -> None:
    limit = PerKeyLimit(1, "subscriptions", SETTING)
    reader = Principal("k1", Role.READER, "p")
    with limit.hold(reader):
        assert limit.held("k1") == 1
        with pytest.raises(ResourceExhausted, match=r"key k1 already holds 1 open subscriptions"),\
                limit.hold(reader):
            pass
        with limit.hold(Principal("k2", Role.READER, "p")):
            assert limit.held("k2") == 1
    assert limit.held("k1") == limit.held("k2") == 0
    with pytest.raises(RuntimeError), limit.hold(reader):
        raise RuntimeError("the stream failed")
    assert limit.held("k1") == 0
    unlimited = PerKeyLimit(0, "subscriptions", SETTING)
    with unlimited.hold(reader), unlimited.hold(reader):
        assert unlimited.held("k1") == 0
