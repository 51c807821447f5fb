"""CSV import throughput. Targets: a 10,000-row link CSV at >= 2,000 rows/s; a 1,000-row
action=upload CSV whose URLs a loopback HTTP server serves (allowed by CORRAL_FETCH_ALLOW),
reported in rows/s with the fetch concurrency used.

Baselines from the same run: what a user without the import would do through the same
services: a loop calling client.link() once per row (link CSV), and a loop that downloads
each URL and uploads it with client.upload_bytes() (upload CSV).

    .venv/bin/python -m bench.csv_import [--links 10000] [--uploads 1000]
"""

from __future__ import annotations

import argparse
import csv
import io
import tempfile
import urllib.request
from pathlib import Path

from PIL import Image

from bench.common import Timer, cpu_seconds, peak_rss_mib, record, running_services
from bench.images import photo_like
from corral.client import Client
from tests.e2e.remote import RemoteFiles, serving

BASELINE_ROWS = 1000


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, ["ID", "URL", "action", "mimetype", "item_metadata"])
        writer.writeheader()
        writer.writerows(rows)


def link_rows(count: int, base: str) -> list[dict[str, str]]:
    return [{"ID": f"img-{i:06d}.jpg", "URL": f"{base}/images/{i}.jpg", "mimetype": "image/jpeg",
             "item_metadata": f'{{"camera": {i % 16}, "lot": "L{i // 100}"}}'}
            for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--links", type=int, default=10_000)
    parser.add_argument("--uploads", type=int, default=1_000)
    parser.add_argument("--big", type=int, default=100_000,
                        help="rows of a link CSV imported to show constant memory (0: skip)")
    args = parser.parse_args()

    pictures = [jpeg(photo_like(640, 480, seed)) for seed in range(50)]
    remote = RemoteFiles(files={f"/images/{i}.jpg": ("image/jpeg", pictures[i % 50])
                                for i in range(args.uploads)})
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp, serving(remote) as host:
        root, base = Path(tmp), f"http://{host}"
        links_csv, uploads_csv = root / "links.csv", root / "uploads.csv"
        write_csv(links_csv, link_rows(args.links, base))
        write_csv(uploads_csv, [{**row, "action": "upload"}
                                for row in link_rows(args.uploads, base)])
        # Only the ingest path: preprocessing would fetch every link too and share the cores.
        with running_services(("catalog", "upload"), env={"CORRAL_FETCH_ALLOW": host},
                              data_dir=root / "data") as services, \
                Client(services["catalog"].addr, services["upload"].addr) as client:
            client.create_dataset("bench-csv")
            with Timer() as link_baseline:
                for row in link_rows(BASELINE_ROWS, base):
                    client.link("bench-csv", row["URL"], remote_dir="/baseline-links",
                                name=row["ID"], metadata={"camera": 1})
            with Timer() as links:
                link_report = client.import_csv(links_csv, "bench-csv")
            assert link_report.created == args.links, link_report
            with Timer() as upload_baseline:
                for i in range(min(BASELINE_ROWS, args.uploads) // 4):
                    with urllib.request.urlopen(f"{base}/images/{i}.jpg") as response:  # noqa: S310
                        data = response.read()
                    client.upload_bytes(data, "bench-csv", f"{i}.jpg",
                                        remote_dir="/baseline-uploads")
            with Timer() as uploads:
                upload_report = client.import_csv(uploads_csv, "bench-csv")
            assert upload_report.created == args.uploads, upload_report
            cpu = {name: cpu_seconds(s.proc.pid) for name, s in services.items()}
            rss_before = peak_rss_mib(services["upload"].proc.pid)
            big_rows = []
            if args.big:
                big_csv = root / "big.csv"
                write_csv(big_csv, link_rows(args.big, base))
                with Timer() as big:
                    big_report = client.import_csv(big_csv, "bench-csv")
                assert big_report.created == args.big, big_report
                big_rows = [{
                    "case": f"corral import-csv, {args.big:,} link rows "
                            f"({big_csv.stat().st_size / 2**20:.1f} MiB CSV)",
                    "rows": args.big, "seconds": big.seconds, "rows/s": args.big / big.seconds,
                    "upload peak RSS MiB (before -> after)":
                        f"{rss_before:.0f} -> {peak_rss_mib(services['upload'].proc.pid):.0f}"}]

    baseline_links_rate = BASELINE_ROWS / link_baseline.seconds
    baseline_uploads_rate = (min(BASELINE_ROWS, args.uploads) // 4) / upload_baseline.seconds
    record("csv_import", [
        {"case": "baseline: client.link() per row", "rows": BASELINE_ROWS,
         "seconds": link_baseline.seconds, "rows/s": baseline_links_rate},
        {"case": "corral import-csv, link rows", "rows": args.links, "seconds": links.seconds,
         "rows/s": args.links / links.seconds, "target": ">= 2000",
         "ratio vs baseline": args.links / links.seconds / baseline_links_rate},
        {"case": "baseline: download + client.upload_bytes() per row",
         "rows": min(BASELINE_ROWS, args.uploads) // 4, "seconds": upload_baseline.seconds,
         "rows/s": baseline_uploads_rate},
        {"case": f"corral import-csv, action=upload rows "
                 f"(fetch concurrency {upload_report.fetch_concurrency})",
         "rows": args.uploads, "seconds": uploads.seconds,
         "rows/s": args.uploads / uploads.seconds,
         "ratio vs baseline": args.uploads / uploads.seconds / baseline_uploads_rate},
        *big_rows,
    ])
    mean_kib = sum(len(p) for p in pictures) / len(pictures) / 1024
    print(f"served images: mean {mean_kib:.1f} KiB; CPU seconds: "
          + ", ".join(f"{name} {sec:.1f}" for name, sec in cpu.items()))


if __name__ == "__main__":
    main()
