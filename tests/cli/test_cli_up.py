"""`corral up` end to end: the three services as children of one command, driven by the CLI."""

from __future__ import annotations

import io
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import testkeys
from PIL import Image
from sdk.images import make_photo_tree

from corral import addresses
from corral.client import Client, preprocess_status
from corral.launcher import ProcessExited, wait_serving

STOP_GRACE_SECONDS = 2
EXIT_WITHIN_SECONDS = 30


def _free_loopback_addr() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


class CorralUp:
    def __init__(self, proc: subprocess.Popen[str], env: dict[str, str],
                 addrs: dict[str, str]) -> None:
        self.proc, self.env, self.addrs = proc, env, addrs
        self.banner = ""  # what wait_serving read of stdout

    def wait_serving(self) -> None:
        for addr in self.addrs.values():
            if self.proc.poll() is not None:
                pytest.fail(f"corral up exited early: {self.proc.communicate()}")
            wait_serving(addr, timeout=60)
        # The services may serve before `corral up` has seen them do so: only after its
        # banner does it watch them (a service killed earlier is a failed start).
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.banner += line
            if line.startswith("Stop with Ctrl-C."):
                return
        pytest.fail(f"corral up exited early: {self.proc.communicate()}")

    def child_pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(pid) for pid in children.split()]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "corral.cli.main", *args], env=self.env,
                              capture_output=True, text=True, timeout=60)


@pytest.fixture
def corral_up(tmp_path: Path) -> Iterator[CorralUp]:
    addrs = {"catalog": _free_loopback_addr(), "upload": _free_loopback_addr(),
             "preprocess": _free_loopback_addr()}
    # No test keys: `corral up` makes its own, as on a fresh machine.
    env = {**{k: v for k, v in os.environ.items() if k not in testkeys.ENV or
              k == "XDG_CONFIG_HOME"},
           addresses.CATALOG_ADDR_ENV: addrs["catalog"],
           addresses.UPLOAD_ADDR_ENV: addrs["upload"],
           addresses.PREPROCESS_ADDR_ENV: addrs["preprocess"],
           "CORRAL_GRACE_SECONDS": str(STOP_GRACE_SECONDS),
           "CORRAL_PREPROCESS_PROCESSES": "1",
           "CORRAL_LOG_LEVEL": "info"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral.cli.main", "up", "--data-dir", str(tmp_path / "data")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    up = CorralUp(proc, env, addrs)
    try:
        yield up
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=EXIT_WITHIN_SECONDS)
            except subprocess.TimeoutExpired:
                for pid in up.child_pids():
                    os.kill(pid, signal.SIGKILL)
                proc.kill()
                proc.communicate()


def test_corral_up_serves_uploads_preprocesses_and_stops_on_sigterm(
        corral_up: CorralUp, tmp_path: Path) -> None:
    corral_up.wait_serving()
    name = f"up-{uuid.uuid4().hex[:8]}"
    assert corral_up.cli("datasets", "create", name).returncode == 0
    photos = make_photo_tree(tmp_path / "local")
    upload = corral_up.cli("upload", str(photos), "--dataset", name)
    assert upload.returncode == 0, upload.stderr
    assert upload.stdout.strip() == "created 5, skipped 0, overwritten 0, failed 0"

    data_dir = tmp_path / "data"
    admin_key = data_dir / "keys" / "admin.key"
    assert stat.S_IMODE(admin_key.stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "keys").stat().st_mode) == 0o700
    key = admin_key.read_text().strip()
    whoami = corral_up.cli("datasets", "list")  # found through the note `corral up` left
    assert whoami.returncode == 0, whoami.stderr
    assert key not in whoami.stdout + whoami.stderr
    refused = subprocess.run([sys.executable, "-m", "corral.cli.main", "datasets", "list"],
                             env={**corral_up.env, "CORRAL_API_KEY": "corral_0_nope"},
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    for service in ("catalog", "upload", "preprocess"):
        assert key not in (data_dir / "logs" / f"{service}.log").read_text()

    with Client(*corral_up.addrs.values(), api_key=key) as client:
        files = {i["filename"]: i for i in client.wait_for_preprocessing(name, timeout=60)}
        image = files["/photos/b.png"]
        assert preprocess_status(image) == "success"
        assert (image["metadata"]["system"]["width"],
                image["metadata"]["system"]["height"]) == (300, 500)
        thumbnail = Image.open(io.BytesIO(client.download_bytes(image["id"], thumbnail=True)))
        assert thumbnail.size[1] == 256 and thumbnail.size[0] < 256

    for service in ("catalog", "upload", "preprocess"):
        assert (data_dir / "logs" / f"{service}.log").stat().st_size > 0

    started = time.monotonic()
    corral_up.proc.send_signal(signal.SIGTERM)
    out, err = corral_up.proc.communicate(timeout=EXIT_WITHIN_SECONDS)
    out = corral_up.banner + out
    assert corral_up.proc.returncode == 0, err
    assert time.monotonic() - started < 3 * STOP_GRACE_SECONDS + 5
    assert "corral is up" in out and str(data_dir) in out
    for addr in corral_up.addrs.values():
        assert addr in out


def test_corral_up_stops_everything_when_a_service_dies(corral_up: CorralUp) -> None:
    corral_up.wait_serving()
    children = corral_up.child_pids()
    assert len(children) == 3
    os.kill(children[-1], signal.SIGKILL)  # preprocess, started last
    _, err = corral_up.proc.communicate(timeout=EXIT_WITHIN_SECONDS)
    assert corral_up.proc.returncode == 1
    assert "preprocess exited unexpectedly" in err and "preprocess.log" in err
    for pid in children[:2]:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_corral_up_reports_a_service_that_cannot_start(tmp_path: Path) -> None:
    addrs = [_free_loopback_addr() for _ in range(3)]
    taken_host, taken_port = addrs[1].rsplit(":", 1)
    env = {**os.environ, addresses.CATALOG_ADDR_ENV: addrs[0],
           addresses.UPLOAD_ADDR_ENV: addrs[1], addresses.PREPROCESS_ADDR_ENV: addrs[2]}
    with socket.socket() as blocker:
        blocker.bind((taken_host, int(taken_port)))
        blocker.listen()
        result = subprocess.run(
            [sys.executable, "-m", "corral.cli.main", "up", "--data-dir", str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=EXIT_WITHIN_SECONDS)
    assert result.returncode == 1
    assert result.stderr.startswith("error: upload did not start: ")
    assert str(tmp_path / "logs" / "upload.log") in result.stderr
    assert "Traceback" not in result.stderr


def test_waiting_for_a_service_ends_when_its_process_exits() -> None:
    # Nothing listens there: without `exited` this would end in TimeoutError after 60 s.
    with pytest.raises(ProcessExited, match="exited with -9"):
        wait_serving(_free_loopback_addr(), timeout=60, exited=lambda: -9)
