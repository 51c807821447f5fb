"""TLS on the real three services: the SDK, the CLI and the services' calls to one another
all go over TLS; plaintext is refused; clients verify the server's certificate and name."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2
from sdk.stack import Stack, running_stack

from corral import healthcheck
from corral.client import Client
from corral.credentials import TlsFiles
from corral.launcher import ServiceProcess, wait_serving
from corral.rpc import open_channel
from services.catalog.config import CatalogConfig
from services.common.config import env_names
from services.common.security import SecuritySettings
from services.preprocess.config import PreprocessConfig
from services.upload.config import UploadConfig

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
def tls_stack(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The services get the CA too: they call one another (and the launcher checks their
    # health) over TLS.
    with running_stack(tmp_path_factory.mktemp("tls-stack"), pki.server_env()) as stack:
        yield stack


def _addrs(stack: Stack) -> list[str]:
    return [stack.catalog.addr, stack.upload.addr, stack.preprocess.addr]


def test_sdk_uploads_and_preprocesses_over_tls(tls_stack: Stack, pki: Pki,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_TLS_CA", str(pki.ca))  # the SDK reads the same variables
    with Client(**tls_stack.client_kwargs()) as client:
        assert client.credentials.tls.ca == str(pki.ca)
        thumbnail = upload_and_preprocess(client, "tls-sdk")
        assert thumbnail.startswith(b"\xff\xd8")
        assert client.preprocess_stats()["processed"] >= 1


def test_cli_over_tls(tls_stack: Stack, pki: Pki, tmp_path: Path) -> None:
    env = {**tls_stack.env, **pki.client_env()}

    def corral(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "corral.cli.main", *args], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done

    corral("datasets", "create", "tls-cli")
    upload = corral("upload", str(write_png(tmp_path / "cli.png")), "--dataset", "tls-cli")
    assert upload.stdout.strip() == "created 1, skipped 0, overwritten 0, failed 0"
    deadline = time.monotonic() + 60
    while "thumbnail" not in json.loads(corral("show", "tls-cli:/cli.png").stdout)[
            "metadata"]["system"]:
        assert time.monotonic() < deadline, "not preprocessed within 60 s"
        time.sleep(0.3)
    corral("download", "tls-cli:/cli.png", "--thumbnail", "-o", str(tmp_path / "thumb.jpg"))
    assert (tmp_path / "thumb.jpg").read_bytes().startswith(b"\xff\xd8")
    assert json.loads(corral("stats").stdout)["processed"] >= 1


def test_cli_names_tls_when_the_server_is_not_trusted(tls_stack: Stack, pki: Pki,
                                                      tmp_path: Path) -> None:
    for env in ({}, {"CORRAL_TLS_CA": str(pki.wrong_ca)}):
        done = subprocess.run([sys.executable, "-m", "corral.cli.main", "datasets", "list"],
                              env={**tls_stack.env, **env}, cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 1
        assert "error: UNAVAILABLE" in done.stderr and "set CORRAL_TLS_CA" in done.stderr


def test_plaintext_is_refused_by_every_service(tls_stack: Stack) -> None:
    for addr in _addrs(tls_stack):
        refusal(lambda addr=addr: health_check(addr, TlsFiles()))
    refusal(lambda: list_datasets(tls_stack.catalog.addr, TlsFiles()))


@pytest.mark.parametrize("case", ["system roots", "client cert, no CA", "wrong CA"])
def test_clients_refuse_a_server_they_do_not_trust(tls_stack: Stack, pki: Pki,
                                                   case: str) -> None:
    tls = {"system roots": None,
           "client cert, no CA": TlsFiles(cert=str(pki.client.cert), key=str(pki.client.key)),
           "wrong CA": TlsFiles(ca=str(pki.wrong_ca))}[case]
    for addr in _addrs(tls_stack):
        if tls is None:  # a TLS client trusting only the system's roots
            def call(addr: str = addr) -> object:
                with grpc.secure_channel(addr, grpc.ssl_channel_credentials()) as channel:
                    return channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5)
        else:
            def call(addr: str = addr, tls: TlsFiles = tls) -> object:
                return health_check(addr, tls)
        assert "CERTIFICATE_VERIFY_FAILED" in refusal(call)


def test_the_server_name_is_verified(tls_stack: Stack, pki: Pki) -> None:
    addr = tls_stack.catalog.addr
    details = refusal(lambda: list_datasets(addr, TlsFiles(ca=str(pki.ca),
                                                            server_name="other.example")))
    assert "Hostname Verification" in details
    # The certificate names 127.0.0.1, ::1 and localhost: any of them passes.
    assert isinstance(list_datasets(addr, TlsFiles(ca=str(pki.ca), server_name="localhost")),
                      list)
    port = addr.rsplit(":", 1)[1]
    assert health_check(f"localhost:{port}", TlsFiles(ca=str(pki.ca))) == SERVING


def test_a_certificate_for_another_name_needs_the_server_name_setting(
        pki: Pki, service_factory) -> None:
    # Its certificate names only corral.internal; the launcher's health check (like every
    # client of a service) takes CORRAL_TLS_SERVER_NAME from the environment.
    catalog: ServiceProcess = service_factory("catalog", env={
        "CORRAL_TLS_CERT": str(pki.named_server.cert),
        "CORRAL_TLS_KEY": str(pki.named_server.key),
        "CORRAL_TLS_CA": str(pki.ca), "CORRAL_TLS_SERVER_NAME": "corral.internal"})
    details = refusal(lambda: list_datasets(catalog.addr, TlsFiles(ca=str(pki.ca))))
    assert "Hostname Verification" in details
    named = TlsFiles(ca=str(pki.ca), server_name="corral.internal")
    assert list_datasets(catalog.addr, named) == []


def test_health_checks_over_tls(tls_stack: Stack, pki: Pki,
                                monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CORRAL_TLS_CA", str(pki.ca))
    for addr in _addrs(tls_stack):
        assert healthcheck.main([addr]) == 0
        wait_serving(addr, timeout=5)  # the launcher's check, TLS files from the environment
    with pytest.raises(TimeoutError):
        wait_serving(tls_stack.catalog.addr, timeout=0.5, tls=TlsFiles())
    # Inside a service's container: it serves TLS but was given no CA to check itself with.
    monkeypatch.delenv("CORRAL_TLS_CA")
    monkeypatch.setenv("CORRAL_TLS_CERT", str(pki.server.cert))
    assert healthcheck.main([tls_stack.upload.addr]) == 1
    assert "set CORRAL_TLS_CA" in capsys.readouterr().err


def test_half_configured_tls_is_an_error(pki: Pki) -> None:
    with pytest.raises(ValueError, match="CORRAL_TLS_CLIENT_CA needs"):
        SecuritySettings(tls_client_ca=str(pki.ca)).server_tls()
    with pytest.raises(ValueError, match="needs both CORRAL_TLS_CERT and CORRAL_TLS_KEY"):
        SecuritySettings(tls_cert=str(pki.server.cert)).server_tls()
    with pytest.raises(ValueError, match="CORRAL_TLS_CLIENT_KEY"):
        open_channel("127.0.0.1:1", credentials(TlsFiles(ca=str(pki.ca),
                                                         cert=str(pki.client.cert))))


def test_an_impostor_with_the_right_names_is_refused(pki: Pki, service_factory) -> None:
    # A server certificate for 127.0.0.1 signed by another CA: clients trusting corral's CA
    # do not connect (and so never send their API key to it).
    impostor: ServiceProcess = service_factory("catalog", env={
        "CORRAL_TLS_CERT": str(pki.wrong_server.cert),
        "CORRAL_TLS_KEY": str(pki.wrong_server.key), "CORRAL_TLS_CA": str(pki.wrong_ca)})
    details = refusal(lambda: list_datasets(impostor.addr, TlsFiles(ca=str(pki.ca))))
    assert "CERTIFICATE_VERIFY_FAILED" in details
    assert list_datasets(impostor.addr, TlsFiles(ca=str(pki.wrong_ca))) == []


def test_the_compose_tls_override_sets_settings_the_services_read() -> None:
    root = Path(__file__).resolve().parents[2]
    override = yaml.safe_load((root / "docker-compose.tls.yml").read_text())
    configs = {"catalog": CatalogConfig, "upload": UploadConfig, "preprocess": PreprocessConfig}
    assert set(override["services"]) == set(configs)
    for name, config in configs.items():
        service = override["services"][name]
        assert set(service["environment"]) <= env_names(config)
        assert {"CORRAL_TLS_CERT", "CORRAL_TLS_KEY", "CORRAL_TLS_CA"} <= set(
            service["environment"])
        assert service["volumes"] == ["./certs:/certs:ro"]
    exe = shutil.which("docker-compose")
    if exe:  # the merged file is valid and keeps the base settings
        merged = yaml.safe_load(subprocess.run(
            [exe, "-f", "docker-compose.yml", "-f", "docker-compose.tls.yml", "config"],
            capture_output=True, text=True, check=True, cwd=root).stdout)
        env = merged["services"]["upload"]["environment"]
        assert env["CORRAL_TLS_CA"] == "/certs/ca.pem" and env["CORRAL_BLOB_STORE"] == "s3"
