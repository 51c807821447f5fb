"""corral up: the three services as child processes sharing one data directory."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from corral import addresses
from corral.cli.common import warn
from corral.credentials import ADMIN_KEY_FILE, KEYS_DIR, remember_local_key
from corral.launcher import ServiceProcess

STOP_TIMEOUT_SECONDS = 20.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "up", help="run catalog, upload and preprocess locally until stopped",
        description="Starts the catalog, then upload and preprocess, on the addresses from "
                    "CORRAL_CATALOG_ADDR, CORRAL_UPLOAD_ADDR and CORRAL_PREPROCESS_ADDR (or "
                    "the --*-addr flags), all storing data under --data-dir. Ctrl-C or "
                    "SIGTERM stops them gracefully.")
    parser.add_argument("--data-dir", default="corral-data",
                        help="SQLite database, blobs and logs (./corral-data)")
    parser.add_argument("--start-timeout", type=float, default=60.0,
                        help="seconds each service may take to start (60)")
    parser.set_defaults(handler=run_up)


def run_up(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).expanduser().resolve()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stop_requested = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_requested.set())

    started: list[ServiceProcess] = []
    if not _start_in_order(started, _requested_addrs(args), data_dir, args.start_timeout,
                           stop_requested):
        return 0 if stop_requested.is_set() else 1
    _print_banner(started, data_dir, log_dir)
    dead = _wait_until_stopped_or_dead(started, stop_requested)
    if dead is not None:
        code = dead.proc.returncode if dead.proc else None
        warn(f"error: {dead.name} exited unexpectedly with code {code}; stopping the others\n"
             f"       see {dead.log_path}")
        _stop_all([s for s in started if s is not dead])
        dead.stop()
        return 1
    warn("stopping corral ...")
    _stop_all(started)
    warn("stopped")
    return 0


def _requested_addrs(args: argparse.Namespace) -> dict[str, str]:
    return {"catalog": args.catalog_addr or addresses.catalog_addr(),
            "upload": args.upload_addr or addresses.upload_addr(),
            "preprocess": args.preprocess_addr or addresses.preprocess_addr()}


def _start_in_order(started: list[ServiceProcess], requested: dict[str, str], data_dir: Path,
                    timeout: float, stop_requested: threading.Event) -> bool:
    """Starts the services one by one into `started`. On a failure or a stop request, stops
    what did start and returns False."""
    env = {"CORRAL_DATA_DIR": str(data_dir)}
    for name, addr in requested.items():
        service = ServiceProcess(name, addr, env=dict(env),
                                 log_path=data_dir / "logs" / f"{name}.log")
        started.append(service)
        try:
            service.start(timeout=timeout)
        except (RuntimeError, TimeoutError, OSError) as exc:
            service.stop(timeout=STOP_TIMEOUT_SECONDS)
            _stop_all(started[:-1])
            if not stop_requested.is_set():
                _report_failed_start(service, exc)
            return False
        if name == "catalog":
            # Upload and preprocess reach the catalog where it really listens.
            env[addresses.CATALOG_ADDR_ENV] = service.addr
        if stop_requested.is_set():
            _stop_all(started)
            return False
    return True


def _report_failed_start(service: ServiceProcess, exc: Exception) -> None:
    message = str(exc)
    if str(service.log_path) not in message:
        message += f"; see {service.log_path}"
    warn(f"error: {service.name} did not start: {message}")
    last_line = _last_log_line(service.log_path)
    if last_line:
        warn(f"       last log line: {last_line}")


def _last_log_line(path: Path | None) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines() if path else []
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


def _wait_until_stopped_or_dead(services: list[ServiceProcess],
                                stop_requested: threading.Event) -> ServiceProcess | None:
    while not stop_requested.wait(0.2):
        for service in services:
            if service.proc is not None and service.proc.poll() is not None:
                return None if stop_requested.is_set() else service
    return None


def _stop_all(services: list[ServiceProcess]) -> None:
    """Stops upload and preprocess together, then the catalog they depend on."""
    dependents = [s for s in services if s.name != "catalog"]
    for service in dependents:
        service.signal(signal.SIGTERM)
    for service in dependents:
        _stop_and_report(service)
    for service in services:
        if service.name == "catalog":
            _stop_and_report(service)


def _stop_and_report(service: ServiceProcess) -> None:
    code = service.stop(timeout=STOP_TIMEOUT_SECONDS)
    if code not in (0, None, -signal.SIGTERM):
        warn(f"{service.name} exited with code {code}; see {service.log_path}")


def _print_banner(services: list[ServiceProcess], data_dir: Path, log_dir: Path) -> None:
    lines = ["corral is up"]
    lines += [f"  {s.name:<11} {s.addr}" for s in services]
    lines += [f"  {'data dir':<11} {data_dir}", f"  {'logs':<11} {log_dir}"]
    admin_key = data_dir / KEYS_DIR / ADMIN_KEY_FILE
    if admin_key.exists():
        catalog = next(s for s in services if s.name == "catalog")
        remember_local_key(catalog.addr, admin_key)
        lines += [f"  {'admin key':<11} {admin_key} (mode 0600; the CLI on this machine "
                  "finds it by itself)"]
    lines += ["Stop with Ctrl-C."]
    print("\n".join(lines), flush=True)
    sys.stdout.flush()
