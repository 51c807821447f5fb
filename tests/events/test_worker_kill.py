"""Fault test: one of three preprocess workers sharing a consumer group is SIGKILLed while
1,000 small images are being ingested. Its leased events come back to the others when the
leases expire; every item ends processed, and none is processed twice in effect: each item
has exactly one thumbnail in the blob store, the one its metadata names, and no other
thumbnail is left behind."""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from pathlib import Path

import pytest
from PIL import Image

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from corral.structs import struct_to_dict
from tests.preprocess.catalog_helpers import CatalogDriver, blob_store, get_stats, wait_for

ITEMS = 1000
BATCH = 100
CATALOG_ENV = {"CORRAL_GRACE_SECONDS": "1", "CORRAL_LOG_LEVEL": "info"}
WORKER_ENV = {
    "CORRAL_PREPROCESS_PROCESSES": "1",
    "CORRAL_PREPROCESS_LEASE_SECONDS": "3",
    "CORRAL_GRACE_SECONDS": "2",
    "CORRAL_LOG_LEVEL": "info",
}


def small_jpeg(n: int) -> bytes:
    image = Image.new("RGB", (40, 30), (n % 256, (n * 7) % 256, (n * 13) % 256))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def ingest(driver: CatalogDriver, dataset_id: str, blob_keys: dict[str, str],
           errors: list[Exception]) -> None:
    """Puts the blobs into the shared store and registers them, BATCH items per call."""
    try:
        for start in range(0, ITEMS, BATCH):
            requests = []
            for n in range(start, start + BATCH):
                data, key = small_jpeg(n), f"items/{dataset_id}/{uuid.uuid4().hex}"
                driver.store.put_bytes(key, data)
                requests.append(api.CreateItemRequest(
                    dataset_id=dataset_id, dir="/", name=f"{n:04d}.jpg", size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(), blob_key=key))
            reply = driver.stub.BatchCreateItems(api.BatchCreateItemsRequest(requests=requests),
                                                 timeout=30)
            for result in reply.results:
                blob_keys[result.created.item.id] = result.created.item.blob_key
    except Exception as exc:  # reported by the test
        errors.append(exc)


def all_items(driver: CatalogDriver, dataset_id: str) -> list[res.Item]:
    found, token = [], ""
    while True:
        page = driver.stub.ListItems(api.ListItemsRequest(
            dataset_id=dataset_id, dir="/", page_size=500, page_token=token), timeout=30)
        found += [item for item in page.items if item.type != res.ITEM_TYPE_DIR]
        if not page.next_page_token:
            return found
        token = page.next_page_token


def preprocessed(item: res.Item) -> bool:
    record = item.metadata.system.fields.get("executionLogs")
    return record is not None and "preprocess" in record.struct_value.fields


def thumbnail_files(data_dir: Path) -> set[str]:
    root = data_dir / "blobs"
    return {path.relative_to(root).as_posix()
            for path in (root / "thumbnails").rglob("*") if path.is_file()}


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_sigkill_one_of_three_workers_during_ingest(database, service_factory, tmp_path,
                                                    pg_database_factory):
    data_dir = tmp_path / "data"
    env = dict(CATALOG_ENV)
    if database == "postgresql":
        env["CORRAL_DATABASE_URL"] = pg_database_factory()
    catalog = service_factory("catalog", env=env)
    workers = [service_factory("preprocess", env=WORKER_ENV,
                               args=["--catalog-addr", catalog.addr]) for _ in range(3)]
    driver = CatalogDriver(catalog.addr, blob_store(data_dir))
    dataset_id = driver.create_dataset("kill")
    blob_keys: dict[str, str] = {}
    errors: list[Exception] = []
    ingesting = threading.Thread(target=ingest, args=(driver, dataset_id, blob_keys, errors))
    ingesting.start()
    try:
        victim, survivors = workers[0], workers[1:]
        at_kill = wait_for(lambda: (s := get_stats(victim.addr)).processed >= 50 and s, 60,
                           "the victim to be busy")
        victim.kill()
        ingesting.join(120)
        assert not errors and len(blob_keys) == ITEMS

        items = wait_for(lambda: (found := all_items(driver, dataset_id))
                         and all(preprocessed(item) for item in found) and found, 120,
                         "every item preprocessed")
        stats = [wait_for(lambda w=w: (s := get_stats(w.addr)).in_flight == 0 and s, 30,
                          "survivors idle") for w in survivors]
        group = wait_for(lambda: (s := driver.stub.GetConsumerGroup(
            api.GetConsumerGroupRequest(consumer_group="preprocess"), timeout=10))
            .pending_events == 0 and s.leased_events == 0 and s, 60, "the group drained")
    finally:
        ingesting.join(120)
        driver.close()

    assert len(items) == ITEMS
    thumbnails = set()
    for item in items:
        system = struct_to_dict(item.metadata.system)
        record = system["executionLogs"]["preprocess"]
        assert (record["status"], record["blobKey"]) == ("success", blob_keys[item.id])
        assert (system["width"], system["height"]) == (40, 30)
        thumbnails.add(system["thumbnail"]["key"])
    # One thumbnail per item, and nothing else: a re-run overwrote, never added.
    assert len(thumbnails) == ITEMS
    assert thumbnail_files(data_dir) == thumbnails
    # The survivors took over and failed nothing. Counts cannot add up to ITEMS exactly: the
    # victim's own count dies with it, and it may have finished (and acknowledged) more items
    # between at_kill's reading and the kill; the metadata and thumbnails above are the check.
    assert at_kill.processed >= 50
    assert sum(s.processed for s in stats) > 0 and all(s.failed == 0 for s in stats)
    assert group.committed_cursor == group.head_cursor
