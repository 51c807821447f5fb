"""Abusive clients do not starve the others: while another process holds 200 idle streams on
the upload service and the catalog and drips bytes at 1 byte per second (gRPC chunks and raw
TCP dribbling the HTTP/2 preface), a second client's health checks and 200 small uploads all
succeed, none starved; and nothing is used up for good once the abuser leaves.

The scenario is bench/abuse.py's (which measures the latencies); here only a generous
starvation bound, no timing target. Loopback only; bounded: the abuser stops by itself after
90 s even if this test dies, and only processes this test started are stopped."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bench.abuse import (
    GRPC_DRIPS,
    IDLE_EACH,
    KINDS,
    Abuser,
    create_dataset,
    open_fds,
    second_client,
)
from corral.launcher import ServiceProcess, wait_serving

UPLOADS = 200
SMALL_BYTES = 10 * 1024
STARVED_SECONDS = 2.0  # far above any healthy call; only starvation crosses it
# Statuses the services may end an abusive stream with (e.g. an idle-stream timeout or a cap
# on concurrent calls); INTERNAL or UNKNOWN would be the service failing under abuse.
EXPECTED_ENDINGS = {"CANCELLED", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "UNAVAILABLE"}


def _wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_idle_streams_and_slow_drips_do_not_starve_another_client(
        service_factory: Callable[..., ServiceProcess], tmp_path: Path) -> None:
    quiet_logs = {"CORRAL_LOG_LEVEL": "info"}
    catalog = service_factory("catalog", env=quiet_logs)
    upload = service_factory("upload", env={**quiet_logs, "CORRAL_CATALOG_ADDR": catalog.addr})
    pids = {"upload": upload.proc.pid, "catalog": catalog.proc.pid}
    dataset = create_dataset(catalog.addr, "second-client")
    abused = create_dataset(catalog.addr, "abuser")
    fds_before = {name: open_fds(pid) for name, pid in pids.items()}

    with Abuser(upload.addr, catalog.addr, abused, max_seconds=90) as abuser:
        assert abuser.ready["open"] == 4 * IDLE_EACH + GRPC_DRIPS == 205, abuser.ready
        fds_during = {name: open_fds(pid) for name, pid in pids.items()}
        # 200 rounds every 50 ms: ~10 s of abuse, during which the drips keep dripping.
        latencies = second_client(upload.addr, catalog.addr, dataset, UPLOADS, SMALL_BYTES,
                                  interval=0.05)
        summary = abuser.stop()

    # Every call of the second client succeeded (second_client raises otherwise), none starved.
    assert {kind: len(latencies[kind]) for kind in KINDS} == dict.fromkeys(KINDS, UPLOADS)
    slowest = {kind: max(latencies[kind]) for kind in KINDS}
    assert all(seconds < STARVED_SECONDS for seconds in slowest.values()), slowest

    # The abuse went on the whole time: streams held (or ended in an orderly way) and drips.
    assert summary["streams"] == 205, summary
    assert set(summary["ended"]) <= EXPECTED_ENDINGS, summary
    assert summary["drip_bytes"] >= GRPC_DRIPS * 5 and summary["tcp_sent"] >= 10 * 5, summary

    # 200 streams are not 200 of anything scarce: a handful of connections' worth of
    # descriptors while they are held, and the upload service is back where it started (no
    # temporary files or sockets left behind) once the abuser is gone.
    assert all(fds_during[name] < fds_before[name] + 100 for name in pids), fds_during
    blobs_tmp = upload.env["CORRAL_DATA_DIR"] + "/blobs/.tmp"
    assert _wait_until(lambda: open_fds(pids["upload"]) <= fds_before["upload"] + 2
                       and not any(Path(blobs_tmp).iterdir()), 10), \
        (open_fds(pids["upload"]), fds_before, list(Path(blobs_tmp).iterdir()))
    for service in (upload, catalog):
        wait_serving(service.addr, timeout=5)
