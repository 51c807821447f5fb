"""Link items, clones and CSV imports through the three real services, with a loopback HTTP
server as the users' own storage (allowed by CORRAL_FETCH_ALLOW as one exact endpoint) and a
canary listener on another loopback port that must never see a connection."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fetch import Canary
from PIL import Image
from preprocess.images import encode, gradient
from sdk.stack import Stack, running_stack

from corral.cli.main import main as cli_main
from corral.client import Client
from corral.client.client import preprocess_status
from corral.errors import FailedPrecondition, InvalidArgument
from corral.rpc import open_channel
from corral.upload.v1 import upload_service_pb2, upload_service_pb2_grpc
from e2e.remote import RemoteFiles, serving

PHOTO = encode(gradient(640, 480), "JPEG")
PNG = encode(gradient(300, 200, "RGBA"), "PNG")


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    listener = Canary("127.0.0.1")
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def remote(canary: Canary) -> Iterator[tuple[RemoteFiles, str]]:
    files = RemoteFiles(files={
        "/cats/photo.jpg": ("image/jpeg", PHOTO),
        "/cats/alpha.png": ("image/png", PNG),
        "/cats/page.jpg": ("text/html", b"<html><body>not a picture</body></html>"),
    }, redirects={"/sneaky.jpg": f"http://127.0.0.1:{canary.port}/secret"})
    with serving(files) as endpoint:
        yield files, f"http://{endpoint}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, remote) -> Iterator[Stack]:
    endpoint = remote[1].removeprefix("http://")
    with running_stack(tmp_path_factory.mktemp("links"),
                       {"CORRAL_FETCH_ALLOW": endpoint,
                        "CORRAL_FETCH_READ_TIMEOUT_SECONDS": "5"}) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[Client]:
    with Client(**stack.client_kwargs()) as sdk_client:
        yield sdk_client


def _cli(stack: Stack, *args: str) -> int:
    return cli_main(["--catalog-addr", stack.catalog.addr, "--upload-addr", stack.upload.addr,
                     "--preprocess-addr", stack.preprocess.addr, *args])


def _link_file(url: str, mimetype: str = "image/jpeg", shebang: str = "dataloop") -> bytes:
    return json.dumps({"type": "link", "shebang": shebang, "metadata": {
        "dltype": "link", "linkInfo": {"type": "url", "ref": url, "mimetype": mimetype}}}
    ).encode()


def _by_name(items: list[dict]) -> dict[str, dict]:
    return {item["name"]: item for item in items}


def test_link_file_upload_makes_a_link_item_preprocessed_and_downloadable(client, remote):
    _, base = remote
    client.create_dataset("linkfile")
    result = client.upload_bytes(_link_file(f"{base}/cats/photo.jpg"), "linkfile",
                                 "photo.json", remote_dir="/links")
    item = result.item
    assert item["type"] == "link" and item["size"] == 0
    assert item["link"] == {"url": f"{base}/cats/photo.jpg", "mimetype": "image/jpeg"}
    corral_json = client.upload_bytes(_link_file(f"{base}/cats/alpha.png", "image", "corral"),
                                      "linkfile", "alpha.json", remote_dir="/links").item
    assert corral_json["type"] == "link" and corral_json["link"]["mimetype"] == "image"
    plain_json = client.upload_bytes(b'{"type": "not-a-link"}', "linkfile", "data.json").item
    assert plain_json["type"] == "file"

    assert client.download_bytes(item["id"]) == PHOTO  # streamed through corral
    items = _by_name(client.wait_for_preprocessing("linkfile", timeout=60))
    photo = items["photo.json"]["metadata"]["system"]
    assert preprocess_status(items["photo.json"]) == "success"
    assert (photo["width"], photo["height"], photo["mimetype"]) == (640, 480, "image/jpeg")
    assert photo["size"] == len(PHOTO)
    thumbnail = client.download_bytes(item["id"], thumbnail=True)
    assert Image.open(io.BytesIO(thumbnail)).size == (256, 192)
    assert items["alpha.json"]["metadata"]["system"]["mimetype"] == "image/png"


def test_bad_links_fail_with_the_reason_and_never_reach_private_addresses(
        client, remote, canary, stack, tmp_path):
    _, base = remote
    client.create_dataset("badlinks")
    blocked = [f"http://127.0.0.1:{canary.port}/x.jpg", f"http://localhost:{canary.port}/x",
               f"http://[::ffff:127.0.0.1]:{canary.port}/x", f"http://2130706433:{canary.port}/",
               f"{base}/sneaky.jpg"]
    results = client.link_many("badlinks", [*blocked, f"{base}/missing.jpg",
                                            f"{base}/cats/page.jpg"],
                               names=[f"b{i}.jpg" for i in range(len(blocked))]
                               + ["missing.jpg", "page.jpg"])
    assert all(isinstance(r, dict) and r["type"] == "link" for r in results)
    items = _by_name(client.wait_for_preprocessing("badlinks", timeout=90))
    for name, item in items.items():
        assert preprocess_status(item) == "failed", name
    reasons = {name: item["metadata"]["system"]["executionLogs"]["preprocess"]["error"]
               for name, item in items.items()}
    assert all("private or reserved" in reasons[f"b{i}.jpg"] for i in range(len(blocked))), \
        reasons
    assert "404" in reasons["missing.jpg"]
    assert "claims image/jpeg but its content is text/" in reasons["page.jpg"]
    with pytest.raises(FailedPrecondition, match="private or reserved"):
        client.download_bytes(items["b0.jpg"]["id"])
    assert _cli(stack, "download", items["b4.jpg"]["id"], "-o", str(tmp_path / "x")) == 1
    assert canary.hits() == 0


def test_link_sdk_and_cli(client, remote, stack, capsys):
    _, base = remote
    client.create_dataset("direct")
    item = client.link("direct", f"{base}/cats/photo.jpg", remote_dir="/web",
                       metadata={"camera": 7})
    assert (item["filename"], item["metadata"]["user"]) == ("/web/photo.jpg", {"camera": 7})
    assert _cli(stack, "link", f"{base}/cats/alpha.png", "--dataset", "direct",
                "--remote-path", "/web", "--name", "a.png", "--mimetype", "image/png") == 0
    assert "/web/a.png" in capsys.readouterr().out
    assert _cli(stack, "link", "file:///etc/passwd", "--dataset", "direct") == 1
    assert "link.url" in capsys.readouterr().err
    assert _cli(stack, "ls", "direct", "--dir", "/web") == 0
    assert f"a.png -> {base}/cats/alpha.png" in capsys.readouterr().out
    listed = _by_name(client.list_items("direct", "/web"))
    assert listed["a.png"]["link"] == {"url": f"{base}/cats/alpha.png", "mimetype": "image/png"}
    assert client.download_bytes(listed["a.png"]["id"]) == PNG


def test_clones_share_the_binary_and_survive_the_original(client, stack, capsys):
    client.create_dataset("originals")
    client.create_dataset("copies")
    original = client.upload_bytes(PHOTO, "originals", "cat.jpg", remote_dir="/in",
                                   metadata={"who": "original"}).item
    client.wait_for_preprocessing("originals", timeout=60)
    clone = client.clone(original["id"], dataset="copies", remote_dir="/from-originals",
                         metadata={"who": "clone"})
    assert clone["sha256"] == original["sha256"] and clone["metadata"]["user"] == {
        "who": "clone"}
    assert _cli(stack, "clone", "originals:/in/cat.jpg", "--remote-path", "/again",
                "--name", "cat2.jpg") == 0
    assert "/again/cat2.jpg" in capsys.readouterr().out
    assert client.get_item(original["id"])["metadata"]["user"] == {"who": "original"}

    client.delete_item(original["id"])
    assert client.download_bytes(clone["id"]) == PHOTO
    assert client.download_bytes(clone["id"], thumbnail=True)
    done = client.wait_for_preprocessing("copies", timeout=30)
    assert done[0]["metadata"]["system"]["width"] == 640
    # the pool did not process the clone again: its record is the original's
    assert done[0]["metadata"]["system"]["clonedFrom"]["itemId"] == original["id"]


def _csv(rows: list[dict[str, str]], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode()


def test_csv_import_with_every_column_and_malformed_rows(client, remote, stack, canary,
                                                         tmp_path):
    _, base = remote
    client.create_dataset("imports")
    columns = ["ID", "URL", "image_bytes", "name", "action", "mimetype", "item_metadata",
               "item_description"]
    rows = [
        {"ID": "l1", "URL": f"{base}/cats/photo.jpg", "item_metadata": '{"lot": 5}',
         "item_description": "a linked, \"quoted\"\nmulti-line description"},
        {"ID": "u1", "URL": f"{base}/cats/alpha.png", "action": "upload", "name": "alpha.png",
         "mimetype": "image/png"},
        {"ID": "b1", "image_bytes": base64.b64encode(PNG).decode(), "name": "inline.png"},
        {"ID": "bad64", "image_bytes": "***not base64***"},
        {"ID": "badjson", "URL": f"{base}/cats/photo.jpg", "item_metadata": "{nope"},
        {"ID": "", "URL": ""},
        {"ID": "act", "URL": f"{base}/cats/photo.jpg", "action": "copy"},
        {"ID": "gone", "URL": f"{base}/missing.jpg", "action": "upload"},
        {"ID": "canary", "URL": f"http://127.0.0.1:{canary.port}/a.jpg", "action": "upload"},
        {"ID": "v1", "URL": f"{base}/clip.mp4", "mimetype": "video"},
    ]
    path = tmp_path / "batch-1.csv"
    path.write_bytes(_csv(rows, columns))
    seen = []
    report = client.import_csv(path, "imports", remote_dir="/csv", on_row=seen.append)
    assert report.folder == "/csv/batch-1"
    assert (report.rows, report.created, report.skipped, report.failed) == (10, 4, 0, 6)
    failures = {f.id: f.error for f in report.failures}
    assert "image_bytes" in failures["bad64"].message
    assert "item_metadata" in failures["badjson"].message
    assert "ID" in failures[""].message
    assert "action" in failures["act"].message
    assert failures["gone"].code == "FAILED_PRECONDITION" and "404" in failures["gone"].message
    assert "private or reserved" in failures["canary"].message
    assert sorted(r.row for r in seen) == list(range(1, 11))

    items = _by_name(client.list_items("imports", "/csv/batch-1"))
    assert set(items) == {"l1", "alpha.png", "inline.png", "v1"}
    linked = items["l1"]
    assert linked["type"] == "link" and linked["metadata"]["user"] == {"lot": 5}
    assert linked["description"] == "a linked, \"quoted\"\nmulti-line description"
    assert items["alpha.png"]["type"] == "file" and items["alpha.png"]["size"] == len(PNG)
    assert client.download_bytes(items["alpha.png"]["id"]) == PNG
    assert client.download_bytes(items["inline.png"]["id"]) == PNG
    assert items["v1"]["link"]["mimetype"] == "video"

    again = client.import_csv(path, "imports", remote_dir="/csv")
    assert (again.created, again.skipped, again.failed) == (0, 4, 6)
    assert len(list(client.list_items("imports", "/csv/batch-1"))) == 4

    report_file = tmp_path / "report.csv"
    assert _cli(stack, "import-csv", str(path), "--dataset", "imports", "--remote-path",
                "/csv", "--report", str(report_file), "-q") == 1  # rows failed
    lines = list(csv.DictReader(report_file.open()))
    assert len(lines) == 10
    assert {line["id"]: line["outcome"] for line in lines}["l1"] == "skipped"
    assert canary.hits() == 0


def test_csv_import_refuses_a_bad_header_and_writes_nothing(client, tmp_path: Path):
    client.create_dataset("badheader")
    path = tmp_path / "h.csv"
    path.write_text("ID,URL,colour\nx,http://example.com/a.jpg,red\n")
    with pytest.raises(InvalidArgument, match="colour"):
        client.import_csv(path, "badheader")
    assert list(client.list_items("badheader", recursive=True)) == []


def _import_call(stack: Stack, messages: list) -> list:
    with open_channel(stack.upload.addr) as channel:
        stub = upload_service_pb2_grpc.UploadServiceStub(channel)
        return list(stub.ImportCsv(iter(messages), timeout=30))


def test_import_csv_over_plain_grpc_refuses_bad_specs(client, stack):
    dataset = client.create_dataset("grpc-import")
    spec = upload_service_pb2.ImportCsvSpec
    request = upload_service_pb2.ImportCsvRequest
    cases = [
        ([request(data=b"ID,URL\n")], "spec"),
        ([request(spec=spec(dataset_id=dataset["id"], csv_name="../x.csv"))], "csv_name"),
        ([request(spec=spec(dataset_id=dataset["id"], csv_name="a.csv", remote_dir="a\\b"))],
         "remote_dir"),
        ([request(spec=spec(dataset_id="f" * 32, csv_name="a.csv"))], "not found"),
        ([request(spec=spec(dataset_id=dataset["id"], csv_name="a.csv")),
          request(spec=spec(dataset_id=dataset["id"], csv_name="b.csv"))], "only the first"),
    ]
    for messages, text in cases:
        with pytest.raises(grpc.RpcError) as caught:
            _import_call(stack, messages)
        assert caught.value.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                                       grpc.StatusCode.NOT_FOUND), caught.value.details()
        assert text in caught.value.details()
    assert list(client.list_items(dataset, recursive=True)) == []


def test_import_of_many_rows_streams_in_batches(client, stack, remote):
    _, base = remote
    dataset = client.create_dataset("many-rows")
    body = "ID,URL\n" + "".join(f"r{i},{base}/cats/photo.jpg\n" for i in range(1200))
    messages = [upload_service_pb2.ImportCsvRequest(spec=upload_service_pb2.ImportCsvSpec(
        dataset_id=dataset["id"], csv_name="many.csv"))]
    encoded = body.encode()
    messages += [upload_service_pb2.ImportCsvRequest(data=encoded[i:i + 1000])
                 for i in range(0, len(encoded), 1000)]  # chunk edges fall inside rows
    responses = _import_call(stack, messages)
    summary = responses[-1].summary
    assert (summary.rows, summary.created, summary.failed) == (1200, 1200, 0)
    assert summary.folder == "/many"
    rows = sorted(r.row.row for r in responses[:-1])
    assert rows == list(range(1, 1201))
    assert dataset["id"] and client.get_dataset("many-rows")["item_count"] == 1200
