"""A catalog server shared per test module, once per database (SQLite and PostgreSQL), running
in-process on a loopback port with a fake blob store that records deletions."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import testkeys
from sqlalchemy import func, select

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import catalog_service_pb2_grpc as api_grpc
from corral.catalog.v1 import resources_pb2 as res
from corral.rpc import open_channel
from corral.structs import dict_to_struct
from services.blobstore.base import BlobInfo, BlobStore, BlobWriter
from services.catalog.access import Access
from services.catalog.app import catalog_security, make_register, open_database
from services.catalog.bootstrap import bootstrap_admin_key
from services.catalog.config import DEFAULT_LIMITS, CatalogLimits
from services.catalog.db import Database
from services.catalog.models import events, items
from services.common.server import RunningServer, start


class FakeBlobStore(BlobStore):
    """Records deletions; the catalog only ever deletes."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete(self, key: str) -> None:
        self.deleted.append(key)

    def open_writer(self, key: str) -> BlobWriter:
        raise NotImplementedError

    def put_bytes(self, key: str, data: bytes, content_type: str = "") -> None:
        raise NotImplementedError

    def iter_chunks(self, key: str, offset: int = 0, chunk_size: int = 0) -> Iterator[bytes]:
        raise NotImplementedError

    def size(self, key: str) -> int:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def stat(self, key: str) -> BlobInfo:
        raise NotImplementedError

    def list_keys(self, prefix: str) -> Iterator[BlobInfo]:
        raise NotImplementedError

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        raise NotImplementedError


class InProcessCatalog:
    """The real server stack (services.common.server.start) on its own event loop thread."""

    def __init__(self, url: str, poll_seconds: float = 0.2,
                 limits: CatalogLimits = DEFAULT_LIMITS) -> None:
        self.url, self.blobs = url, FakeBlobStore()
        self.db: Database = open_database(url)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        bootstrap_admin_key(Access(self.db), Path("unused"), testkeys.ADMIN_KEY)
        security = catalog_security(self.db, testkeys.SERVICE_KEY)
        register = make_register(self.db, self.blobs, security, poll_seconds, limits=limits)
        self._running: RunningServer = self._call(start("catalog", "127.0.0.1:0", register,
                                                        security))
        self.addr = f"127.0.0.1:{self._running.port}"
        self.channel = open_channel(self.addr)
        self.stub = api_grpc.CatalogServiceStub(self.channel)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def stop(self) -> None:
        self.channel.close()
        self._call(self._running.stop(0.5))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def count_rows(self, dataset_id: str) -> tuple[int, int]:
        """(items, events) of a dataset, read straight from the database."""
        with self.db.read() as conn:
            item_rows = conn.execute(select(func.count()).select_from(items).where(
                items.c.dataset_id == dataset_id)).scalar_one()
            event_rows = conn.execute(select(func.count()).select_from(events).where(
                events.c.dataset_id == dataset_id)).scalar_one()
        return item_rows, event_rows


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(request, tmp_path_factory, pg_database_factory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'catalog.db'}"
    return pg_database_factory()


@pytest.fixture(scope="module")
def catalog(module_database_url: str) -> Iterator[InProcessCatalog]:
    server = InProcessCatalog(module_database_url)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def limited_catalog(module_database_url: str, tmp_path_factory: pytest.TempPathFactory,
                    pg_database_factory: Callable[[], str]
                    ) -> Iterator[Callable[[CatalogLimits], InProcessCatalog]]:
    """Starts catalogs with other limits, each on a fresh database of the module's kind."""
    servers: list[InProcessCatalog] = []

    def start(limits: CatalogLimits) -> InProcessCatalog:
        url = pg_database_factory() if module_database_url.startswith("postgresql") else \
            f"sqlite:///{tmp_path_factory.mktemp('limited') / 'catalog.db'}"
        servers.append(InProcessCatalog(url, limits=limits))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def stub(catalog: InProcessCatalog) -> api_grpc.CatalogServiceStub:
    return catalog.stub


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_dataset(stub: api_grpc.CatalogServiceStub, prefix: str = "ds") -> res.Dataset:
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    return stub.CreateDataset(api.CreateDatasetRequest(name=name), timeout=10).dataset


def create_item(stub: api_grpc.CatalogServiceStub, dataset_id: str, dir: str, name: str,
                **fields: Any) -> api.CreateItemResponse:
    user = fields.pop("user_metadata", None)
    blob_key = fields.pop("blob_key", f"items/{dataset_id}/{uuid.uuid4().hex}")
    request = api.CreateItemRequest(
        dataset_id=dataset_id, dir=dir, name=name, size=fields.pop("size", 3),
        sha256=fields.pop("sha256", sha256_of(name)), blob_key=blob_key,
        user_metadata=dict_to_struct(user) if user is not None else None, **fields)
    return stub.CreateItem(request, timeout=10)


def expect_error(code: grpc.StatusCode, call: Callable[[], Any], *in_message: str) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, caught.value.details()
    details = caught.value.details()
    for text in in_message:
        assert text in details, details
    return details


def take_responses(stub: api_grpc.CatalogServiceStub, request: api.SubscribeRequest,
                   count: int, timeout: float = 10.0) -> list[api.SubscribeResponse]:
    """The first `count` responses of a subscription (fewer if `timeout` passes first)."""
    call = stub.Subscribe(request, timeout=timeout)
    received: list[api.SubscribeResponse] = []
    try:
        for response in call:
            received.append(response)
            if len(received) == count:
                break
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    finally:
        call.cancel()
    return received


def take_events(stub: api_grpc.CatalogServiceStub, request: api.SubscribeRequest, count: int,
                timeout: float = 10.0) -> list[res.ItemEvent]:
    """The first `count` events of a subscription (fewer if `timeout` passes first)."""
    return [response.event for response in take_responses(stub, request, count, timeout)]
