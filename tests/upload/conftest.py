"""Upload service tests over real gRPC: the catalog and upload services as child processes
sharing one blob store (the data dir's fs store, or a bucket on moto's S3 server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from blobstore.moto_s3 import moto_endpoint, s3_env, s3_settings  # noqa: F401  (fixture)

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import catalog_service_pb2_grpc, resources_pb2
from corral.launcher import ServiceProcess
from corral.rpc import CHANNEL_OPTIONS, open_channel
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from corral.upload.v1 import upload_service_pb2_grpc
from services.blobstore import BlobStore, open_blob_store
from services.common.settings import BlobStoreSettings


@dataclass
class Stack:
    """A running catalog + upload service pair and sync stubs to call them."""

    upload: ServiceProcess
    catalog: ServiceProcess
    store: BlobStore
    channels: list[grpc.Channel] = field(default_factory=list)

    def __post_init__(self) -> None:
        upload_channel = open_channel(self.upload.addr, options=CHANNEL_OPTIONS)
        catalog_channel = open_channel(self.catalog.addr, options=CHANNEL_OPTIONS)
        self.channels += [upload_channel, catalog_channel]
        self.uploads = upload_service_pb2_grpc.UploadServiceStub(upload_channel)
        self.catalogs = catalog_service_pb2_grpc.CatalogServiceStub(catalog_channel)

    def create_dataset(self, name: str = "cats") -> str:
        reply = self.catalogs.CreateDataset(catalog_pb2.CreateDatasetRequest(name=name), timeout=10)
        return reply.dataset.id

    def items(self, dataset_id: str) -> list[resources_pb2.Item]:
        reply = self.catalogs.ListItems(
            catalog_pb2.ListItemsRequest(dataset_id=dataset_id, recursive=True), timeout=10)
        return [i for i in reply.items if i.type != resources_pb2.ItemType.ITEM_TYPE_DIR]

    def download(self, item_id: str, offset: int = 0,
                 thumbnail: bool = False) -> list[upload_pb2.DownloadResponse]:
        request = upload_pb2.DownloadRequest(item_id=item_id, read_offset=offset,
                                             thumbnail=thumbnail)
        return list(self.uploads.Download(request, timeout=60))

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


StackFactory = Callable[..., Stack]


@pytest.fixture
def stack_factory(service_factory, tmp_path: Path) -> Iterator[StackFactory]:
    """start(s3_endpoint=None, upload_env={}) -> Stack; fs store under the data dir unless an
    S3 endpoint is given."""
    stacks: list[Stack] = []

    def start(s3_endpoint: str | None = None, upload_env: dict[str, str] | None = None) -> Stack:
        data_dir = tmp_path / f"data{len(stacks)}"
        settings = s3_settings(s3_endpoint) if s3_endpoint else BlobStoreSettings()
        store_env = s3_env(settings) if s3_endpoint else {}
        env = {"CORRAL_DATA_DIR": str(data_dir), **store_env}
        store = open_blob_store(settings, data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        catalog = service_factory("catalog", env={
            **env, "CORRAL_DATABASE_URL": f"sqlite:///{data_dir / 'catalog.db'}"})
        upload = service_factory("upload", env={
            **env, "CORRAL_CATALOG_ADDR": catalog.addr, **(upload_env or {})})
        stack = Stack(upload=upload, catalog=catalog, store=store)
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.close()
