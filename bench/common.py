"""Benchmark helpers: start the real services on free loopback ports, read peak memory, and
print/record results (baseline and corral from the same run, with their ratio)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from corral.credentials import new_api_key
from corral.launcher import ServiceProcess

RESULTS = Path(__file__).resolve().parent / "results"


@contextlib.contextmanager
def running_services(names: tuple[str, ...] = ("catalog", "upload", "preprocess"),
                     env: dict[str, str] | None = None,
                     data_dir: Path | None = None) -> Iterator[dict[str, ServiceProcess]]:
    """Starts the named services (catalog first) sharing one data directory. The catalog
    registers this process's admin key, which every client of the benchmark then sends."""
    admin_key = os.environ.setdefault("CORRAL_API_KEY", new_api_key()[1])
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="corral-bench-")
            data_dir = Path(stack.enter_context(tmp))
        data_dir.mkdir(parents=True, exist_ok=True)
        base_env = {"CORRAL_DATA_DIR": str(data_dir), "CORRAL_LOG_LEVEL": "warning",
                    "CORRAL_BOOTSTRAP_ADMIN_KEY": admin_key, **(env or {})}
        started: dict[str, ServiceProcess] = {}
        for name in names:
            service_env = dict(base_env)
            if name != "catalog" and "catalog" in started:
                service_env["CORRAL_CATALOG_ADDR"] = started["catalog"].addr
            service = ServiceProcess(name, "127.0.0.1:0", env=service_env,
                                     log_path=data_dir / f"{name}.log")
            stack.callback(service.stop)
            started[name] = service.start()
        yield started


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants so far, including
    children that already exited (recycled pool processes)."""
    import psutil

    process = psutil.Process(pid)
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            # children_*: descendants this process already reaped (recycled pool workers).
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            continue
    return total


def machine() -> str:
    cpu = "unknown cpu"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    jpeg_ms, python_ms = host_speed()
    return (f"{os.cpu_count()} cores, {cpu}, {mem_gib:.0f} GiB, Python "
            f"{platform.python_version()}, host speed: JPEG {jpeg_ms:.3f} ms, Python "
            f"{python_ms:.1f} ms")


def host_speed() -> tuple[float, float]:
    """Yardsticks for comparing runs made on different hosts: machines of one kind land on
    hosts of different speeds (half-scale decodes of these JPEGs took 0.68 ms in one session
    and 0.85 ms in the next). Milliseconds one core takes to decode a photo-like 640x480 JPEG
    at half scale with OpenCV (most of preprocessing's work per image), and to run a fixed
    piece of pure Python (most of the services' work per item); best of 5."""
    import cv2
    import numpy as np

    from bench.images import photo_like

    buffer = io.BytesIO()
    photo_like(640, 480, seed=0).save(buffer, "JPEG", quality=85)
    jpeg = np.frombuffer(buffer.getvalue(), np.uint8)

    def decode() -> None:
        for _ in range(50):
            cv2.imdecode(jpeg, cv2.IMREAD_REDUCED_COLOR_2)

    def python() -> None:
        counts: dict[int, int] = {}
        for i in range(200_000):
            counts[i % 97] = counts.get(i % 97, 0) + len(str(i))

    return _best_ms(decode) / 50, _best_ms(python)


def _best_ms(work: Callable[[], None], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def settle_writeback() -> None:
    """Writes out the dirty pages the benchmark's own setup left (input files, baselines'
    unsynced output), so that the kernel's background writeback of them does not compete
    with the next measured case for the disk and the CPU."""
    os.sync()


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def record(bench: str, rows: list[dict]) -> None:
    """Prints the rows and appends them, with date and machine, to bench/results/<bench>.json."""
    RESULTS.mkdir(exist_ok=True)
    entry = {"bench": bench, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
             "machine": machine(), "rows": rows}
    with (RESULTS / f"{bench}.json").open("a") as out:
        out.write(json.dumps(entry) + "\n")
    print(f"\n## {bench} — {entry['date']} — {entry['machine']}")
    keys = list(dict.fromkeys(k for row in rows for k in row))
    print("| " + " | ".join(keys) + " |")
    print("|" + " --- |" * len(keys))
    for row in rows:
        print("| " + " | ".join(_fmt(row.get(k, "")) for k in keys) + " |")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    return str(value)
