"""The preprocess service end to end: the real catalog and preprocess services as child
processes on loopback, sharing one data directory (SQLite + fs blob store)."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
from PIL import Image

from .catalog_helpers import CatalogDriver, blob_store, get_stats, wait_for
from .images import (
    encode,
    garbage_with_png_header,
    gradient,
    oriented_jpeg,
    png_declaring,
    truncated_jpeg,
)

# Open Subscribe streams hold a stopping catalog for its whole grace period.
CATALOG_ENV = {"CORRAL_GRACE_SECONDS": "1"}
PREPROCESS_ENV = {
    "CORRAL_PREPROCESS_PROCESSES": "2",
    "CORRAL_PREPROCESS_TASK_TIMEOUT_SECONDS": "20",
    "CORRAL_PREPROCESS_MEMORY_LIMIT_MB": "768",
    "CORRAL_GRACE_SECONDS": "5",
}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_preprocess(service_factory, catalog_addr: str, **env: str):
    return service_factory("preprocess", env={**PREPROCESS_ENV, **env},
                           args=["--catalog-addr", catalog_addr])


def thumbnail_size(driver: CatalogDriver, key: str) -> tuple[int, int]:
    with driver.store.local_path(key) as path:
        return Image.open(io.BytesIO(path.read_bytes())).size


def test_every_item_is_described_and_bad_ones_fail_alone(service_factory, data_dir: Path) -> None:
    catalog = service_factory("catalog", env=CATALOG_ENV)
    preprocess = start_preprocess(service_factory, catalog.addr)
    driver = CatalogDriver(catalog.addr, blob_store(data_dir))
    dataset = driver.create_dataset()
    files = {
        "landscape.jpg": encode(gradient(2000, 1500), "JPEG"),
        "rotated.jpg": oriented_jpeg(6, 400, 200),
        "logo.png": encode(Image.new("RGBA", (300, 300), (0, 0, 0, 0)), "PNG"),
        "readme.txt": b"hello corral\n",
        "truncated.jpg": truncated_jpeg(),
        "bomb.png": png_declaring(100_000, 100_000),
        "garbage.png": garbage_with_png_header(),
    }
    items = {name: driver.create_item(dataset, name, data) for name, data in files.items()}
    systems = driver.wait_preprocessed([item.id for item in items.values()])
    by_name = {name: systems[item.id] for name, item in items.items()}

    for name in ("landscape.jpg", "rotated.jpg", "logo.png"):
        system = by_name[name]
        record = system["executionLogs"]["preprocess"]
        assert record["status"] == "success" and record["error"] is None, record
        assert record["blobKey"] == items[name].blob_key and record["attempts"] == 1
        assert record["durationMs"] >= 0 and record["finishedAt"]
        thumb = system["thumbnail"]
        item_id = items[name].id
        assert thumb["key"].startswith(f"thumbnails/{item_id[:2]}/{item_id}-")
        assert thumbnail_size(driver, thumb["key"]) == (thumb["width"], thumb["height"])
    assert by_name["landscape.jpg"]["thumbnail"]["width"] == 256
    rotated = by_name["rotated.jpg"]
    assert (rotated["exifOrientation"], rotated["width"], rotated["height"]) == (6, 200, 400)
    assert (rotated["displayWidth"], rotated["displayHeight"]) == (400, 200)
    assert by_name["logo.png"]["thumbnail"]["mimetype"] == "image/webp"
    assert by_name["readme.txt"]["mimetype"] == "text/plain"
    assert by_name["readme.txt"]["executionLogs"]["preprocess"]["status"] == "success"

    for name, reason in (("truncated.jpg", "truncated"), ("bomb.png", "decompression bomb"),
                         ("garbage.png", "corrupt")):
        system = by_name[name]
        record = system["executionLogs"]["preprocess"]
        assert record["status"] == "failed" and reason in record["error"], record
        assert system["name"] == name and system["size"] == len(files[name])
        assert system["mimetype"].startswith("image/")
        assert system.get("thumbnail") is None

    stats = wait_for(lambda: (s := get_stats(preprocess.addr)).lag == 0 and s, 20, "lag 0")
    assert (stats.processed, stats.failed, stats.skipped) == (4, 3, 0)
    assert stats.subscribed and stats.pool_processes == 2 and stats.in_flight == 0
    assert stats.committed_cursor

    # New content for an existing item: processed again, the old thumbnail is gone.
    old_thumbnail = by_name["landscape.jpg"]["thumbnail"]["key"]
    new = driver.create_item(dataset, "landscape.jpg", encode(gradient(300, 600), "PNG"),
                             overwrite=True)
    assert new.id == items["landscape.jpg"].id and new.blob_key != items["landscape.jpg"].blob_key
    system = driver.wait_preprocessed([new.id], blob_keys={new.id: new.blob_key})[new.id]
    assert (system["mimetype"], system["width"], system["height"]) == ("image/png", 300, 600)
    assert system["thumbnail"]["key"] != old_thumbnail
    assert not driver.store.exists(old_thumbnail)
    driver.close()


def test_restart_resumes_without_missing_or_repeating(service_factory, data_dir: Path) -> None:
    catalog = service_factory("catalog", env=CATALOG_ENV)
    driver = CatalogDriver(catalog.addr, blob_store(data_dir))
    dataset = driver.create_dataset()
    preprocess = start_preprocess(service_factory, catalog.addr)
    first = [driver.create_item(dataset, f"a{i}.jpg", encode(gradient(900 + i, 700), "JPEG"))
             for i in range(4)]
    done = driver.wait_preprocessed([item.id for item in first])
    finished_at = {i: s["executionLogs"]["preprocess"]["finishedAt"] for i, s in done.items()}
    wait_for(lambda: get_stats(preprocess.addr).lag == 0, 20, "progress committed")
    assert preprocess.stop() == 0

    # Created while no worker runs: picked up after the restart.
    second = [driver.create_item(dataset, f"b{i}.png", encode(gradient(500, 400 + i), "PNG"))
              for i in range(3)]
    restarted = start_preprocess(service_factory, catalog.addr)
    driver.wait_preprocessed([item.id for item in second])
    stats = wait_for(lambda: (s := get_stats(restarted.addr)).lag == 0 and s, 20, "lag 0")
    assert (stats.processed, stats.failed, stats.skipped) == (3, 0, 0)
    for item_id, when in finished_at.items():
        assert driver.record(item_id)["finishedAt"] == when  # not reprocessed
    restarted.stop()

    # A new consumer group re-reads the whole stream: everything is already done.
    fresh = start_preprocess(service_factory, catalog.addr, CORRAL_PREPROCESS_GROUP="audit")
    stats = wait_for(lambda: (s := get_stats(fresh.addr)).skipped == 7 and s, 30, "7 skipped")
    assert (stats.processed, stats.failed) == (0, 0)
    for item_id, when in finished_at.items():
        assert driver.record(item_id)["finishedAt"] == when
    driver.close()


def test_catalog_restart_is_survived(service_factory, data_dir: Path) -> None:
    catalog_addr = f"127.0.0.1:{free_port()}"
    catalog = service_factory("catalog", env=CATALOG_ENV, addr=catalog_addr)
    driver = CatalogDriver(catalog_addr, blob_store(data_dir))
    dataset = driver.create_dataset()
    preprocess = start_preprocess(service_factory, catalog_addr)
    before = driver.create_item(dataset, "before.jpg", encode(gradient(640, 480), "JPEG"))
    driver.wait_preprocessed([before.id])
    assert get_stats(preprocess.addr).subscribed  # the key is checked while the catalog is up

    catalog.stop()
    wait_for(lambda: not get_stats(preprocess.addr).subscribed, 20, "the stream to drop")
    service_factory("catalog", env=CATALOG_ENV, addr=catalog_addr)
    after = driver.create_item(dataset, "after.jpg", encode(gradient(640, 480), "JPEG"))
    driver.wait_preprocessed([after.id], timeout=30)
    stats = wait_for(lambda: (s := get_stats(preprocess.addr)).subscribed and s, 20, "resubscribe")
    assert stats.processed == 2 and stats.failed == 0
    driver.close()
