"""The whole pipeline on the S3 blob store (the minio SDK against moto's S3 server on loopback),
as docker-compose runs it with MinIO: upload, catalog, preprocess reading the blob and writing
the thumbnail, download of both, and deletion releasing both objects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from blobstore.moto_s3 import (  # noqa: F401  (moto_endpoint is a fixture)
    minio_client,
    moto_endpoint,
    object_keys,
    s3_env,
    s3_settings,
)
from preprocess.images import oriented_jpeg
from sdk.stack import Stack, running_stack

from corral.client import Client
from corral.client.client import preprocess_status


@pytest.fixture(scope="module")
def s3_stack(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str):  # noqa: F811
    settings = s3_settings(moto_endpoint)
    with running_stack(tmp_path_factory.mktemp("s3"), s3_env(settings)) as running:
        yield running, settings


@pytest.fixture(scope="module")
def s3_client(s3_stack) -> Iterator[Client]:
    stack, _ = s3_stack
    with Client(**stack.client_kwargs()) as client:
        yield client


def test_ingest_preprocess_download_and_delete_on_s3(s3_stack, s3_client: Client,
                                                      tmp_path: Path) -> None:
    stack, settings = s3_stack
    assert isinstance(stack, Stack)
    bucket_keys = lambda: object_keys(minio_client(settings.s3_endpoint), settings.s3_bucket)  # noqa: E731
    photo = tmp_path / "rotated.jpg"
    photo.write_bytes(oriented_jpeg(6))
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (12 * 1024 * 16))  # 12 MiB: several multipart parts

    s3_client.create_dataset("s3")
    summary = s3_client.upload_paths([photo, big], "s3", remote_dir="/x")
    assert summary.ok and len(summary.created) == 2
    items = {i["name"]: i for i in s3_client.wait_for_preprocessing("s3", timeout=60)}
    image = items["rotated.jpg"]
    system = image["metadata"]["system"]
    assert preprocess_status(image) == "success"
    assert (system["exifOrientation"], system["displayWidth"], system["displayHeight"]) == (
        6, 120, 60)
    assert items["big.bin"]["metadata"]["system"]["mimetype"] == "application/octet-stream"

    item_blobs = lambda: [k for k in bucket_keys() if k.startswith("items/")]  # noqa: E731
    assert len(item_blobs()) == 2 and system["thumbnail"]["key"] in bucket_keys()
    assert s3_client.download_bytes(image["id"]) == photo.read_bytes()
    assert s3_client.download_bytes(items["big.bin"]["id"]) == big.read_bytes()
    assert len(s3_client.download_bytes(image["id"], thumbnail=True)) == system["thumbnail"]["size"]

    s3_client.delete_item(image["id"])
    deadline = time.monotonic() + 10
    while len(item_blobs()) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(item_blobs()) == 1, "the deleted item's blob is released"
    assert system["thumbnail"]["key"] not in bucket_keys(), "and its thumbnail"
    assert s3_client.download_bytes(items["big.bin"]["id"]) == big.read_bytes()
