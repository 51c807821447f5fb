"""The `corral` command in subprocesses against the real services."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from sdk.images import PHOTO_FILENAMES, make_photo_tree

from corral.client import Client

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_datasets_create_list_delete(corral: CliRunner) -> None:
    name = _name("cli")
    created = corral("datasets", "create", name, "--description", "from the cli")
    assert created.returncode == 0, created.stderr
    assert f"created dataset {name}" in created.stdout
    table = corral("datasets", "list")
    assert table.returncode == 0 and table.stdout.startswith("NAME")
    assert name in table.stdout
    listed = json.loads(corral("datasets", "list", "--json").stdout)
    assert {"name": name, "description": "from the cli"}.items() <= next(
        d for d in listed if d["name"] == name).items()
    again = corral("datasets", "create", name)
    assert again.returncode == 1
    assert again.stderr.startswith("error: ALREADY_EXISTS: ") and "Traceback" not in again.stderr
    deleted = corral("datasets", "delete", name)
    assert deleted.returncode == 0 and f"deleted dataset {name}" in deleted.stdout
    missing = corral("datasets", "delete", name)
    assert missing.returncode == 1 and missing.stderr.startswith("error: NOT_FOUND: ")


def test_upload_folder_then_ls_show_download(corral: CliRunner, client: Client,
                                             tmp_path: Path) -> None:
    name = _name("cli-photos")
    client.create_dataset(name)
    photos = make_photo_tree(tmp_path / "local")

    upload = corral("upload", str(photos), "--dataset", name, "--remote-path", "/in",
                    "--metadata", '{"camera": 3}', "--workers", "3")
    assert upload.returncode == 0, upload.stderr
    assert upload.stdout.strip() == "created 5, skipped 0, overwritten 0, failed 0"
    assert upload.stderr == ""  # no progress bars without a TTY
    again = corral("upload", str(photos), "--dataset", name, "--remote-path", "/in")
    assert again.stdout.strip() == "created 0, skipped 5, overwritten 0, failed 0"
    refused = corral("upload", str(photos / "a.jpg"), str(photos / "b.png"), "--dataset", name,
                     "--remote-path", "/in/photos", "--fail-on-exists")
    assert refused.returncode == 1
    assert refused.stdout.strip() == "created 0, skipped 0, overwritten 0, failed 2"
    assert f"failed: {photos / 'a.jpg'} -> /in/photos/a.jpg: ALREADY_EXISTS: " in refused.stderr
    replaced = corral("upload", str(photos / "a.jpg"), "--dataset", name,
                      "--remote-path", "/in/photos", "--overwrite")
    assert replaced.stdout.strip() == "created 0, skipped 0, overwritten 1, failed 0"

    listing = corral("ls", name, "--dir", "/in/photos")
    assert listing.returncode == 0, listing.stderr
    names = [line.split()[-1] for line in listing.stdout.splitlines()]
    assert names == ["a.jpg", "b.png", "cats/", "notes.txt"]
    size_of_a = str((photos / "a.jpg").stat().st_size)
    assert listing.stdout.splitlines()[0].split()[1] == size_of_a
    recursive = json.loads(corral("ls", name, "--recursive", "--json").stdout)
    assert [i["filename"] for i in recursive if i["type"] == "file"] == [
        f"/in/photos/{f}" for f in PHOTO_FILENAMES]
    plain_recursive = corral("ls", name, "-r").stdout
    assert "/in/photos/cats/kittens/d.jpg" in plain_recursive

    shown = json.loads(corral("show", f"{name}:/in/photos/cats/c.jpg").stdout)
    assert shown["metadata"]["user"] == {"camera": 3}
    assert set(shown["metadata"]) == {"system", "user"}
    by_id = json.loads(corral("show", shown["id"]).stdout)
    assert by_id["filename"] == "/in/photos/cats/c.jpg"

    downloaded = corral("download", shown["id"], "-o", "copy.jpg")
    assert downloaded.returncode == 0, downloaded.stderr
    copy = tmp_path / "copy.jpg"
    assert copy.read_bytes() == (photos / "cats" / "c.jpg").read_bytes()
    assert corral("download", f"{name}:/in/photos/b.png").returncode == 0
    assert (tmp_path / "b.png").read_bytes() == (photos / "b.png").read_bytes()

    client.wait_for_preprocessing(name, timeout=60)
    shown = json.loads(corral("show", shown["id"]).stdout)
    assert shown["metadata"]["system"]["width"] == 800
    (tmp_path / "thumbs").mkdir()
    thumb = corral("download", shown["id"], "--thumbnail", "-o", "thumbs")
    assert thumb.returncode == 0, thumb.stderr
    [thumb_file] = (tmp_path / "thumbs").iterdir()
    assert thumb_file.name.startswith("c.thumb.")
    assert max(Image.open(io.BytesIO(thumb_file.read_bytes())).size) <= 256

    stats = corral("stats")
    assert stats.returncode == 0 and json.loads(stats.stdout)["processed"] >= 4


def test_upload_failures_exit_non_zero(corral: CliRunner, client: Client,
                                       tmp_path: Path) -> None:
    photos = make_photo_tree(tmp_path)
    unknown = corral("upload", str(photos), "--dataset", _name("nope"))
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: NOT_FOUND: ")
    name = _name("cli-partial")
    client.create_dataset(name)
    partial = corral("upload", str(photos / "a.jpg"), str(tmp_path / "missing.jpg"),
                     "--dataset", name)
    assert partial.returncode == 1
    assert partial.stdout.strip() == "created 1, skipped 0, overwritten 0, failed 1"
    assert "missing.jpg" in partial.stderr and "no such file" in partial.stderr


def test_bad_metadata_is_a_usage_error_and_sends_nothing(corral: CliRunner, client: Client,
                                                         tmp_path: Path) -> None:
    name = _name("cli-meta")
    client.create_dataset(name)
    photos = make_photo_tree(tmp_path)
    for bad in ('{"camera": ', "[1, 2]"):
        result = corral("upload", str(photos), "--dataset", name, "--metadata", bad)
        assert result.returncode == 2
        assert "--metadata" in result.stderr and "Traceback" not in result.stderr
    assert list(client.list_items(name, recursive=True)) == []


def test_missing_items_and_downloads_are_clean_errors(corral: CliRunner) -> None:
    missing = corral("show", "0" * 32)
    assert missing.returncode == 1 and missing.stderr.startswith("error: NOT_FOUND: ")
    download = corral("download", "0" * 32, "-o", "x.bin")
    assert download.returncode == 1 and "Traceback" not in download.stderr
    usage = corral("ls")
    assert usage.returncode == 2


def test_download_to_stdout(corral: CliRunner, client: Client) -> None:
    name = _name("cli-stdout")
    client.create_dataset(name)
    item = client.upload_bytes(b"hello corral", name, "h.txt").item
    out = corral("download", item["id"], "-o", "-")
    assert out.stdout == "hello corral"
    assert hashlib.sha256(out.stdout.encode()).hexdigest() == item["sha256"]
