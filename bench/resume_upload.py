"""A 1 GiB file uploaded through the SDK uninterrupted, against the same upload interrupted
once at about half way: the upload service process (started by this benchmark) is SIGKILLed,
started again on the same address and data directory, and the SDK resumes the session from
what the service had persisted. Reported: both times and their ratio, the bytes sent twice
(what was sent but not yet persisted when the service died), and whether the final sha256
matches the file. The write + fsync of the same GiB to the same disk is given for context.

    .venv/bin/python -m bench.resume_upload [--mib 1024] [--kill-at 0.5]

The SDK sends files above 16 MiB through a resumable session (corral.client.resumable); the
service persists a session every CORRAL_UPLOAD_SESSION_PERSIST_BYTES (32 MiB by default).
The interrupted time includes the restart of the service (a new Python process becoming
SERVING) and the SDK's first back-off pause (0.25 s).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

from bench.common import Timer, record, running_services
from corral.client import Client, UploadEvent
from corral.launcher import ServiceProcess

MIB = 1024 * 1024


def write_source(path: Path, mib: int) -> str:
    """`mib` MiB of random bytes (8 MiB blocks, not repeated: nothing compresses or dedups)."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(mib // 8):
            block = os.urandom(8 * MIB)
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def baseline_write(source: Path, target: Path) -> None:
    """Copies the file in 1 MiB writes and fsyncs it once (source is in the page cache)."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with source.open("rb") as src:
            while chunk := src.read(MIB):
                os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)


class Interrupter:
    """Progress callback: once `kill_at` bytes were handed to gRPC, SIGKILLs the upload
    service and starts it again on the same address and data directory. It runs in the thread
    feeding the request stream, so no more bytes are sent meanwhile (as in the fault test)."""

    def __init__(self, upload: ServiceProcess | None, kill_at: int) -> None:
        self.upload, self.kill_at = upload, kill_at
        self.sent = 0  # every byte handed to the stream, resent ones included
        self.killed_after = 0
        self.restart_seconds = 0.0

    def __call__(self, event: UploadEvent) -> None:
        if event.kind != "bytes" or event.bytes <= 0:
            return  # a negative count is the SDK rewinding to the persisted size
        self.sent += event.bytes
        if self.upload is None or self.killed_after or self.sent < self.kill_at:
            return
        self.killed_after = self.sent
        started = time.perf_counter()
        old = self.upload
        old.kill()  # SIGKILL
        old.stop()  # closes its log; the process is already gone
        self.upload = ServiceProcess("upload", old.addr, env=old.env, log_path=old.log_path)
        self.upload.start()  # same address, environment and data directory
        self.restart_seconds = time.perf_counter() - started


def upload(services: dict[str, ServiceProcess], dataset: str, source: Path,
           interrupter: Interrupter) -> tuple[float, object]:
    with Client(services["catalog"].addr, services["upload"].addr) as client:
        client.create_dataset(dataset)
        with Timer() as timer:
            summary = client.upload_paths([source], dataset, progress=interrupter)
    assert summary.failures == [], summary.failures
    [result] = summary.results
    return timer.seconds, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction sent when killed")
    args = parser.parse_args()
    size = args.mib * MIB

    with tempfile.TemporaryDirectory(prefix="corral-bench-", dir=Path.cwd()) as tmp:
        root = Path(tmp)
        source = root / "big.bin"
        sha256 = write_source(source, args.mib)
        with Timer() as base:
            baseline_write(source, root / "baseline.bin")
        (root / "baseline.bin").unlink()

        rows = [{"case": "baseline: write + fsync to the same disk", "MiB": args.mib,
                 "seconds": base.seconds, "MiB/s": args.mib / base.seconds}]
        # Each case on its own services and data directory (same disk), so neither finds
        # the other's blob or pays for its deletion.
        for interrupted in (False, True):
            with running_services(("catalog", "upload"),
                                  data_dir=root / f"data-{int(interrupted)}") as services:
                interrupter = Interrupter(services["upload"] if interrupted else None,
                                          int(size * args.kill_at))
                try:
                    seconds, result = upload(services, f"big-{int(interrupted)}", source,
                                             interrupter)
                finally:
                    if interrupter.upload not in (None, services["upload"]):
                        interrupter.upload.stop()  # the restarted one
            assert result.item["size"] == size
            matches = result.item["sha256"] == sha256
            resent = interrupter.sent - size
            row = {"case": ("corral SDK, killed + restarted once at "
                            f"{interrupter.killed_after / MIB:,.0f} MiB sent")
                   if interrupted else "corral SDK, uninterrupted (resumable session)",
                   "MiB": args.mib, "seconds": seconds, "MiB/s": args.mib / seconds,
                   "resumed from MiB": ", ".join(f"{o / MIB:,.0f}" for o in result.resumed_from),
                   "MiB sent twice": resent / MIB,
                   "restart s": interrupter.restart_seconds if interrupted else "",
                   "sha256 matches": "yes" if matches else "NO"}
            rows.append(row)
            assert interrupted == bool(result.resumed_from), result.resumed_from

    plain, resumed = rows[1]["seconds"], rows[2]["seconds"]
    rows[1]["ratio vs baseline"] = base.seconds / plain
    rows[2]["ratio vs baseline"] = base.seconds / resumed
    rows[2]["time vs uninterrupted"] = resumed / plain
    record("resume_upload", rows)


if __name__ == "__main__":
    main()
