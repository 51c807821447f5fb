"""What the TLS and mTLS tests share: calls carrying chosen TLS files, how a refused
connection looks, and one upload that crosses every hop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import testkeys
from grpc_health.v1 import health_pb2, health_pb2_grpc
from preprocess.images import encode, gradient

from corral.catalog.v1 import catalog_service_pb2, catalog_service_pb2_grpc
from corral.client import Client
from corral.client.client import preprocess_status
from corral.credentials import Credentials, TlsFiles
from corral.rpc import open_channel


def credentials(tls: TlsFiles) -> Credentials:
    return Credentials(api_key=testkeys.ADMIN_KEY, tls=tls)


def health_check(addr: str, tls: TlsFiles) -> health_pb2.HealthCheckResponse.ServingStatus:
    with open_channel(addr, credentials(tls)) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                         timeout=5).status


def list_datasets(addr: str, tls: TlsFiles) -> list[str]:
    """An authenticated call to the catalog."""
    with open_channel(addr, credentials(tls)) as channel:
        reply = catalog_service_pb2_grpc.CatalogServiceStub(channel).ListDatasets(
            catalog_service_pb2.ListDatasetsRequest(), timeout=5)
    return [dataset.name for dataset in reply.datasets]


def refusal(call: Callable[[], object]) -> str:
    """The details of the UNAVAILABLE a refused connection ends the call with."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value
    return caught.value.details()


def upload_and_preprocess(client: Client, dataset: str) -> bytes:
    """Uploads an image through the upload service (which checks the key with the catalog and
    creates the item there), waits for the preprocess worker (which reads events from and
    writes metadata to the catalog), and returns the thumbnail: every hop has to work."""
    client.create_dataset(dataset)
    result = client.upload_bytes(encode(gradient(320, 200), "PNG"), dataset, "picture.png")
    assert result.outcome == "created", result
    [item] = client.wait_for_preprocessing(dataset, timeout=60)
    assert preprocess_status(item) == "success", item["metadata"]["system"]
    assert item["metadata"]["system"]["width"] == 320
    return client.download_bytes(item["id"], thumbnail=True)


def write_png(path: Path) -> Path:
    path.write_bytes(encode(gradient(64, 48), "PNG"))
    return path
