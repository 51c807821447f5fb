"""2,000 photo-like 640x480 JPEGs (~50 KB) through corral: uploaded and catalogued, then end to
end until every thumbnail and file info is written. Targets: >= 500 items/s uploaded and
catalogued, >= 400 items/s end to end.

Baselines from the same run, on the same files: copying them into a directory with an fsync
per file (the least any durable ingest must do), and plain Pillow open + thumbnail + save in
one process (the least any preprocessing must do).

    .venv/bin/python -m bench.small_images [--count 2000] [--workers 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench.common import Timer, cpu_seconds, record, running_services
from bench.images import write_jpegs
from corral.client import Client


def copy_with_fsync(files: list[Path], dest: Path) -> None:
    dest.mkdir()
    for path in files:
        target = dest / path.name
        shutil.copyfile(path, target)
        fd = os.open(target, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def pillow_thumbnails(files: list[Path], dest: Path) -> None:
    dest.mkdir()
    for path in files:
        with Image.open(path) as image:
            image.thumbnail((256, 256))
            image.save(dest / path.name, "JPEG", quality=85)


def wait_until_processed(client: Client, count: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = client.preprocess_stats()
        if stats.get("processed", 0) + stats.get("failed", 0) >= count:
            return stats
        time.sleep(0.02)
    raise TimeoutError(f"preprocessing did not finish within {timeout}s: {stats}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="corral-bench-", dir=Path.cwd()) as tmp:
        root = Path(tmp)
        files = write_jpegs(root / "images", args.count, 640, 480)
        mean_kib = sum(f.stat().st_size for f in files) / len(files) / 1024
        with Timer() as copy:
            copy_with_fsync(files, root / "copied")
        with Timer() as pillow:
            pillow_thumbnails(files, root / "thumbs")

        # Ingest path alone: catalog + upload, no preprocessing competing for the 2 cores.
        with running_services(("catalog", "upload"), data_dir=root / "ingest-only") as ingest:
            client = Client(ingest["catalog"].addr, ingest["upload"].addr)
            with client:
                client.create_dataset("bench-ingest")
                with Timer() as ingest_only:
                    summary = client.upload_paths([root / "images"], "bench-ingest",
                                                  workers=args.workers)
                assert summary.ok and len(summary.created) == args.count, summary.counts()

        with running_services(data_dir=root / "data") as services:
            client = Client(services["catalog"].addr, services["upload"].addr,
                            services["preprocess"].addr)
            with client:
                client.create_dataset("bench-small")
                started = time.perf_counter()
                summary = client.upload_paths([root / "images"], "bench-small",
                                              workers=args.workers)
                uploaded = time.perf_counter() - started
                assert summary.ok and len(summary.created) == args.count, summary.counts()
                stats = wait_until_processed(client, args.count, timeout=600)
                end_to_end = time.perf_counter() - started
                assert stats["failed"] == 0, stats
                cpu = {name: cpu_seconds(s.proc.pid) for name, s in services.items()}

    n = args.count
    record("small_images", [
        {"case": "baseline: copy + fsync per file", "items": n, "seconds": copy.seconds,
         "items/s": n / copy.seconds},
        {"case": "baseline: Pillow open+thumbnail+save, 1 process", "items": n,
         "seconds": pillow.seconds, "items/s": n / pillow.seconds},
        {"case": f"corral upload + catalog, no preprocess running ({args.workers} in flight)",
         "items": n, "seconds": ingest_only.seconds, "items/s": n / ingest_only.seconds,
         "target": ">= 500", "ratio vs copy": copy.seconds / ingest_only.seconds},
        {"case": "corral upload + catalog, preprocess running alongside", "items": n,
         "seconds": uploaded, "items/s": n / uploaded, "target": ">= 500",
         "ratio vs copy": copy.seconds / uploaded},
        {"case": "corral end to end (thumbnail + file info written)", "items": n,
         "seconds": end_to_end, "items/s": n / end_to_end, "target": ">= 400",
         "ratio vs Pillow": pillow.seconds / end_to_end},
    ])
    print(f"mean file size {mean_kib:.1f} KiB; CPU ms per item: "
          + ", ".join(f"{name} {1000 * sec / n:.2f}" for name, sec in cpu.items()))


if __name__ == "__main__":
    main()
