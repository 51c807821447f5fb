"""Private preprocessing with the real services on loopback: a private dataset's items are
preprocessed by its own worker and never by the shared pool, global datasets' by the pool;
stopping either one leaves the other working, and the stopped one's items wait for it."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sdk.images import image_bytes
from sdk.stack import QUIET_SETTINGS, Stack

from corral import addresses
from corral.client import Client
from corral.errors import InvalidArgument, NotFound
from corral.launcher import ServiceProcess
from tests.preprocess.catalog_helpers import wait_for

POOL = "preprocess"


def private_group(dataset: dict) -> str:
    return f"preprocess:dataset:{dataset['id']}"


def start_preprocess(stack: Stack, log_path: Path, dataset: str = "") -> ServiceProcess:
    env = {"CORRAL_DATA_DIR": str(stack.data_dir), **QUIET_SETTINGS,
           addresses.CATALOG_ADDR_ENV: stack.catalog.addr}
    if dataset:
        env["CORRAL_PREPROCESS_DATASET"] = dataset
    return ServiceProcess("preprocess", "127.0.0.1:0", env=env, log_path=log_path).start()


def upload(client: Client, folder: Path, dataset: str, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, name in enumerate(names):
        path = folder / name
        path.write_bytes(image_bytes(64, 48, color=n))
        paths.append(path)
    summary = client.upload_paths(paths, dataset, remote_dir="/")
    assert summary.ok, summary.counts()


def records(client: Client, dataset: str) -> dict[str, dict | None]:
    """name -> its executionLogs.preprocess record (None while unprocessed)."""
    return {item["name"]: item["metadata"]["system"].get("executionLogs", {}).get("preprocess")
            for item in client.list_items(dataset, recursive=True) if item["type"] == "file"}


def processed_by(client: Client, dataset: str, names: list[str], timeout: float = 60) -> set:
    """Waits until these items are processed; the consumer groups that processed them."""
    found = wait_for(lambda: (r := records(client, dataset)) and all(r.get(n) for n in names)
                     and r, timeout, f"{names} preprocessed in {dataset}")
    return {found[name]["consumerGroup"] for name in names}


def still_waiting(client: Client, dataset: str, names: list[str]) -> bool:
    found = records(client, dataset)
    return all(name in found and found[name] is None for name in names)


@pytest.fixture(scope="module")
def datasets(client: Client) -> tuple[dict, dict]:
    public = client.create_dataset("public")
    secret = client.create_dataset("secret")
    assert public["preprocessing"] == "global"
    secret = client.set_dataset_preprocessing("secret", "private")
    assert secret["preprocessing"] == "private"
    return public, secret


@pytest.fixture(scope="module")
def private_worker(stack: Stack, datasets, tmp_path_factory) -> Iterator[list[ServiceProcess]]:
    """The secret dataset's worker, in a list so a test can replace it."""
    workers = [start_preprocess(stack, tmp_path_factory.mktemp("private") / "worker.log",
                                "secret")]
    yield workers
    for worker in workers:
        worker.stop()


def test_private_items_go_to_the_private_worker_and_the_rest_to_the_pool(
        client, stack, datasets, private_worker, tmp_path):
    public, secret = datasets
    upload(client, tmp_path / "a", "public", ["p1.jpg", "p2.jpg", "p3.jpg"])
    upload(client, tmp_path / "b", "secret", ["s1.jpg", "s2.jpg", "s3.jpg"])
    assert processed_by(client, "secret", ["s1.jpg", "s2.jpg", "s3.jpg"]) == {
        private_group(secret)}
    assert processed_by(client, "public", ["p1.jpg", "p2.jpg", "p3.jpg"]) == {POOL}

    with Client(catalog_addr=stack.catalog.addr,
                preprocess_addr=private_worker[0].addr) as private_client:
        stats = private_client.preprocess_stats()
    assert (stats["consumer_group"], stats["dataset_id"]) == (private_group(secret), secret["id"])
    assert stats["processed"] == 3
    shared = client.preprocess_stats()
    assert (shared["consumer_group"], shared["dataset_id"], shared["processed"]) == (POOL, "", 3)


def test_stopping_the_pool_does_not_stop_private_processing(client, stack, datasets,
                                                            private_worker, tmp_path):
    public, secret = datasets
    assert stack.preprocess.stop() in (0, -signal.SIGTERM)
    try:
        upload(client, tmp_path / "a", "public", ["p4.jpg"])
        upload(client, tmp_path / "b", "secret", ["s4.jpg", "s5.jpg"])
        assert processed_by(client, "secret", ["s4.jpg", "s5.jpg"]) == {private_group(secret)}
        time.sleep(1.0)
        assert still_waiting(client, "public", ["p4.jpg"])
    finally:
        stack.preprocess = start_preprocess(stack, tmp_path / "pool.log")
    assert processed_by(client, "public", ["p4.jpg"]) == {POOL}


def test_stopping_the_private_worker_does_not_stop_the_pool(client, stack, datasets,
                                                           private_worker, tmp_path):
    public, secret = datasets
    private_worker[0].stop()
    try:
        upload(client, tmp_path / "b", "secret", ["s6.jpg"])
        upload(client, tmp_path / "a", "public", ["p5.jpg", "p6.jpg"])
        assert processed_by(client, "public", ["p5.jpg", "p6.jpg"]) == {POOL}
        time.sleep(1.0)
        assert still_waiting(client, "secret", ["s6.jpg"])  # the pool never takes it
    finally:
        private_worker.append(start_preprocess(stack, tmp_path / "private.log", secret["id"]))
    assert processed_by(client, "secret", ["s6.jpg"]) == {private_group(secret)}


def test_switching_modes_moves_waiting_items_between_pool_and_private(
        client, stack, datasets, private_worker, tmp_path):
    public, secret = datasets
    private_worker[-1].stop()
    upload(client, tmp_path / "b", "secret", ["s7.jpg"])
    time.sleep(0.5)
    assert still_waiting(client, "secret", ["s7.jpg"])
    # Its worker is gone: hand the waiting item to the shared pool.
    assert client.set_dataset_preprocessing("secret", "global")["preprocessing"] == "global"
    assert processed_by(client, "secret", ["s7.jpg"]) == {POOL}
    # Off: nobody processes new items.
    client.set_dataset_preprocessing("public", "off")
    upload(client, tmp_path / "a", "public", ["p7.jpg"])
    time.sleep(1.0)
    assert still_waiting(client, "public", ["p7.jpg"])
    client.set_dataset_preprocessing("public", "global")
    client.set_dataset_preprocessing("secret", "private")


def test_sdk_validation(client, datasets):
    with pytest.raises(InvalidArgument, match="mode"):
        client.set_dataset_preprocessing("secret", "sometimes")
    with pytest.raises(NotFound):
        client.set_dataset_preprocessing("no-such-dataset", "private")


def test_cli_sets_modes_and_runs_a_private_worker(stack, tmp_path):
    def corral(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "corral.cli.main", *args], env=stack.env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert corral("datasets", "create", "cli-private").returncode == 0
    changed = corral("datasets", "set", "cli-private", "--preprocessing", "private")
    assert changed.returncode == 0, changed.stderr
    assert "preprocessing private" in changed.stdout
    listing = corral("datasets", "list")
    assert "PREPROCESSING" in listing.stdout
    assert any("cli-private" in line and "private" in line.split("cli-private", 1)[1]
               for line in listing.stdout.splitlines())
    bad = corral("datasets", "set", "cli-private", "--preprocessing", "sometimes")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    missing = corral("preprocess", "--dataset", "no-such-dataset")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr

    env = {**stack.env, "CORRAL_DATA_DIR": str(stack.data_dir), **QUIET_SETTINGS}
    log = (tmp_path / "cli-worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "corral.cli.main", "preprocess",
                               "--dataset", "cli-private"], env=env, cwd=tmp_path,
                              stdout=log, stderr=log)
    try:
        with Client(**stack.client_kwargs()) as client:
            dataset = client.get_dataset("cli-private")
            upload(client, tmp_path / "c", "cli-private", ["c1.jpg"])
            assert processed_by(client, "cli-private", ["c1.jpg"]) == {private_group(dataset)}
    finally:
        worker.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(20)
        if worker.poll() is None:
            worker.kill()
        log.close()
    assert worker.returncode == 0, (tmp_path / "cli-worker.log").read_text()[-2000:]
