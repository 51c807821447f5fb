"""Events per second through 3 concurrent triggers with trivial functions, against each
trigger alone, on SQLite and on PostgreSQL (a dedicated database, dropped at the end).

A fresh stack per case: catalog + upload (no preprocess, so the cores go to the triggers),
one dataset, the case's triggers created on it (action `created`, mode `once`) BEFORE any
item (a trigger's group starts at the head of the stream), one `corral worker` subprocess
per trigger (default concurrency 4, its usual INFO log to a file). Once every worker has
printed its start line, `--items` file items with made-up blob keys are created through
BatchCreateItems (1,000 per call; no function reads bytes) and the clock runs from the first
call until GetConsumerGroup("trigger:<name>") reports no pending and no leased event, per
trigger. Item creation is inside the timed window (it overlaps the draining).

The trivial functions:
  noop    returns at once (no filter: every item runs);
  system  ctx.set_system({"ok": 1}) (stored with the run record, no extra write);
  half    returns at once, filter name~*-a.bin, which half of the items match (the other
          half are acknowledged without a run).

Cases: each trigger alone (1 trigger, 1 worker) and the three together (3 workers). The
ratio of a trigger in the concurrent case is its events/s over its rate alone. Every event
counts, matched or not; the runs are checked afterwards (executionLogs.<trigger> success on
every matching item, metadata.system.system.ok on every item).

    .venv/bin/python -m bench.triggers [--items 3000] [--databases sqlite,postgresql]
                                       [--alone noop,system,half]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import Timer, cpu_seconds, record, running_services
from bench.events import database
from corral.catalog.v1 import catalog_service_pb2 as pb
from corral.catalog.v1 import catalog_service_pb2_grpc as pb_grpc
from corral.client import Client
from corral.rpc import CHANNEL_OPTIONS, open_channel

BATCH = 1000  # BatchCreateItems' limit
POLL_SECONDS = 0.05
WAIT_SECONDS = 900
READY_LINE = "running bench.triggers:"


# The trigger functions (`corral worker --function bench.triggers:<name>`).

def noop(item: dict, ctx: Any) -> None:
    return None


def set_system(item: dict, ctx: Any) -> None:
    ctx.set_system({"ok": 1})


# trigger name -> (function, filter, fraction of items that match)
TRIGGERS: dict[str, tuple[str, str | None, float]] = {
    "noop": ("noop", None, 1.0),
    "system": ("set_system", None, 1.0),
    "half": ("noop", "name~*-a.bin", 0.5),
}


def create_items(stub: pb_grpc.CatalogServiceStub, dataset_id: str, count: int) -> None:
    """`count` file items in "/" named e<i>-a.bin / e<i>-b.bin alternately."""
    for start in range(0, count, BATCH):
        requests = [pb.CreateItemRequest(
            dataset_id=dataset_id, dir="/", name=f"e{i:07d}-{'ab'[i % 2]}.bin", size=3,
            sha256=f"{i:064x}", blob_key=f"items/{dataset_id}/{uuid.uuid4().hex}")
            for i in range(start, min(count, start + BATCH))]
        reply = stub.BatchCreateItems(pb.BatchCreateItemsRequest(requests=requests), timeout=60)
        errors = [r.error for r in reply.results if r.HasField("error")]
        assert not errors, errors[:3]


def wait_all_drained(stub: pb_grpc.CatalogServiceStub, names: list[str]) -> dict[str, float]:
    """Polls each trigger's group until it has nothing pending or leased; returns when each
    was first seen drained (perf_counter)."""
    done: dict[str, float] = {}
    deadline = time.monotonic() + WAIT_SECONDS
    while len(done) < len(names):
        if time.monotonic() > deadline:
            raise TimeoutError(f"triggers {set(names) - set(done)} not drained")
        for name in names:
            if name in done:
                continue
            state = stub.GetConsumerGroup(
                pb.GetConsumerGroupRequest(consumer_group=f"trigger:{name}"), timeout=10)
            if state.committed_cursor and state.pending_events == 0 \
                    and state.leased_events == 0:
                done[name] = time.perf_counter()
        time.sleep(POLL_SECONDS)
    return done


def start_worker(name: str, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    function = TRIGGERS[name][0]
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral.cli.main", "worker", "--trigger", name,
         "--function", f"bench.triggers:{function}"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=Path.cwd())
    log.close()
    return proc


def wait_ready(procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + 60
    while not all(READY_LINE in log.read_text(errors="replace") for log in logs):
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited: {log.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError("workers did not start")
        time.sleep(0.1)


def check_runs(client: Client, names: list[str], count: int) -> dict[str, int]:
    """How many items each trigger ran successfully on; asserts the expected numbers."""
    runs = dict.fromkeys(names, 0)
    stored = 0
    for item in client.list_items("bench", recursive=True):
        system = item.get("metadata", {}).get("system", {})
        logs = system.get("executionLogs", {})
        for name in names:
            if logs.get(name, {}).get("status") == "success":
                runs[name] += 1
        stored += system.get("system", {}).get("ok") == 1
    for name in names:
        expected = round(count * TRIGGERS[name][2])
        assert runs[name] == expected, (name, runs[name], expected)
    if "system" in names:
        assert stored == count, stored
    return runs


def case(db: str, root: Path, names: list[str], count: int) -> dict[str, Any]:
    data_dir = root / f"{db}-{'+'.join(names)}"
    data_dir.mkdir()
    with (database(db, data_dir) as url,
          running_services(("catalog", "upload"), env={"CORRAL_DATABASE_URL": url},
                           data_dir=data_dir) as services,
          contextlib.ExitStack() as stack):
        catalog, upload = services["catalog"], services["upload"]
        client = stack.enter_context(Client(catalog.addr, upload.addr))
        dataset_id = client.create_dataset("bench")["id"]
        for name in names:
            client.create_trigger(name, dataset="bench", filter=TRIGGERS[name][1],
                                  actions=["created"], mode="once")
        env = {**os.environ, "CORRAL_CATALOG_ADDR": catalog.addr,
               "CORRAL_UPLOAD_ADDR": upload.addr}
        logs = [data_dir / f"worker-{name}.log" for name in names]
        procs = [start_worker(name, env, log) for name, log in zip(names, logs, strict=True)]

        def stop_workers() -> None:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

        stack.callback(stop_workers)
        wait_ready(procs, logs)
        channel = stack.enter_context(open_channel(catalog.addr,
                                                            options=CHANNEL_OPTIONS))
        stub = pb_grpc.CatalogServiceStub(channel)
        catalog_before = cpu_seconds(catalog.proc.pid)
        workers_before = sum(cpu_seconds(p.pid) for p in procs)
        started = time.perf_counter()
        with Timer() as created:
            create_items(stub, dataset_id, count)
        done = wait_all_drained(stub, names)
        catalog_cpu = cpu_seconds(catalog.proc.pid) - catalog_before
        workers_cpu = sum(cpu_seconds(p.pid) for p in procs) - workers_before
        stop_workers()
        runs = check_runs(client, names, count)
    return {"seconds": {name: done[name] - started for name in names},
            "all seconds": max(done.values()) - started, "create seconds": created.seconds,
            "catalog CPU s": catalog_cpu, "workers CPU s": workers_cpu, "runs": runs}


def bench(db: str, root: Path, count: int, alone: list[str]) -> list[dict]:
    rows: list[dict] = []
    rate_alone: dict[str, float] = {}
    for name in alone:
        result = case(db, root, [name], count)
        seconds = result["seconds"][name]
        rate_alone[name] = count / seconds
        rows.append({"database": db, "case": "alone (1 trigger, 1 worker)", "trigger": name,
                     "events": count, "runs": result["runs"][name], "seconds": seconds,
                     "events/s": rate_alone[name], "ratio vs alone": 1.0,
                     "catalog CPU ms/event": 1000 * result["catalog CPU s"] / count,
                     "worker CPU ms/event": 1000 * result["workers CPU s"] / count})
        print(rows[-1], f"(items created in {result['create seconds']:.2f}s)", flush=True)
    names = list(TRIGGERS)
    result = case(db, root, names, count)
    events = count * len(names)
    for name in names:
        seconds = result["seconds"][name]
        rate = count / seconds
        rows.append({"database": db, "case": "3 concurrent triggers, 3 workers",
                     "trigger": name, "events": count, "runs": result["runs"][name],
                     "seconds": seconds, "events/s": rate,
                     "ratio vs alone": rate / rate_alone[name] if name in rate_alone else "",
                     "catalog CPU ms/event": "", "worker CPU ms/event": ""})
        print(rows[-1], flush=True)
    # Total: against the sum of the rates alone (what three triggers keeping them would do).
    total_alone = sum(rate_alone.values()) if len(rate_alone) == len(names) else None
    total_rate = events / result["all seconds"]
    rows.append({"database": db, "case": "3 concurrent triggers, 3 workers",
                 "trigger": "total", "events": events, "runs": sum(result["runs"].values()),
                 "seconds": result["all seconds"], "events/s": total_rate,
                 "ratio vs alone": total_rate / total_alone if total_alone else "",
                 "catalog CPU ms/event": 1000 * result["catalog CPU s"] / events,
                 "worker CPU ms/event": 1000 * result["workers CPU s"] / events})
    if total_alone:
        print(f"{db}: sum of the rates alone {total_alone:.0f} events/s", flush=True)
    print(rows[-1], f"(items created in {result['create seconds']:.2f}s)", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--alone", default="noop,system,half",
                        help="triggers to also run alone (the baseline)")
    args = parser.parse_args()
    alone = [name for name in args.alone.split(",") if name]
    unknown = set(alone) - set(TRIGGERS)
    if unknown:
        parser.error(f"--alone: unknown {sorted(unknown)}; use {','.join(TRIGGERS)}")
    with tempfile.TemporaryDirectory(prefix="corral-bench-", dir=Path.cwd()) as tmp:
        rows = [row for db in args.databases.split(",")
                for row in bench(db, Path(tmp), args.items, alone)]
    record("triggers", rows)


if __name__ == "__main__":
    main()
