"""Abusive clients must not starve the others (issue 7): the latency of a well-behaved second
client — gRPC health checks on the upload service and the catalog, and small (10 KB) uploads
— quiet (the baseline) and while an abuser in another process holds

- 200 idle streams: 50 UploadItem calls that never send a message, 50 that send their spec
  and stall, 50 UploadItems (bulk) streams that open one file and stall, and 50 catalog
  Subscribe streams (on a dataset that gets no events) that never read;
- slow drips at 1 byte per second: 5 UploadItem streams sending a 1-byte chunk every second,
  and 10 raw TCP connections (5 to each service) sending the HTTP/2 client preface one byte
  per second.

The real catalog and upload services on loopback (SQLite + filesystem store); the abuser
spreads its streams over 10 connections per service. The second client runs rounds of
health(upload), health(catalog), upload 10 KB (one UploadItem message, no retries), a round
every 100 ms. Quiet and abused phases alternate (--rounds pairs of --uploads rounds each), so
drift and the noise of a shared machine fall on both. Reported: p50/p99/max per kind, quiet
and under abuse, their ratio and whether p99 < 100 ms; the services' CPU, descriptors and
memory per phase; the machine's CPU pressure (other load).

    .venv/bin/python -m bench.abuse [--uploads 100] [--rounds 2] [--interval 0.1]

tests/security/test_abuse.py runs the same scenario (this module's `Abuser` and
`second_client`) with a starvation bound instead of timings. The abuser is
`python -m bench.abuse --abuser ...`: it prints one JSON line when every stream is open,
abuses until its stdin closes (or --seconds pass), then prints a JSON summary and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import catalog_service_pb2_grpc as catalog_grpc
from corral.credentials import new_api_key
from corral.rpc import open_aio_channel, open_channel
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from corral.upload.v1 import upload_service_pb2_grpc as upload_grpc

IDLE_EACH = 50  # of the four idle kinds: 200 idle streams
GRPC_DRIPS = 5
TCP_DRIPS_EACH = 5  # per service
CHANNELS = 10  # the abuser spreads its streams over this many connections per service
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TARGET_P99_MS = 100.0
CALL_TIMEOUT_S = 10.0


# --- the abuser (its own process) ------------------------------------------------------------

@dataclass
class AbuseState:
    calls: list[Any] = field(default_factory=list)
    drip_bytes: int = 0
    tcp_sent: int = 0
    tcp_closed_by_server: int = 0
    tcp_open: int = 0


def _channels(addr: str) -> list[grpc.aio.Channel]:
    # A local subchannel pool per channel: one TCP connection each, as separate clients.
    return [open_aio_channel(addr, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(CHANNELS)]


def _spec(dataset_id: str, tag: str) -> upload_pb2.UploadSpec:
    return upload_pb2.UploadSpec(dataset_id=dataset_id, name=f"{tag}-{uuid.uuid4().hex}.bin")


async def _open_idle_streams(state: AbuseState, uploads: list[upload_grpc.UploadServiceStub],
                             catalogs: list[catalog_grpc.CatalogServiceStub],
                             dataset_id: str, subscribers: int, leased: bool) -> None:
    for i in range(IDLE_EACH):
        silent = uploads[i % CHANNELS].UploadItem()
        await silent.wait_for_connection()
        stalled = uploads[(i + 1) % CHANNELS].UploadItem()
        await stalled.write(upload_pb2.UploadItemRequest(spec=_spec(dataset_id, "stalled")))
        bulk = uploads[(i + 2) % CHANNELS].UploadItems()
        await bulk.write(upload_pb2.UploadItemsRequest(file_index=0,
                                                       spec=_spec(dataset_id, "bulk")))
        state.calls += [silent, stalled, bulk]
    for i in range(subscribers):
        # Never read: the catalog holds a stream (and its polling) for a client gone quiet.
        # (No wait_for_connection: it waits for the server's first message, which an idle
        # subscription never sends.)
        # Leased: as members of consumer groups (10 groups), like preprocess workers.
        group = {"consumer_group": f"abuse-{i % 10}", "lease_seconds": 30} if leased else {}
        state.calls.append(catalogs[i % CHANNELS].Subscribe(catalog_pb2.SubscribeRequest(
            dataset_id=dataset_id, start_position=catalog_pb2.START_POSITION_LATEST, **group)))
    await asyncio.sleep(1.0)  # the subscriptions reach the catalog


async def _grpc_drip(state: AbuseState, stub: upload_grpc.UploadServiceStub,
                     dataset_id: str, stop: asyncio.Event) -> None:
    call = stub.UploadItem()
    state.calls.append(call)
    await call.write(upload_pb2.UploadItemRequest(spec=_spec(dataset_id, "drip")))
    offset = 0
    while not stop.is_set() and not call.done():
        try:
            await call.write(upload_pb2.UploadItemRequest(write_offset=offset, data=b"x"))
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            return  # the server ended it; its status is in the summary
        offset += 1
        state.drip_bytes += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _tcp_drip(state: AbuseState, addr: str, stop: asyncio.Event) -> None:
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    state.tcp_open += 1
    try:
        for byte in H2_PREFACE:
            writer.write(bytes([byte]))
            await writer.drain()
            state.tcp_sent += 1
            with contextlib.suppress(TimeoutError):
                # Also notices the server closing the connection (EOF) while we dribble.
                data = await asyncio.wait_for(reader.read(4096), 1.0)
                if not data:
                    state.tcp_closed_by_server += 1
                    return
            if stop.is_set():
                return
        await stop.wait()  # the whole preface is out: now just hold the connection
    except (ConnectionError, OSError):
        state.tcp_closed_by_server += 1
    finally:
        state.tcp_open -= 1
        writer.close()


def _summary(state: AbuseState) -> dict[str, Any]:
    ended = Counter(call.code().name if not call.cancelled() else "CANCELLED"
                    for call in state.calls if call.done())
    return {"streams": len(state.calls), "open": sum(not call.done() for call in state.calls),
            "ended": dict(ended), "drip_bytes": state.drip_bytes, "tcp_sent": state.tcp_sent,
            "tcp_open": state.tcp_open, "tcp_closed_by_server": state.tcp_closed_by_server}


def _stdin_closed(loop: asyncio.AbstractEventLoop, leave: asyncio.Event) -> None:
    sys.stdin.read()  # returns at EOF: the parent wants us to stop
    loop.call_soon_threadsafe(leave.set)


async def run_abuser(upload_addr: str, catalog_addr: str, dataset_id: str,
                     seconds: float, subscribers: int = IDLE_EACH, leased: bool = False
                     ) -> None:
    # `leave`: time to go; `stop`: tells the drips, set only once the summary is taken.
    state, leave, stop = AbuseState(), asyncio.Event(), asyncio.Event()
    threading.Thread(target=_stdin_closed, args=(asyncio.get_running_loop(), leave),
                     daemon=True).start()
    upload_channels, catalog_channels = _channels(upload_addr), _channels(catalog_addr)
    uploads = [upload_grpc.UploadServiceStub(channel) for channel in upload_channels]
    catalogs = [catalog_grpc.CatalogServiceStub(channel) for channel in catalog_channels]
    tasks = [asyncio.create_task(_tcp_drip(state, addr, stop))
             for addr in (upload_addr, catalog_addr) for _ in range(TCP_DRIPS_EACH)]
    tasks += [asyncio.create_task(_grpc_drip(state, uploads[i % CHANNELS], dataset_id, stop))
              for i in range(GRPC_DRIPS)]
    await _open_idle_streams(state, uploads, catalogs, dataset_id, subscribers, leased)
    print(json.dumps({"ready": _summary(state)}), flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(leave.wait(), seconds)  # bounded even if nobody stops us
    summary = _summary(state)
    stop.set()
    for call in state.calls:
        call.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in upload_channels + catalog_channels:
        await channel.close()
    print(json.dumps({"summary": summary}), flush=True)


class Abuser:
    """`python -m bench.abuse --abuser` as a child process: start() returns once every stream
    is open; stop() ends it and returns its summary."""

    def __init__(self, upload_addr: str, catalog_addr: str, dataset_id: str,
                 max_seconds: float = 120.0, subscribers: int = IDLE_EACH,
                 leased: bool = False) -> None:
        root = Path(__file__).resolve().parents[1]
        python_path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        self._cmd = [sys.executable, "-m", "bench.abuse", "--abuser", "--upload-addr",
                     upload_addr, "--catalog-addr", catalog_addr, "--dataset-id", dataset_id,
                     "--seconds", str(max_seconds), "--subscribers", str(subscribers),
                     *(["--leased"] if leased else [])]
        self._env = {**os.environ, "PYTHONPATH": python_path}
        self._cwd = root
        self.proc: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        self.proc = subprocess.Popen(self._cmd, env=self._env, cwd=self._cwd, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self._read_line(timeout)
        if not line.startswith('{"ready"'):
            self.stop()
            raise RuntimeError(f"abuser did not get ready: {line!r}")
        self.ready = json.loads(line)["ready"]
        return self.ready

    def _read_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline() if readable else ""

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """Closes its stdin (it stops by itself); kills it only if it does not exit."""
        if self.proc is None:
            return {}
        try:
            out, _ = self.proc.communicate(timeout=timeout)  # closes its stdin first
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith('{"summary"')]
        return json.loads(lines[-1])["summary"] if lines else {}

    def __enter__(self) -> Abuser:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


# --- the second client -----------------------------------------------------------------------

KINDS = ("health upload", "health catalog", "upload 10 KB")


def second_client(upload_addr: str, catalog_addr: str, dataset_id: str, uploads: int,
                  size: int, interval: float = 0.0) -> dict[str, list[float]]:
    """Seconds per call of each kind; raises on the first failed call. A round (two health
    checks and an upload) starts every `interval` seconds, so the calls are spread over the
    abuse instead of finishing before the drips got going."""
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    data = os.urandom(size)
    with open_channel(upload_addr) as upload_channel, \
            open_channel(catalog_addr) as catalog_channel:
        checks = {"health upload": health_pb2_grpc.HealthStub(upload_channel),
                  "health catalog": health_pb2_grpc.HealthStub(catalog_channel)}
        stub = upload_grpc.UploadServiceStub(upload_channel)
        start = time.monotonic()
        for i in range(uploads):
            time.sleep(max(0.0, start + i * interval - time.monotonic()))
            for kind, health in checks.items():
                started = time.perf_counter()
                reply = health.Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
                latencies[kind].append(time.perf_counter() - started)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, kind
            request = upload_pb2.UploadItemRequest(
                spec=upload_pb2.UploadSpec(dataset_id=dataset_id, name=f"small-{i}.bin",
                                           request_id=uuid.uuid4().hex),
                data=data, finish_write=True)
            started = time.perf_counter()
            # One message, no SDK retries: a failure here is a failure of the service.
            reply = stub.UploadItem(iter([request]), timeout=CALL_TIMEOUT_S)
            latencies["upload 10 KB"].append(time.perf_counter() - started)
            assert reply.item.size == size, reply
    return latencies


def create_dataset(catalog_addr: str, name: str) -> str:
    with open_channel(catalog_addr) as channel:
        reply = catalog_grpc.CatalogServiceStub(channel).CreateDataset(
            catalog_pb2.CreateDatasetRequest(name=name), timeout=CALL_TIMEOUT_S)
    return reply.dataset.id


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# --- the benchmark ---------------------------------------------------------------------------

def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def resources(pids: dict[str, int]) -> dict[str, str]:
    """Open descriptors and resident memory of each service, e.g. "29 fds, 61 MiB"."""
    return {name: f"{open_fds(pid)} fds, {rss_mib(pid):.0f} MiB" for name, pid in pids.items()}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (from /proc: no psutil needed)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_pressure() -> float:
    """How much of the last 10 s runnable tasks waited for a CPU (%): other load on a
    shared machine shows here."""
    try:
        return float(Path("/proc/pressure/cpu").read_text().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50 ms": statistics.median(values) * 1000, "p99 ms": percentile(values, 0.99) * 1000,
            "max ms": max(values) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=100,
                        help="second-client rounds per phase (100)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="quiet + abused phase pairs, alternating (2)")
    parser.add_argument("--size", type=int, default=10 * 1024)
    parser.add_argument("--interval", type=float, default=0.1,
                        help="seconds between the second client's rounds (0.1)")
    parser.add_argument("--abuser", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--upload-addr", help=argparse.SUPPRESS)
    parser.add_argument("--catalog-addr", help=argparse.SUPPRESS)
    parser.add_argument("--dataset-id", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=120.0, help=argparse.SUPPRESS)
    parser.add_argument("--subscribers", type=int, default=IDLE_EACH,
                        help=f"idle Subscribe streams the abuser holds ({IDLE_EACH})")
    parser.add_argument("--leased", action="store_true",
                        help="the abuser's subscriptions join consumer groups (leased delivery)")
    args = parser.parse_args()
    if args.abuser:
        asyncio.run(run_abuser(args.upload_addr, args.catalog_addr, args.dataset_id,
                               args.seconds, args.subscribers, args.leased))
        return
    run_benchmark(args.uploads, args.size, args.interval, args.rounds, args.subscribers,
                  args.leased)


def run_benchmark(uploads: int, size: int, interval: float, rounds: int,
                  subscribers: int, leased: bool) -> None:
    from bench.common import record, running_services

    key = new_api_key()[1]
    os.environ["CORRAL_API_KEY"] = key  # this process and the abuser
    env = {"CORRAL_BOOTSTRAP_ADMIN_KEY": key}
    cases: dict[str, dict[str, list[float]]] = {
        case: {kind: [] for kind in KINDS} for case in ("quiet", "under abuse")}
    held: dict[str, list[dict[str, str]]] = {"quiet": [], "under abuse": []}
    cpu: dict[str, Counter[str]] = {"quiet": Counter(), "under abuse": Counter()}
    summaries, pressure = [], []
    with running_services(("catalog", "upload"), env=env) as services:
        upload, catalog = services["upload"], services["catalog"]
        pids = {"upload": upload.proc.pid, "catalog": catalog.proc.pid}
        dataset = create_dataset(catalog.addr, "second-client")
        abused = create_dataset(catalog.addr, "abuser")
        second_client(upload.addr, catalog.addr, dataset, 20, size)  # warm-up

        def measure(case: str) -> None:
            held[case].append(resources(pids))
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started = time.perf_counter()
            got = second_client(upload.addr, catalog.addr, dataset, uploads, size, interval)
            elapsed = time.perf_counter() - started
            for name, pid in pids.items():  # % of one core
                cpu[case][name] += 100 * (cpu_seconds(pid) - before[name]) / elapsed / rounds
            for kind in KINDS:
                cases[case][kind] += got[kind]
            pressure.append(cpu_pressure())

        # Quiet and abused phases alternate, so drift (a growing database) and the noise
        # of a shared machine fall on both alike.
        for _ in range(rounds):
            measure("quiet")
            with Abuser(upload.addr, catalog.addr, abused, subscribers=subscribers,
                        leased=leased) as abuser:
                time.sleep(2.0)  # the drips are dripping
                measure("under abuse")
                summaries.append({"ready": abuser.ready, "end": abuser.stop()})
            time.sleep(2.0)  # the services notice the abuser is gone
        held["after"] = [resources(pids)]
    rows = []
    for kind in KINDS:
        base, under = _stats(cases["quiet"][kind]), _stats(cases["under abuse"][kind])
        rows.append({"calls": kind, "case": "quiet", "n": len(cases["quiet"][kind]), **base})
        rows.append({"calls": kind, "case": "under abuse", "n": len(cases["under abuse"][kind]),
                     **under})
        rows.append({"calls": kind, "case": "ratio abuse / quiet", "n": "",
                     **{k: under[k] / base[k] for k in base},
                     "p99 < 100 ms": "yes" if under["p99 ms"] < TARGET_P99_MS else "NO"})
    record("abuse", rows)
    for summary in summaries:
        print(f"abuser: {summary}")
    print(f"fds / RSS at each phase's start, and after: {held}")
    print(f"services' CPU, % of one core: { {case: dict(c) for case, c in cpu.items()} }")
    print(f"machine CPU pressure (some avg10, %) after each phase: {pressure}")


if __name__ == "__main__":
    main()
