"""Private preprocessing isolation: the latency of a private dataset's new items (upload ->
thumbnail written) with and without a 5,000-item backlog in another, global dataset.

The real services on loopback: catalog, upload, the shared preprocess pool and a private
worker for the dataset "private" (corral preprocess --dataset private runs the same service).
Both runs are in the same benchmark:

1. without backlog: `--samples` items uploaded one at a time into the private dataset, each
   timed from the start of its upload until its thumbnail is in the catalog;
2. with backlog: the shared pool is stopped, `--backlog` small JPEGs are bulk-uploaded into a
   global dataset (so its consumer group holds exactly that backlog), one probe item goes
   into a second global dataset, the pool is started again and, while it works through the
   backlog on the same cores, the private items are timed the same way.

Reported: p50/p95/max per run, the ratio with/without, the backlog left when the private
samples finished, and how long the global probe item waited (what a new item of a global
dataset waits behind the backlog, i.e. what private mode avoids).

    .venv/bin/python -m bench.private_latency [--backlog 5000] [--samples 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import record, running_services
from bench.images import write_jpegs
from corral.client import Client
from corral.launcher import ServiceProcess

POLL_SECONDS = 0.005


def has_thumbnail(client: Client, item_id: str) -> bool:
    system = client.get_item(item_id)["metadata"]["system"]
    return bool(system.get("thumbnail"))


def wait_thumbnail(client: Client, item_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not has_thumbnail(client, item_id):
        if time.monotonic() > deadline:
            raise TimeoutError(f"item {item_id} got no thumbnail within {timeout}s")
        time.sleep(POLL_SECONDS)


def time_private_items(client: Client, files: list[Path], timeout: float) -> list[float]:
    """Seconds from the start of each upload until its thumbnail is written, one at a time."""
    latencies = []
    for path in files:
        started = time.perf_counter()
        item = client.upload_file(path, "private").item
        wait_thumbnail(client, item["id"], timeout)
        latencies.append(time.perf_counter() - started)
        time.sleep(0.05)
    return latencies


def summary(name: str, latencies: list[float], **extra: object) -> dict:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"case": name, "items": len(ordered),
            "p50_ms": statistics.median(ordered) * 1000, "p95_ms": p95 * 1000,
            "max_ms": ordered[-1] * 1000, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--size", default="320x240", help="JPEG size of every item (320x240)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        root = Path(tmp)
        backlog_files = write_jpegs(root / "backlog", args.backlog, width, height, seed=1)
        quiet = write_jpegs(root / "quiet", args.samples + 3, width, height, seed=100)
        busy = write_jpegs(root / "busy", args.samples, width, height, seed=200)
        probe = write_jpegs(root / "probe", 1, width, height, seed=300)
        data_dir = root / "data"
        with running_services(data_dir=data_dir) as services:
            addrs = {"catalog_addr": services["catalog"].addr,
                     "upload_addr": services["upload"].addr,
                     "preprocess_addr": services["preprocess"].addr}
            env = {"CORRAL_DATA_DIR": str(data_dir), "CORRAL_LOG_LEVEL": "warning",
                   "CORRAL_CATALOG_ADDR": services["catalog"].addr}
            with Client(**addrs) as client:
                client.create_dataset("backlog")
                client.create_dataset("probe")
                client.create_dataset("private")
                client.set_dataset_preprocessing("private", "private")
                private = ServiceProcess(
                    "preprocess", "127.0.0.1:0",
                    env={**env, "CORRAL_PREPROCESS_DATASET": "private"},
                    log_path=data_dir / "private.log").start()
                try:
                    time_private_items(client, quiet[:3], 60)  # warm up both paths
                    without = time_private_items(client, quiet[3:], 60)

                    services["preprocess"].stop()
                    t0 = time.perf_counter()
                    uploaded = client.upload_paths(backlog_files, "backlog")
                    upload_seconds = time.perf_counter() - t0
                    assert uploaded.ok, uploaded.counts()
                    probe_started = time.perf_counter()
                    probe_item = client.upload_file(probe[0], "probe").item
                    pool = ServiceProcess("preprocess", "127.0.0.1:0", env=env,
                                          log_path=data_dir / "pool.log").start()
                    services["preprocess"] = pool
                    with Client(catalog_addr=addrs["catalog_addr"],
                                preprocess_addr=pool.addr) as pool_client:
                        backlog_at_start = pool_client.preprocess_stats()["lag"]
                        with_backlog = time_private_items(client, busy, 60)
                        backlog_at_end = pool_client.preprocess_stats()["lag"]
                        wait_thumbnail(client, probe_item["id"], 600)
                        probe_wait = time.perf_counter() - probe_started
                finally:
                    private.stop()

    quiet_row = summary("private, no backlog", without)
    busy_row = summary(f"private, {args.backlog:,}-item backlog in a global dataset",
                       with_backlog, backlog_at_start=backlog_at_start,
                       backlog_at_end=backlog_at_end)
    ratio = busy_row["p50_ms"] / quiet_row["p50_ms"]
    record("private_latency", [
        quiet_row, busy_row,
        {"case": "ratio with/without (p50)", "p50_ms": ratio,
         "p95_ms": busy_row["p95_ms"] / quiet_row["p95_ms"]},
        {"case": "global probe item behind the backlog", "items": 1,
         "p50_ms": probe_wait * 1000, "max_ms": probe_wait * 1000},
    ])
    print(f"\nbacklog of {args.backlog:,} uploaded in {upload_seconds:.1f}s; private p50 "
          f"{quiet_row['p50_ms']:.0f} ms without, {busy_row['p50_ms']:.0f} ms with "
          f"(ratio {ratio:.2f}); a global item behind the backlog waited {probe_wait:.1f}s")


if __name__ == "__main__":
    main()
