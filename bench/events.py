"""Events processed per second by 1, 2 and 3 workers sharing one leased consumer group, on
SQLite and on PostgreSQL (a dedicated database, dropped at the end).

(a) The event machinery alone: `--events` CREATED events are made up front (link-free file
    items with made-up blob keys, through BatchCreateItems); then 1, 2 or 3 subscriber
    processes (each its own channel) join one new leased group (Subscribe with lease_seconds,
    max_in_flight, subscriber_id), do no work and acknowledge what they received
    (AckEvents event_cursors, one call at a time carrying everything received meanwhile).
    Timed from the start signal until GetConsumerGroup reports no pending event. Baseline on
    the same events: one plain subscriber of a non-leased group that commits its cursor
    (AckEvents cursor) the same way.
(b) Real preprocess workers: `--images` photo-like 640x480 JPEGs uploaded (bulk stream) while
    no worker runs, then 1, 2 or 3 `python -m services.preprocess` processes (one decoding
    process each, CORRAL_PREPROCESS_PROCESSES=1) in one group drain them (file info +
    thumbnail) until the group has no pending event. A fresh stack (data directory, database)
    per worker count. The rate counts the events drained after every worker was serving;
    the wall time includes the workers' start. Baseline: 1 worker.

    .venv/bin/python -m bench.events [--events 20000] [--images 1000]
                                     [--databases sqlite,postgresql] [--skip-machinery]
                                     [--skip-preprocess]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg

from bench.common import Timer, cpu_seconds, record, running_services
from bench.images import write_jpegs
from corral.catalog.v1 import catalog_service_pb2 as pb
from corral.catalog.v1 import catalog_service_pb2_grpc as pb_grpc
from corral.catalog.v1 import resources_pb2
from corral.client import Client
from corral.launcher import ServiceProcess
from corral.rpc import CHANNEL_OPTIONS, open_channel

PG_ADMIN_DSN = os.environ.get("CORRAL_BENCH_PG_DSN",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
BATCH = 1000  # BatchCreateItems' limit
LEASE_SECONDS = 60
MAX_IN_FLIGHT = 64  # the server's default
POLL_SECONDS = 0.02
WAIT_SECONDS = 900


@contextlib.contextmanager
def database(kind: str, data_dir: Path) -> Iterator[str]:
    """The catalog's database URL: a SQLite file, or a new PostgreSQL database dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{data_dir / 'catalog.db'}"
        return
    name = f"corral_bench_events_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_events(stub: pb_grpc.CatalogServiceStub, dataset_id: str, count: int) -> None:
    """`count` file items in "/" (no folder events), so `count` CREATED events."""
    for start in range(0, count, BATCH):
        requests = [pb.CreateItemRequest(
            dataset_id=dataset_id, dir="/", name=f"e{i:07d}.bin", size=3,
            sha256=f"{i:064x}", blob_key=f"items/{dataset_id}/{uuid.uuid4().hex}")
            for i in range(start, min(count, start + BATCH))]
        reply = stub.BatchCreateItems(pb.BatchCreateItemsRequest(requests=requests), timeout=60)
        errors = [r.error for r in reply.results if r.HasField("error")]
        assert not errors, errors[:3]


def wait_drained(stub: pb_grpc.CatalogServiceStub, group: str) -> float:
    """Polls GetConsumerGroup until the group has nothing pending; returns when it saw it."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        state = stub.GetConsumerGroup(pb.GetConsumerGroupRequest(consumer_group=group),
                                      timeout=10)
        if state.committed_cursor and state.pending_events == 0 and state.leased_events == 0:
            return time.perf_counter()
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"group {group} still has events pending after {WAIT_SECONDS}s")


# (a) The event machinery: subscriber processes that do no work.

def subscriber(addr: str, group: str, leased: bool, dataset_id: str, ready: mp.Event,
               go: mp.Event, stop: mp.Event, results: mp.Queue) -> None:
    """Receives events and acknowledges them from a second thread, one AckEvents at a time
    carrying every cursor received meanwhile (as the preprocess worker does)."""
    channel = open_channel(addr, options=CHANNEL_OPTIONS)
    stub = pb_grpc.CatalogServiceStub(channel)
    grpc.channel_ready_future(channel).result(timeout=30)
    request = pb.SubscribeRequest(
        consumer_group=group, start_position=pb.START_POSITION_EARLIEST,
        event_types=[resources_pb2.EVENT_TYPE_CREATED], dataset_id=dataset_id)
    if leased:
        request.lease_seconds, request.max_in_flight = LEASE_SECONDS, MAX_IN_FLIGHT
        request.subscriber_id = f"bench-{os.getpid()}"
    received: queue.SimpleQueue[str] = queue.SimpleQueue()
    counts = {"received": 0, "acks": 0}

    def acknowledge() -> None:
        while True:
            cursors = [received.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    cursors.append(received.get_nowait())
            if leased:
                ack = pb.AckEventsRequest(consumer_group=group, event_cursors=cursors)
            else:
                ack = pb.AckEventsRequest(consumer_group=group, cursor=cursors[-1])
            stub.AckEvents(ack, timeout=30)
            counts["acks"] += 1

    ready.set()
    go.wait()
    call = stub.Subscribe(request)
    threading.Thread(target=acknowledge, daemon=True).start()
    threading.Thread(target=lambda: (stop.wait(), call.cancel()), daemon=True).start()
    with contextlib.suppress(grpc.RpcError):  # cancelled at the end
        for response in call:
            received.put(response.event.cursor)
            counts["received"] += 1
    results.put(counts)
    channel.close()


def machinery_case(catalog: ServiceProcess, dataset_id: str, group: str, leased: bool,
                   workers: int) -> dict:
    ctx = mp.get_context("spawn")
    go, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in range(workers)]
    procs = [ctx.Process(target=subscriber, args=(catalog.addr, group, leased, dataset_id,
                                                  ready, go, stop, results))
             for ready in readies]
    for proc in procs:
        proc.start()
    try:
        for ready in readies:
            assert ready.wait(60), "a subscriber did not start"
        with open_channel(catalog.addr) as channel:
            stub = pb_grpc.CatalogServiceStub(channel)
            cpu_before = cpu_seconds(catalog.proc.pid)
            started = time.perf_counter()
            go.set()
            seconds = wait_drained(stub, group) - started
            catalog_cpu = cpu_seconds(catalog.proc.pid) - cpu_before
        stop.set()
        counts = [results.get(timeout=30) for _ in procs]
    finally:
        stop.set()
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    return {"seconds": seconds, "received": sum(c["received"] for c in counts),
            "ack calls": sum(c["acks"] for c in counts), "catalog CPU s": catalog_cpu}


def machinery(db: str, root: Path, count: int) -> list[dict]:
    rows = []
    data_dir = root / f"machinery-{db}"
    data_dir.mkdir()
    with (database(db, data_dir) as url,
          running_services(("catalog",), env={"CORRAL_DATABASE_URL": url},
                           data_dir=data_dir) as services):
        catalog = services["catalog"]
        with open_channel(catalog.addr, options=CHANNEL_OPTIONS) as channel:
            stub = pb_grpc.CatalogServiceStub(channel)
            dataset_id = stub.CreateDataset(pb.CreateDatasetRequest(name="events")).dataset.id
            with Timer() as made:
                create_events(stub, dataset_id, count)
        print(f"{db}: {count} events created in {made.seconds:.1f}s", flush=True)
        cases = [("baseline: 1 plain subscriber, cursor commits", False, 1)]
        cases += [(f"leased group, {n} subscriber{'s' * (n > 1)}", True, n) for n in (1, 2, 3)]
        base_rate = None
        for label, leased, workers in cases:
            group = f"bench-{'leased' if leased else 'plain'}-{workers}"
            result = machinery_case(catalog, dataset_id, group, leased, workers)
            rate = count / result["seconds"]
            base_rate = base_rate or rate
            rows.append({"database": db, "case": label, "events": count,
                         "seconds": result["seconds"], "events/s": rate,
                         "ratio vs plain": rate / base_rate,
                         "delivered": result["received"], "ack calls": result["ack calls"],
                         "catalog CPU ms/event": 1000 * result["catalog CPU s"] / count})
            print(rows[-1], flush=True)
    return rows


# (b) Real preprocess workers draining uploaded images.

def preprocess_case(db: str, root: Path, images: Path, count: int, workers: int) -> dict:
    data_dir = root / f"preprocess-{db}-{workers}"
    data_dir.mkdir()
    group = "bench-preprocess"
    with (database(db, data_dir) as url,
          running_services(("catalog", "upload"), env={"CORRAL_DATABASE_URL": url},
                           data_dir=data_dir) as services):
        catalog = services["catalog"]
        with Client(catalog.addr, services["upload"].addr) as client:
            client.create_dataset("images")
            summary = client.upload_paths([images], "images")
            assert summary.ok and len(summary.created) == count, summary.counts()
        env = {"CORRAL_DATA_DIR": str(data_dir), "CORRAL_LOG_LEVEL": "warning",
               "CORRAL_CATALOG_ADDR": catalog.addr, "CORRAL_DATABASE_URL": url,
               "CORRAL_PREPROCESS_GROUP": group, "CORRAL_PREPROCESS_PROCESSES": "1"}
        procs = [ServiceProcess("preprocess", "127.0.0.1:0", env=env,
                                log_path=data_dir / f"preprocess-{i}.log")
                 for i in range(workers)]
        with (contextlib.ExitStack() as stack,
              open_channel(catalog.addr) as channel):
            for proc in procs:
                stack.callback(proc.stop)
            stub = pb_grpc.CatalogServiceStub(channel)
            launched = time.perf_counter()
            starters = [threading.Thread(target=proc.start) for proc in procs]
            for thread in starters:
                thread.start()
            for thread in starters:
                thread.join()
            serving = time.perf_counter()
            state = stub.GetConsumerGroup(pb.GetConsumerGroupRequest(consumer_group=group),
                                          timeout=10)
            left = state.pending_events if state.committed_cursor else count
            cpu_before = {p.name + str(i): cpu_seconds(p.proc.pid) for i, p in enumerate(procs)}
            cpu_before["catalog"] = cpu_seconds(catalog.proc.pid)
            done = wait_drained(stub, group)
            cpu = sum(cpu_seconds(p.proc.pid) for p in procs) - sum(
                v for k, v in cpu_before.items() if k != "catalog")
            catalog_cpu = cpu_seconds(catalog.proc.pid) - cpu_before["catalog"]
        with Client(catalog.addr, services["upload"].addr) as client:
            items = list(client.list_items("images", recursive=True))
    processed = sum(1 for item in items
                    if item.get("metadata", {}).get("system", {}).get("thumbnail"))
    return {"database": db, "workers": workers, "items": count,
            "wall seconds (incl. start)": done - launched,
            "drained after all serving": left, "seconds": done - serving,
            "items/s": left / (done - serving), "with thumbnail": processed,
            "workers CPU ms/item": 1000 * cpu / max(left, 1),
            "catalog CPU ms/item": 1000 * catalog_cpu / max(left, 1)}


def preprocess(db: str, root: Path, images: Path, count: int) -> list[dict]:
    rows: list[dict] = []
    for workers in (1, 2, 3):
        row = preprocess_case(db, root, images, count, workers)
        row["ratio vs 1 worker"] = row["items/s"] / rows[0]["items/s"] if rows else 1.0
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--skip-machinery", action="store_true")
    parser.add_argument("--skip-preprocess", action="store_true")
    args = parser.parse_args()
    databases = args.databases.split(",")
    with tempfile.TemporaryDirectory(prefix="corral-bench-", dir=Path.cwd()) as tmp:
        root = Path(tmp)
        if not args.skip_machinery:
            rows = [row for db in databases for row in machinery(db, root, args.events)]
            record("events_machinery", rows)
        if not args.skip_preprocess:
            images = root / "images"
            write_jpegs(images, args.images, 640, 480)
            rows = [row for db in databases for row in preprocess(db, root, images,
                                                                     args.images)]
            record("events_preprocess", rows)


if __name__ == "__main__":
    main()
