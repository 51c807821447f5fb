"""moto's S3 server mode on a free loopback port: real HTTP, SigV4 and multipart for the same
`minio` SDK code that talks to MinIO in production. Shared by the blob store and upload tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from minio import Minio
from moto.server import ThreadedMotoServer

from services.common.settings import BlobStoreSettings

ACCESS_KEY = "corral-test"
SECRET_KEY = "corral-test-secret"
REGION = "us-east-1"
TEST_PART_SIZE = 5 * 1024 * 1024


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """host:port of a moto S3 server running in a thread for the whole session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


def s3_settings(endpoint: str, bucket: str | None = None,
                part_size: int = TEST_PART_SIZE) -> BlobStoreSettings:
    return BlobStoreSettings(
        blob_store="s3", s3_endpoint=endpoint, s3_bucket=bucket or f"t-{uuid.uuid4().hex[:12]}",
        s3_access_key=ACCESS_KEY, s3_secret_key=SECRET_KEY, s3_secure=False, s3_region=REGION,
        s3_part_size=part_size)


def s3_env(settings: BlobStoreSettings) -> dict[str, str]:
    """The environment that makes a service child process use the same bucket."""
    return {"CORRAL_BLOB_STORE": "s3", "CORRAL_S3_ENDPOINT": settings.s3_endpoint,
            "CORRAL_S3_BUCKET": settings.s3_bucket, "CORRAL_S3_ACCESS_KEY": ACCESS_KEY,
            "CORRAL_S3_SECRET_KEY": SECRET_KEY, "CORRAL_S3_SECURE": "false",
            "CORRAL_S3_REGION": REGION, "CORRAL_S3_PART_SIZE": str(settings.s3_part_size)}


def minio_client(endpoint: str) -> Minio:
    return Minio(endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False,
                 region=REGION)


def object_keys(client: Minio, bucket: str) -> list[str]:
    if not client.bucket_exists(bucket):
        return []
    return sorted(o.object_name for o in client.list_objects(bucket, recursive=True))


def pending_multipart_uploads(client: Minio, bucket: str) -> list[str]:
    if not client.bucket_exists(bucket):
        return []
    return [u.object_name for u in client._list_multipart_uploads(bucket).uploads]
