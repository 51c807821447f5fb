"""Hostile images in one ingest with good ones, end to end through the real catalog and
preprocess services: each bomb marks exactly its own item failed, the others are processed,
and the service stays healthy and keeps working."""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .catalog_helpers import CatalogDriver, blob_store, get_stats, wait_for
from .images import blank_png, encode, gradient, text_chunk_bomb
from .test_worker import CATALOG_ENV, start_preprocess


def test_bombs_fail_alone_and_the_service_stays_healthy(service_factory, tmp_path: Path) -> None:
    catalog = service_factory("catalog", env=CATALOG_ENV)
    # The default pixel limit (100 megapixels), and a memory limit far below what the
    # in-limit bomb needs (400 MB), beyond what a decoding process starts with.
    preprocess = start_preprocess(service_factory, catalog.addr,
                                  CORRAL_PREPROCESS_MEMORY_LIMIT_MB="384")
    driver = CatalogDriver(catalog.addr, blob_store(tmp_path / "data"))
    dataset = driver.create_dataset()
    files = {
        "photo.jpg": encode(gradient(1600, 1200), "JPEG"),
        # 400 megapixels at one bit each: ~50 KB on disk, 400 MB once decoded to 8 bits.
        "400-megapixels.png": blank_png(20_000, 20_000, bit_depth=1, colour_type=0),
        # Just under 100 megapixels RGBA: within the pixel limit, 400 MB decoded, ~400 KB.
        "memory-bomb.png": blank_png(10_000, 9_999, colour_type=6),
        # A metadata chunk inflating to 64 MB.
        "text-bomb.png": text_chunk_bomb(),
        "logo.png": encode(gradient(300, 300, "RGBA"), "PNG"),
    }
    assert len(files["400-megapixels.png"]) < 100_000
    items = {name: driver.create_item(dataset, name, data) for name, data in files.items()}
    systems = driver.wait_preprocessed([item.id for item in items.values()], timeout=120)
    records = {name: systems[item.id]["executionLogs"]["preprocess"]
               for name, item in items.items()}

    for name, reason in (("400-megapixels.png", "decompression bomb"),
                         ("memory-bomb.png", "out of memory"),
                         ("text-bomb.png", "Decompressed data too large")):
        assert records[name]["status"] == "failed", (name, records[name])
        assert reason in records[name]["error"], (name, records[name])
        assert systems[items[name].id].get("thumbnail") is None
    for name in ("photo.jpg", "logo.png"):
        assert records[name]["status"] == "success", (name, records[name])
        assert systems[items[name].id]["thumbnail"]["width"] == 256

    stats = wait_for(lambda: (s := get_stats(preprocess.addr)).lag == 0 and s, 30, "lag 0")
    assert (stats.processed, stats.failed) == (2, 3)
    with grpc.insecure_channel(preprocess.addr) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                           timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    # And it keeps working: an item ingested after the bombs is processed as usual.
    after = driver.create_item(dataset, "after.jpg", encode(gradient(640, 480), "JPEG"))
    assert driver.wait_preprocessed([after.id])[after.id]["executionLogs"]["preprocess"][
        "status"] == "success"
    driver.close()
