"""Fault test: the catalog is unreachable when the upload service finishes a blob. The client
gets UNAVAILABLE and no item exists; the blob stays behind as an orphan, which the restarted
catalog collects without touching any referenced blob or thumbnail; the retried upload (same
request_id) creates exactly one item. The catalog and upload services are child processes of
the test (only those are signalled); every wait is bounded."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import grpc
import pytest
from blobstore.moto_s3 import (
    TEST_PART_SIZE,
    minio_client,
    object_keys,
    pending_multipart_uploads,
    s3_env,
    s3_settings,
)
from limits.conftest import held_open

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import catalog_service_pb2_grpc
from corral.client import Client
from corral.errors import Unavailable
from corral.launcher import ServiceProcess
from corral.rpc import CHANNEL_OPTIONS, open_channel
from corral.structs import dict_to_struct
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from corral.upload.v1 import upload_service_pb2_grpc
from services.blobstore.fs import FsBlobStore
from upload.messages import upload_requests
from upload.waiting import wait_for


def stored_keys(blobs: FsBlobStore) -> set[str]:
    return {info.key for prefix in ("items/", "thumbnails/") for info in blobs.list_keys(prefix)}


def blob_key_of(catalog_addr: str, item_id: str) -> str:
    with open_channel(catalog_addr, options=CHANNEL_OPTIONS) as channel:
        stub = catalog_service_pb2_grpc.CatalogServiceStub(channel)
        return stub.GetItem(catalog_pb2.GetItemRequest(item_id=item_id), timeout=10).item.blob_key


def set_thumbnail(catalog_addr: str, item_id: str, key: str) -> None:
    with open_channel(catalog_addr, options=CHANNEL_OPTIONS) as channel:
        stub = catalog_service_pb2_grpc.CatalogServiceStub(channel)
        stub.UpdateSystemMetadata(catalog_pb2.UpdateSystemMetadataRequest(
            item_id=item_id, system=dict_to_struct({"thumbnail": {"key": key}})), timeout=10)


def test_catalog_unreachable_when_a_blob_is_finished(service_factory, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"CORRAL_DATA_DIR": str(data_dir),
           # The dataset check must not need the catalog: the blob is to be finished.
           "CORRAL_UPLOAD_DATASET_CACHE_SECONDS": "3600",
           "CORRAL_CATALOG_ORPHAN_SWEEP_SECONDS": "0"}
    catalog = service_factory("catalog", env=env)
    upload = service_factory("upload", env={**env, "CORRAL_CATALOG_ADDR": catalog.addr})
    blobs = FsBlobStore(data_dir / "blobs")

    def collecting_catalog(addr: str) -> ServiceProcess:
        """The catalog again, on the same address, sweeping at once with a tiny grace."""
        return service_factory("catalog", addr=addr, env={
            **env, "CORRAL_CATALOG_ORPHAN_SWEEP_SECONDS": "3600",
            "CORRAL_CATALOG_ORPHAN_GRACE_SECONDS": "0.001"})

    with Client(catalog_addr=catalog.addr, upload_addr=upload.addr, timeout=10) as client:
        # The dataset itself, not its name: resolving a name needs the catalog.
        photos = client.create_dataset("photos")
        kept = client.upload_bytes(b"kept", photos, "kept.jpg").item
        thumbnail = f"thumbnails/{kept['id'][:2]}/{kept['id']}-0123456789abcdef.jpg"
        blobs.put_bytes(thumbnail, b"a thumbnail")
        set_thumbnail(catalog.addr, kept["id"], thumbnail)
        # After the source is deleted, the clone is the only reference to their shared blob.
        source = client.upload_bytes(b"cloned", photos, "source.jpg").item
        clone = client.clone(source["id"], remote_dir="/clones")
        client.delete_item(source["id"])
        referenced = stored_keys(blobs)
        assert referenced == {blob_key_of(catalog.addr, kept["id"]), thumbnail,
                              blob_key_of(catalog.addr, clone["id"])}

        catalog.kill()  # SIGKILL: CreateItem cannot reach it
        with pytest.raises(Unavailable):
            client.upload_bytes(b"orphaned at first", photos, "retried.jpg",
                                on_exists="fail", request_id="retried-upload")
        orphans = stored_keys(blobs) - referenced
        assert orphans  # one per attempt of the SDK, each finished but never registered

        catalog = collecting_catalog(catalog.addr)
        # The sweep at start lists everything before deleting, so an upload after the
        # orphans are gone is not looked at before the next sweep, an hour later.
        wait_for(lambda: stored_keys(blobs) == referenced, "the orphan blobs to be collected")
        assert [i["name"] for i in client.list_items(photos, recursive=True)
                if i["name"] == "retried.jpg"] == []

        first = client.upload_bytes(b"orphaned at first", photos, "retried.jpg",
                                    on_exists="fail", request_id="retried-upload").item
        again = client.upload_bytes(b"orphaned at first", photos, "retried.jpg",
                                    on_exists="fail", request_id="retried-upload").item

        assert again["id"] == first["id"]
        names = sorted(i["name"] for i in client.list_items(photos, recursive=True)
                       if i["type"] != "dir")
        assert names == sorted([clone["name"], "kept.jpg", "retried.jpg"])
        assert client.download_bytes(first["id"]) == b"orphaned at first"
        assert client.download_bytes(kept["id"], thumbnail=True) == b"a thumbnail"
        assert client.download_bytes(clone["id"]) == b"cloned"
        referenced.add(blob_key_of(catalog.addr, first["id"]))
        # A retry may have found the upload service still backing off from reconnecting: its
        # blob is a young orphan, left for a later sweep, like this one.
        assert referenced <= stored_keys(blobs)
        catalog.stop()
        catalog = collecting_catalog(catalog.addr)
        wait_for(lambda: stored_keys(blobs) == referenced, "the late orphans to be collected")
        assert [i["id"] for i in client.list_items(photos, recursive=True)
                if i["name"] == "retried.jpg"] == [first["id"]]


def test_a_killed_upload_leaves_a_multipart_upload_that_the_sweep_discards(
        service_factory, tmp_path: Path, moto_endpoint: str) -> None:
    """SIGKILL the upload service while a one-call upload to S3 is between parts: its
    multipart upload stays pending (nothing visible), and the catalog's sweep discards it
    once untouched for the grace period, while a resumable session's upload stays."""
    settings = s3_settings(moto_endpoint)
    env = {"CORRAL_DATA_DIR": str(tmp_path / "data"), **s3_env(settings),
           "CORRAL_CATALOG_ORPHAN_SWEEP_SECONDS": "0"}
    catalog = service_factory("catalog", env=env)
    upload = service_factory("upload", env={**env, "CORRAL_CATALOG_ADDR": catalog.addr})
    s3 = minio_client(moto_endpoint)
    with Client(catalog_addr=catalog.addr, upload_addr=upload.addr, timeout=10) as client:
        dataset_id = client.create_dataset("big")["id"]
    channel = open_channel(upload.addr, options=CHANNEL_OPTIONS)
    stub = upload_service_pb2_grpc.UploadServiceStub(channel)
    session_id = stub.StartResumableUpload(upload_pb2.StartResumableUploadRequest(
        spec=upload_pb2.UploadSpec(dataset_id=dataset_id, name="session.bin")),
        timeout=10).upload_id
    data = os.urandom(3 * TEST_PART_SIZE)
    spec = upload_pb2.UploadSpec(dataset_id=dataset_id, name="killed.bin")
    release = threading.Event()
    messages = list(upload_requests(spec, data))
    held = held_open(messages[:len(messages) // 2], release)
    call = stub.UploadItem.future(held, timeout=60)
    wait_for(lambda: len(pending_multipart_uploads(s3, settings.s3_bucket)) == 2,
             "the killed upload's multipart upload beside the session's")
    upload.kill()
    release.set()
    with pytest.raises(grpc.RpcError):
        call.result(timeout=30)
    channel.close()
    assert object_keys(s3, settings.s3_bucket) == [f"upload-sessions/{session_id}.json"]

    catalog.stop()
    service_factory("catalog", addr=catalog.addr, env={
        **env, "CORRAL_CATALOG_ORPHAN_SWEEP_SECONDS": "3600",
        "CORRAL_CATALOG_ORPHAN_GRACE_SECONDS": "0.001"})
    wait_for(lambda: len(pending_multipart_uploads(s3, settings.s3_bucket)) == 1,
             "the killed upload's multipart upload to be discarded")
    [kept] = s3._list_multipart_uploads(settings.s3_bucket).uploads
    assert kept.object_name != "" and "killed" not in kept.object_name
    session = json.loads(s3.get_object(settings.s3_bucket,
                                       f"upload-sessions/{session_id}.json").read())
    assert kept.object_name == session["blob_key"]
