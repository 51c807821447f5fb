"""Metadata at scale: bulk-load 1,000,000 items with user metadata into SQLite and into
PostgreSQL, then measure queries over real gRPC against a running catalog service.

Load: services.catalog.bulk.insert_items, the domain-level bulk path (5,000 items, their
folders and their CREATED events per transaction), called in this process; every item goes
through the same validation and JSON encoding as CreateItem. Target >= 20,000 items/s.

Queries: ListItems pages (page_size 100) through the catalog service (a child process on
loopback, the same binary as production), timed in the client from request to response:
  - equality on a user metadata key (metadata.user.lot, 100 matches: selective),
  - a range on size (~500 matches),
  - a folder listing page (one of 1,000 folders of 1,000 items),
  - a compound and/or filter ((lot = a | lot = b) & area = north & size > x),
  - UpdateMatchingItems setting a key on the 10,000 items of one camera.
Targets: selective filters and listing pages p50 <= 10 ms, p99 <= 50 ms.

    .venv/bin/python -m bench.metadata_queries [--count 1000000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
from google.protobuf.field_mask_pb2 import FieldMask

from bench.common import Timer, record, running_services
from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import catalog_service_pb2_grpc as api_grpc
from corral.client.filters import Filter, field, to_filter
from corral.rpc import open_channel
from corral.structs import dict_to_struct
from services.catalog import bulk, datasets
from services.catalog.app import open_database
from services.catalog.repository import Store

PG_ADMIN_DSN = os.environ.get("CORRAL_BENCH_PG_DSN",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
INDEXED = "camera,lot"
AREAS = ("north", "south", "east", "west")
FOLDER_SIZE = 1000
CAMERAS = 100  # 10,000 items per camera at 1M items: the bulk update's batch
LOTS = 10_000  # 100 items per lot: the selective equality
SIZES = 5_000_000
TARGET_LOAD = 20_000
TARGET_P50_MS, TARGET_P99_MS = 10.0, 50.0


def entries(count: int) -> Iterator[bulk.BulkItem]:
    for i in range(count):
        yield bulk.BulkItem(
            dir=f"/batch{i // FOLDER_SIZE:04d}", name=f"img{i:07d}.jpg",
            size=i * 7919 % SIZES, sha256="0" * 64, blob_key=f"items/bench/{i}",
            user_metadata={"camera": i % CAMERAS, "lot": i % LOTS, "area": AREAS[i % 4],
                           "score": i * 31 % 1000 / 10, "reviewed": False},
            system_metadata={"mimetype": "image/png" if i % 100 == 0 else "image/jpeg",
                             "width": 640, "height": 480})


@contextlib.contextmanager
def database(kind: str, work: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{work / 'catalog.db'}"
        return
    name = f"corral_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}".replace(
            "postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def load(url: str, count: int) -> tuple[str, float]:
    db = open_database(url, INDEXED)
    store = Store(db)
    dataset = datasets.create_dataset(store, "bench", "", "")
    with Timer() as timer:
        loaded = bulk.insert_items(store, dataset.id, entries(count))
    assert loaded == count
    if db.is_postgres:
        # What autovacuum does after a load this size, so the planner has statistics.
        with db.engine.connect() as conn:
            conn.connection.driver_connection.autocommit = True
            conn.exec_driver_sql("VACUUM ANALYZE items")
    db.dispose()
    return dataset.id, count / timer.seconds


def listing(dataset_id: str, item_filter: Filter | None = None, dir: str = "/",
            recursive: bool = True, order: list | None = None) -> api.ListItemsRequest:
    request = api.ListItemsRequest(dataset_id=dataset_id, dir=dir, recursive=recursive,
                                   page_size=100, order_by=order or [])
    if item_filter is not None:
        request.filter.CopyFrom(item_filter.to_proto())
    return request


def timed(call: Callable[[], object], runs: int, warmup: int = 10) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def measure(stub: api_grpc.CatalogServiceStub, dataset_id: str, count: int, runs: int,
            rng: random.Random) -> Iterator[tuple[str, list[float], bool]]:
    folders = max(1, count // FOLDER_SIZE)

    def page(make: Callable[[], api.ListItemsRequest]) -> Callable[[], object]:
        return lambda: stub.ListItems(make(), timeout=60)

    lot = field("metadata.user.lot")
    cases = [
        ("equality metadata.user.lot (100 matches)",
         page(lambda: listing(dataset_id, lot == rng.randrange(LOTS))), True),
        ("range size (~500 matches)",
         page(lambda: _size_range(dataset_id, rng)), True),
        ("folder listing page (1,000 items)",
         page(lambda: listing(dataset_id, dir=f"/batch{rng.randrange(folders):04d}",
                              recursive=False)), True),
        ("compound (lot=a | lot=b) & area=north & size>x",
         page(lambda: listing(dataset_id, ((lot == rng.randrange(LOTS)) | (
             lot == rng.randrange(LOTS))) & (field("metadata.user.area") == "north") & (
             field("size") > rng.randrange(SIZES // 2)))), True),
        ("equality mimetype=image/png (1%), page 1",
         page(lambda: listing(dataset_id, to_filter("mimetype=image/png"))), False),
    ]
    for name, call, selective in cases:
        yield name, timed(call, runs), selective
    cameras = iter(rng.sample(range(CAMERAS), CAMERAS))

    def bulk_update() -> None:
        request = api.UpdateMatchingItemsRequest(
            dataset_id=dataset_id, filter=(field("metadata.user.camera") == next(cameras)
                                           ).to_proto(),
            user_metadata=dict_to_struct({"reviewed": True}),
            update_mask=FieldMask(paths=["metadata.user.*"]))
        updated = stub.UpdateMatchingItems(request, timeout=600).updated_items
        assert updated == count // CAMERAS, updated

    yield (f"bulk update of {count // CAMERAS:,} items (UpdateMatchingItems)",
           timed(bulk_update, runs=min(10, CAMERAS - 2), warmup=1), False)


def _size_range(dataset_id: str, rng: random.Random) -> api.ListItemsRequest:
    low = rng.randrange(SIZES - 2500)
    return listing(dataset_id, (field("size") >= low) & (field("size") < low + 2500))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(7)
    rows = []
    for kind in args.databases.split(","):
        with tempfile.TemporaryDirectory(prefix="corral-bench-", dir=Path.cwd()) as tmp, \
                database(kind, Path(tmp)) as url:
            dataset_id, rate = load(url, args.count)
            rows.append({"database": kind, "case": f"bulk load {args.count:,} items",
                         "items/s": rate, "target": f">= {TARGET_LOAD:,}",
                         "ratio to target": rate / TARGET_LOAD})
            print(rows[-1], flush=True)
            env = {"CORRAL_DATABASE_URL": url, "CORRAL_CATALOG_METADATA_INDEXES": INDEXED}
            with running_services(("catalog",), env=env, data_dir=Path(tmp) / "data") as svc, \
                    open_channel(svc["catalog"].addr) as channel:
                stub = api_grpc.CatalogServiceStub(channel)
                for name, samples, selective in measure(stub, dataset_id, args.count,
                                                        args.runs, rng):
                    p50, p99 = percentile(samples, 50), percentile(samples, 99)
                    row = {"database": kind, "case": name, "runs": len(samples),
                           "p50 ms": p50, "p99 ms": p99}
                    if selective:
                        row.update(target=f"p50 <= {TARGET_P50_MS:g}, p99 <= {TARGET_P99_MS:g}",
                                   **{"ratio to target": max(p50 / TARGET_P50_MS,
                                                             p99 / TARGET_P99_MS)})
                    rows.append(row)
                    print(row, flush=True)
    record("metadata_queries", rows)


if __name__ == "__main__":
    main()
