"""mTLS (CORRAL_TLS_CLIENT_CA on the services): only clients with a certificate from that CA
connect; the services present their own client certificates when they call one another."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2
from sdk.stack import Stack, running_stack

from corral import healthcheck
from corral.client import Client
from corral.credentials import TlsFiles
from corral.errors import Unavailable
from corral.launcher import ServiceProcess, wait_serving

from .pki import Pki, make_pki
from .tls_helpers import (
    credentials,
    health_check,
    list_datasets,
    refusal,
    upload_and_preprocess,
    write_png,
)

SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_stack(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("mtls-stack"), pki.server_env(mtls=True)) \
            as stack:
        yield stack


def _addrs(stack: Stack) -> list[str]:
    return [stack.catalog.addr, stack.upload.addr, stack.preprocess.addr]


def _with_cert(pki: Pki) -> TlsFiles:
    return TlsFiles(ca=str(pki.ca), cert=str(pki.client.cert), key=str(pki.client.key))


def test_a_client_certificate_from_the_ca_works_end_to_end(mtls_stack: Stack, pki: Pki) -> None:
    # The catalog accepts only certified clients, so the upload service's key check and item
    # creation and the preprocess worker's event stream all present the services' own
    # client certificates.
    with Client(**mtls_stack.client_kwargs(), credentials=credentials(_with_cert(pki))) \
            as client:
        assert upload_and_preprocess(client, "mtls").startswith(b"\xff\xd8")
        assert client.preprocess_stats()["processed"] >= 1


def test_no_client_certificate_is_refused(mtls_stack: Stack, pki: Pki) -> None:
    for addr in _addrs(mtls_stack):
        refusal(lambda addr=addr: health_check(addr, TlsFiles(ca=str(pki.ca))))
    refusal(lambda: list_datasets(mtls_stack.catalog.addr, TlsFiles(ca=str(pki.ca))))


def test_a_client_certificate_from_the_wrong_ca_is_refused(mtls_stack: Stack, pki: Pki) -> None:
    wrong = TlsFiles(ca=str(pki.ca), cert=str(pki.wrong_client.cert),
                     key=str(pki.wrong_client.key))
    for addr in _addrs(mtls_stack):
        refusal(lambda addr=addr: health_check(addr, wrong))
    refusal(lambda: list_datasets(mtls_stack.catalog.addr, wrong))
    # The right certificate on the same addresses passes.
    assert all(health_check(addr, _with_cert(pki)) == SERVING for addr in _addrs(mtls_stack))


def test_a_service_without_its_client_certificate_cannot_reach_the_catalog(
        mtls_stack: Stack, pki: Pki, service_factory) -> None:
    # This upload service serves plain TLS itself but has no client certificate for its own
    # calls: the mTLS catalog refuses it, so checking a caller's key fails.
    upload: ServiceProcess = service_factory("upload", env={
        **pki.server_env(mtls=False), "CORRAL_CATALOG_ADDR": mtls_stack.catalog.addr,
        "CORRAL_DATA_DIR": str(mtls_stack.data_dir)})
    addrs = {**mtls_stack.client_kwargs(), "upload_addr": upload.addr}
    with Client(**addrs, credentials=credentials(_with_cert(pki))) as client:
        client.create_dataset("mtls-no-cert")
        with pytest.raises(Unavailable, match="cannot check the API key"):
            client.upload_bytes(b"x", "mtls-no-cert", "x.bin")


def test_health_checks_over_mtls(mtls_stack: Stack, pki: Pki,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in pki.client_env(with_cert=True).items():
        monkeypatch.setenv(name, value)
    assert all(healthcheck.main([addr]) == 0 for addr in _addrs(mtls_stack))


def _free_loopback_addr() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_corral_up_and_the_cli_with_one_tls_environment(pki: Pki, tmp_path: Path) -> None:
    # How a user runs it: export the CORRAL_TLS_* variables once; `corral up` passes them to
    # the services, and the CLI in the same shell uses them as a client.
    addrs = {name: _free_loopback_addr() for name in ("CATALOG", "UPLOAD", "PREPROCESS")}
    env = {**os.environ, **pki.server_env(mtls=True), "CORRAL_PREPROCESS_PROCESSES": "1",
           "CORRAL_GRACE_SECONDS": "2",
           **{f"CORRAL_{name}_ADDR": addr for name, addr in addrs.items()}}
    up = subprocess.Popen([sys.executable, "-m", "corral.cli.main", "up", "--data-dir",
                           str(tmp_path / "data")], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    try:
        for addr in addrs.values():
            wait_serving(addr, timeout=60, tls=_with_cert(pki))

        def corral(*args: str) -> str:
            done = subprocess.run([sys.executable, "-m", "corral.cli.main", *args], env=env,
                                  cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout

        corral("datasets", "create", "up-tls")
        picture = write_png(tmp_path / "up.png")
        assert corral("upload", str(picture), "--dataset", "up-tls").startswith("created 1")
        assert '"size": ' in corral("show", "up-tls:/up.png")
    finally:
        up.send_signal(signal.SIGTERM)
        _, stderr = up.communicate(timeout=30)
    assert up.returncode == 0, stderr
