"""`corral ls --filter/--sort/--count` and `corral metadata set|update` against the real
services."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable

from corral.client import Client

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def _dataset(client: Client) -> str:
    name = f"cli-meta-{uuid.uuid4().hex[:8]}"
    client.create_dataset(name)
    for i, file_name in enumerate(["a.jpg", "b.jpg", "c.png", "d.jpg"]):
        client.upload_bytes(b"x" * (10 + i), name, file_name, remote_dir="/cam",
                            metadata={"camera": i % 2 + 3, "site": "north"})
    return name


def test_metadata_set_merges_unsets_and_replaces(corral: CliRunner, client: Client) -> None:
    name = _dataset(client)
    ref = f"{name}:/cam/a.jpg"
    merged = corral("metadata", "set", ref, "lot.number=7", "note=hello world", "ok=true",
                    "code=\"42\"", "tags=[1,2]")
    assert merged.returncode == 0, merged.stderr
    assert json.loads(merged.stdout) == {"camera": 3, "site": "north", "lot": {"number": 7},
                                         "note": "hello world", "ok": True, "code": "42",
                                         "tags": [1, 2]}
    unset = corral("metadata", "set", ref, "--unset", "note", "--unset", "lot.number")
    assert json.loads(unset.stdout) == {"camera": 3, "site": "north", "lot": {}, "ok": True,
                                        "code": "42", "tags": [1, 2]}
    replaced = corral("metadata", "set", ref, "only=1", "--replace")
    assert json.loads(replaced.stdout) == {"only": 1}
    assert client.get_item_by_path(name, "/cam/a.jpg")["metadata"]["user"] == {"only": 1}
    nothing = corral("metadata", "set", ref)
    assert nothing.returncode == 1 and "nothing to change" in nothing.stderr


def test_ls_filters_sorts_and_counts(corral: CliRunner, client: Client) -> None:
    name = _dataset(client)
    listed = corral("ls", name, "--filter", "metadata.user.camera=3", "--filter", "name~*.jpg",
                    "--sort", "-size", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [i["filename"] for i in json.loads(listed.stdout)] == ["/cam/a.jpg"]
    either = corral("ls", name, "--filter", "metadata.user.camera=4 | name=c.png",
                    "--sort", "-size")
    assert [line.split()[-1] for line in either.stdout.splitlines()] == [
        "/cam/d.jpg", "/cam/c.png", "/cam/b.jpg"]
    count = corral("ls", name, "--filter", "size>10", "--count")
    assert count.stdout.strip() == "3"
    assert json.loads(corral("ls", name, "--count", "--json").stdout) == {"count": 1}
    by_size = corral("ls", name, "--dir", "/cam", "--sort", "-size")
    assert [line.split()[-1] for line in by_size.stdout.splitlines()] == [
        "d.jpg", "c.png", "b.jpg", "a.jpg"]
    bad = corral("ls", name, "--filter", "colour=red")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: INVALID_ARGUMENT: filter: unknown field 'colour'")
    malformed = corral("ls", name, "--filter", "camera")
    assert malformed.returncode == 1 and "expected FIELD OP VALUE" in malformed.stderr


def test_metadata_update_changes_every_match(corral: CliRunner, client: Client) -> None:
    name = _dataset(client)
    updated = corral("metadata", "update", name, "--filter", "name~*.jpg",
                     "--filter", "metadata.user.camera=3", "--set", "reviewed=true",
                     "--unset", "site")
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout.strip() == "updated 1 items"
    assert client.get_item_by_path(name, "/cam/a.jpg")["metadata"]["user"] == {
        "camera": 3, "reviewed": True}
    everything = corral("metadata", "update", name, "--filter", "type=file",
                        "--set", "batch=7", "--replace")
    assert everything.stdout.strip() == "updated 4 items"
    assert {json.dumps(i["metadata"]["user"]) for i in client.list_items(
        name, recursive=True) if i["type"] == "file"} == {'{"batch": 7}'}
    missing = corral("metadata", "update", name, "--set", "x=1")
    assert missing.returncode == 2 and "--filter" in missing.stderr
