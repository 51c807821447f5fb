"""Triggers end to end: real services on loopback, workers in-process (TriggerWorker in a
thread) and as `corral worker` subprocesses. Bounded waits, no timing assertions."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.client import Client
from corral.worker import TriggerWorker
from tests.triggers import functions

REPO = Path(__file__).resolve().parents[2]


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _name(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


class Running:
    def __init__(self, worker: TriggerWorker) -> None:
        self.worker = worker
        self.thread = threading.Thread(target=worker.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def start_worker(client: Client) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(trigger: str, function: Callable[..., Any], **options: Any) -> Running:
        options.setdefault("refresh_seconds", 0.5)
        options.setdefault("backoff_seconds", 0.05)
        running = Running(TriggerWorker(client, trigger, function, **options))
        started.append(running)
        return running

    yield start
    functions.GATE.set()
    for running in started:
        running.stop()


def logs(client: Client, item_id: str) -> dict[str, Any]:
    return client.get_item(item_id)["metadata"]["system"].get("executionLogs", {})


def drained(client: Client, trigger: str) -> bool:
    group = client._catalog.GetConsumerGroup(api.GetConsumerGroupRequest(
        consumer_group=f"default/trigger:{trigger}"))
    return group.pending_events == 0 and group.leased_events == 0


def calls(trigger: str, item_id: str) -> int:
    return functions.CALLS[(trigger, item_id)]


def test_filter_results_logs_once_and_always(client, start_worker):
    dataset = client.create_dataset(_name("ds"))["name"]
    once, always = _name("once"), _name("always")
    spec = ["name~*.jpg", "dir~/keep/**", "metadata.user.camera=[3,4]"]
    client.create_trigger(once, dataset=dataset, filter=spec, actions=["created", "updated"],
                          mode="once")
    client.create_trigger(always, dataset=dataset, filter=spec,
                          actions=["created", "updated"], mode="always")
    other = client.create_dataset(_name("ds"))["name"]
    start_worker(once, functions.digest, concurrency=2)
    start_worker(always, functions.digest, concurrency=2)

    match = client.upload_bytes(b"jpeg-ish", dataset, "a.jpg", remote_dir="/keep/x",
                                metadata={"camera": 3}).item
    misses = [
        client.upload_bytes(b"1", dataset, "a.png", remote_dir="/keep",
                            metadata={"camera": 3}).item,       # name
        client.upload_bytes(b"2", dataset, "b.jpg", remote_dir="/other",
                            metadata={"camera": 3}).item,       # folder
        client.upload_bytes(b"3", dataset, "c.jpg", remote_dir="/keep",
                            metadata={"camera": "3"}).item,     # metadata type
        client.upload_bytes(b"4", other, "d.jpg", remote_dir="/keep",
                            metadata={"camera": 3}).item,       # scope
    ]
    wait_for(lambda: {once, always} <= set(logs(client, match["id"])), what="both logs")
    item = client.get_item(match["id"])
    for trigger in (once, always):
        log = item["metadata"]["system"]["executionLogs"][trigger]
        assert (log["status"], log["attempts"], log["error"]) == ("success", 1, "")
        assert log["durationMs"] >= 0 and log["finishedAt"]
        assert item["metadata"]["system"][trigger]["sha256"] == \
            hashlib.sha256(b"jpeg-ish").hexdigest()
    assert item["metadata"]["user"]["seen_by"] in (once, always)

    # The user metadata writes above were `updated` events; wait until both groups drained.
    wait_for(lambda: drained(client, once) and drained(client, always), what="drained")
    assert calls(once, match["id"]) == 1
    runs_before = calls(always, match["id"])
    client.update_item(match["id"], metadata_patch={"note": "again"})
    wait_for(lambda: calls(always, match["id"]) > runs_before, what="always re-run")
    wait_for(lambda: drained(client, once) and drained(client, always), what="drained")
    assert calls(once, match["id"]) == 1
    for miss in misses:
        assert calls(once, miss["id"]) == calls(always, miss["id"]) == 0
        assert not {once, always} & set(logs(client, miss["id"]))


def test_retries_then_success_and_failure_records(client, start_worker):
    dataset = client.create_dataset(_name("ds"))["name"]
    trigger = _name("flaky")
    client.create_trigger(trigger, dataset=dataset)
    functions.FAILURES_LEFT.update({"twice.bin": 2, "always.bin": 99})
    start_worker(trigger, functions.flaky, max_attempts=3)
    twice = client.upload_bytes(b"x", dataset, "twice.bin").item
    broken = client.upload_bytes(b"y", dataset, "always.bin").item
    wait_for(lambda: trigger in logs(client, twice["id"])
             and trigger in logs(client, broken["id"]), what="records")
    ok = client.get_item(twice["id"])["metadata"]["system"]
    assert (ok["executionLogs"][trigger]["status"], ok["executionLogs"][trigger]["attempts"]) \
        == ("success", 3)
    assert ok[trigger] == {"ok": True}
    failed = client.get_item(broken["id"])["metadata"]["system"]
    record = failed["executionLogs"][trigger]
    assert (record["status"], record["attempts"]) == ("failed", 3)
    assert "RuntimeError: flaky" in record["error"]
    assert trigger not in failed  # no results from a failed run
    # The failed event was acknowledged: nothing blocks the group.
    wait_for(lambda: drained(client, trigger), what="drained")
    later = client.upload_bytes(b"z", dataset, "later.bin").item
    wait_for(lambda: trigger in logs(client, later["id"]), what="a later item")


def test_async_function_and_mimetype_filter(client, start_worker, tmp_path):
    from PIL import Image
    dataset = client.create_dataset(_name("ds"))["name"]
    trigger = _name("img")
    # mimetype is written by preprocessing after the created event: the worker waits for it.
    client.create_trigger(trigger, dataset=dataset, filter="mimetype~image/*")
    start_worker(trigger, functions.async_digest)
    Image.new("RGB", (8, 8), "red").save(tmp_path / "red.png")
    image = client.upload_file(tmp_path / "red.png", dataset).item
    text = client.upload_bytes(b"just text\n", dataset, "notes.png").item  # not an image
    wait_for(lambda: trigger in logs(client, image["id"]), what="image record")
    assert client.get_item(image["id"])["metadata"]["system"][trigger]["bytes"] == \
        (tmp_path / "red.png").stat().st_size
    wait_for(lambda: drained(client, trigger), what="drained")
    assert trigger not in logs(client, text["id"])


def test_paused_trigger_runs_its_events_on_resume(client, start_worker):
    dataset = client.create_dataset(_name("ds"))["name"]
    trigger = _name("pause")
    client.create_trigger(trigger, dataset=dataset, paused=True)
    start_worker(trigger, functions.quick)
    item = client.upload_bytes(b"p", dataset, "during-pause.bin").item
    assert not drained(client, trigger)  # waits in the group
    client.resume_trigger(trigger)
    wait_for(lambda: trigger in logs(client, item["id"]), what="record after resume")


def test_a_slow_trigger_does_not_delay_another(client, start_worker):
    dataset = client.create_dataset(_name("ds"))["name"]
    slow, fast = _name("slow"), _name("fast")
    client.create_trigger(slow, dataset=dataset)
    client.create_trigger(fast, dataset=dataset)
    functions.GATE.clear()
    start_worker(slow, functions.gated, concurrency=1)
    start_worker(fast, functions.quick, concurrency=2)
    items = [client.upload_bytes(b"%d" % i, dataset, f"{i}.bin").item for i in range(5)]
    wait_for(lambda: all(fast in logs(client, i["id"]) for i in items), what="fast trigger")
    # The slow trigger is still stuck on its first item, with nothing recorded.
    assert sum(calls(slow, i["id"]) for i in items) == 1
    assert not any(slow in logs(client, i["id"]) for i in items)
    functions.GATE.set()
    wait_for(lambda: all(slow in logs(client, i["id"]) for i in items), what="slow trigger")


def _worker_process(stack, trigger: str, function: str, env: dict[str, str],
                    log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "corral.cli.main", "worker", "--trigger", trigger,
         "--function", function, "--lease-seconds", "3", "--concurrency", "1"],
        cwd=REPO, env={**stack.env, **env, "PYTHONPATH": str(REPO)},
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT)


def test_killed_worker_event_is_redelivered(stack, client, tmp_path):
    dataset = client.create_dataset(_name("ds"))["name"]
    trigger = _name("kill")
    client.create_trigger(trigger, dataset=dataset, mode="once")
    started = tmp_path / "started"
    first = _worker_process(stack, trigger, "tests.triggers.functions:hang",
                            {"CORRAL_TEST_STARTED": str(started)}, tmp_path / "first.log")
    second = None
    try:
        item = client.upload_bytes(b"k", dataset, "k.bin").item
        wait_for(started.exists, what="the first worker to start the function")
        assert started.read_text() == item["id"]
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        second = _worker_process(stack, trigger, "tests.triggers.functions:mark", {},
                                 tmp_path / "second.log")
        wait_for(lambda: trigger in logs(client, item["id"]), what="the re-delivered run")
        system = client.get_item(item["id"])["metadata"]["system"]
        assert system["executionLogs"][trigger]["status"] == "success"
        assert system[trigger]["by"] == "second" and system[trigger]["pid"] == second.pid
        wait_for(lambda: drained(client, trigger), what="drained")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(30)
