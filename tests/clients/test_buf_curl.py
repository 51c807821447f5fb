"""Server reflection works with a generic client: `buf curl` (the buf-bin package) lists the
services of each corral server and calls RPCs with JSON bodies, with no .proto files at hand."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import testkeys
from sdk.stack import Stack

from corral.client import Client


def buf_binary() -> str:
    # buf-bin installs `buf` next to the interpreter (the venv's bin), which need not be on PATH.
    beside = Path(sys.executable).with_name("buf")
    found = str(beside) if beside.exists() else shutil.which("buf")
    assert found, "buf is not installed (pip install -e '.[dev]' brings buf-bin)"
    return found


def buf_curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [buf_binary(), "curl", "--protocol", "grpc", "--http2-prior-knowledge",
         "--timeout", "20s", "-H", f"authorization: Bearer {testkeys.ADMIN_KEY}",
         "--reflect-header", f"authorization: Bearer {testkeys.ADMIN_KEY}", *args],
        capture_output=True, text=True, timeout=60, check=False)


def lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_buf_curl_lists_the_services_of_every_server(stack: Stack) -> None:
    common = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    for service, names in (
            (stack.catalog, {"corral.catalog.v1.CatalogService",
                             "corral.catalog.v1.AdminService"}),
            (stack.upload, {"corral.upload.v1.UploadService"}),
            (stack.preprocess, {"corral.preprocess.v1.PreprocessService"})):
        assert set(lines(buf_curl("--list-services", f"http://{service.addr}"))) == {
            *names, *common}
    methods = lines(buf_curl("--list-methods", f"http://{stack.catalog.addr}"))
    assert "corral.catalog.v1.CatalogService/CreateDataset" in methods
    assert "corral.catalog.v1.CatalogService/Subscribe" in methods


def test_buf_curl_calls_rpcs_with_json(stack: Stack, client: Client) -> None:
    catalog = f"http://{stack.catalog.addr}/corral.catalog.v1.CatalogService"
    done = buf_curl("-d", json.dumps({"name": "via-buf-curl", "description": "generic"}),
                    f"{catalog}/CreateDataset")
    assert done.returncode == 0, done.stderr
    dataset = json.loads(done.stdout)["dataset"]
    assert dataset["name"] == "via-buf-curl"
    assert dataset["description"] == "generic"
    assert len(dataset["id"]) == 32
    assert "createTime" in dataset  # proto3 JSON: lowerCamelCase, RFC 3339 timestamps
    assert client.get_dataset("via-buf-curl")["id"] == dataset["id"]

    done = buf_curl("-d", "{}", f"{catalog}/ListDatasets")
    listed = json.loads(done.stdout)["datasets"]
    assert dataset["id"] in {d["id"] for d in listed}

    # A client-streaming RPC: each JSON document is one request message (bytes in base64).
    spec = {"datasetId": dataset["id"], "remoteDir": "/buf", "name": "hello.txt"}
    messages = [
        {"spec": spec, "writeOffset": "0", "data": base64.b64encode(b"hello ").decode()},
        {"writeOffset": "6", "data": base64.b64encode(b"world").decode(), "finishWrite": True},
    ]
    upload = f"http://{stack.upload.addr}/corral.upload.v1.UploadService/UploadItem"
    done = buf_curl("-d", "\n".join(json.dumps(m) for m in messages), upload)
    assert done.returncode == 0, done.stderr
    item = json.loads(done.stdout)["item"]
    assert item["filename"] == "/buf/hello.txt"
    assert item["size"] == "11"  # int64 as a JSON string
    assert client.download_bytes(item["id"]) == b"hello world"

    # Errors come back as the gRPC status, with a non-zero exit.
    done = buf_curl("-d", json.dumps({"name": "no-such-dataset"}), f"{catalog}/GetDataset")
    assert done.returncode != 0
    assert json.loads(done.stderr)["code"] == "not_found"
