"""The SDK against the real catalog, upload and preprocess services on loopback."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from pathlib import Path

import pytest
from PIL import Image

from corral import errors
from corral.client import Client, UploadEvent, preprocess_status
from sdk.images import PHOTO_FILENAMES, image_bytes, make_photo_tree

PREPROCESS_TIMEOUT = 60.0


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_dataset_lifecycle(client: Client) -> None:
    name = _name("pets")
    created = client.create_dataset(name, description="cats and dogs")
    assert created["name"] == name and len(created["id"]) == 32
    assert client.get_dataset(name)["id"] == created["id"]
    assert client.get_dataset(created["id"])["name"] == name
    assert name in {d["name"] for d in client.list_datasets()}
    json.dumps(created)
    with pytest.raises(errors.AlreadyExists):
        client.create_dataset(name)
    assert client.delete_dataset(name) == 0
    with pytest.raises(errors.NotFound):
        client.get_dataset(name)


def test_upload_a_folder_then_list_show_and_download(client: Client, tmp_path: Path) -> None:
    dataset = client.create_dataset(_name("photos"))
    photos = make_photo_tree(tmp_path)
    events: list[UploadEvent] = []
    summary = client.upload_paths([photos], dataset["name"], remote_dir="/in",
                                  metadata={"camera": 3, "tags": ["x"]}, workers=3,
                                  progress=events.append)
    assert summary.ok, summary.failures
    assert summary.counts() == {"created": 5, "skipped": 0, "overwritten": 0, "failed": 0}
    assert [r.item["filename"] for r in summary.results] == [
        f"/in/photos/{f}" for f in PHOTO_FILENAMES]
    planned = events[0]
    assert planned.kind == "planned" and planned.total_files == 5
    assert sum(e.bytes for e in events if e.kind == "bytes") == planned.total_bytes
    assert sum(e.kind == "finished" for e in events) == 5

    top = list(client.list_items(dataset, "/in/photos"))
    assert [(i["name"], i["type"]) for i in top] == [
        ("a.jpg", "file"), ("b.png", "file"), ("cats", "dir"), ("notes.txt", "file")]
    everything = list(client.list_items(dataset, "/", recursive=True))
    files = [i["filename"] for i in everything if i["type"] == "file"]
    assert files == [f"/in/photos/{f}" for f in PHOTO_FILENAMES]
    assert {"/in", "/in/photos", "/in/photos/cats", "/in/photos/cats/kittens"} <= {
        i["filename"] for i in everything if i["type"] == "dir"}

    item = client.get_item_by_path(dataset["name"], "/in/photos/cats/c.jpg")
    assert client.get_item(item["id"]) == item
    original = (photos / "cats" / "c.jpg").read_bytes()
    assert item["size"] == len(original)
    assert item["sha256"] == hashlib.sha256(original).hexdigest()
    assert item["metadata"]["user"] == {"camera": 3, "tags": ["x"]}
    json.dumps(item)

    target = tmp_path / "c-copy.jpg"
    result = client.download(item["id"], target, expected_sha256=item["sha256"])
    assert target.read_bytes() == original and result.size == len(original)
    assert client.download_bytes(item["id"]) == original

    done = {i["filename"]: i for i in client.wait_for_preprocessing(dataset, PREPROCESS_TIMEOUT)}
    processed = done["/in/photos/cats/c.jpg"]
    assert preprocess_status(processed) == "success"
    system = processed["metadata"]["system"]
    assert (system["width"], system["height"]) == (800, 600)
    assert isinstance(system["width"], int)
    thumbnail = Image.open(io.BytesIO(client.download_bytes(item["id"], thumbnail=True)))
    assert max(thumbnail.size) <= 256 and thumbnail.size[0] > thumbnail.size[1]
    assert preprocess_status(done["/in/photos/notes.txt"]) in ("success", "failed")


def test_on_exists_decides_between_skip_overwrite_and_fail(client: Client) -> None:
    dataset = client.create_dataset(_name("dupes"))
    first = client.upload_bytes(b"first", dataset, "x.bin", remote_dir="/d")
    assert first.outcome == "created"
    skipped = client.upload_bytes(b"second", dataset, "x.bin", remote_dir="/d")
    assert skipped.outcome == "skipped"
    assert skipped.item["sha256"] == hashlib.sha256(b"first").hexdigest()
    overwritten = client.upload_bytes(b"third!", dataset, "x.bin", remote_dir="/d",
                                      on_exists="overwrite")
    assert overwritten.outcome == "overwritten"
    assert overwritten.item["id"] == first.item["id"]
    assert client.download_bytes(first.item["id"]) == b"third!"
    with pytest.raises(errors.AlreadyExists):
        client.upload_bytes(b"fourth", dataset, "x.bin", remote_dir="/d", on_exists="fail")


def test_a_large_file_streams_in_chunks_and_round_trips(client: Client, tmp_path: Path) -> None:
    dataset = client.create_dataset(_name("big"))
    big = tmp_path / "big.bin"
    payload = uuid.uuid4().bytes * (3 * 65536 + 17)  # ~3 MiB, not a multiple of the chunk
    big.write_bytes(payload)
    result = client.upload_file(big, dataset, chunk_size=256 * 1024, description="raw")
    assert result.outcome == "created"
    assert result.item["size"] == len(payload) and result.item["description"] == "raw"
    out = io.BytesIO()
    client.download(result.item["id"], out)
    assert out.getvalue() == payload


def test_one_bad_file_does_not_stop_the_others(client: Client, tmp_path: Path) -> None:
    dataset = client.create_dataset(_name("partial"))
    photos = make_photo_tree(tmp_path)
    client.upload_file(photos / "a.jpg", dataset, remote_dir="/photos")
    summary = client.upload_paths([photos, tmp_path / "missing.jpg"], dataset,
                                  on_exists="fail")
    assert summary.counts() == {"created": 4, "skipped": 0, "overwritten": 0, "failed": 2}
    reasons = {f.filename: f for f in summary.failures}
    assert reasons["/photos/a.jpg"].code == "ALREADY_EXISTS"
    assert reasons["/missing.jpg"].code == "LOCAL"
    assert str(summary) == "created 4, skipped 0, overwritten 0, failed 2"


def test_update_and_delete_items(client: Client) -> None:
    dataset = client.create_dataset(_name("edit"))
    item = client.upload_bytes(image_bytes(20, 20), dataset, "a.jpg", remote_dir="/x").item
    renamed = client.update_item(item["id"], name="b.jpg", user_metadata={"label": "cat"})
    assert renamed["filename"] == "/x/b.jpg"
    assert renamed["metadata"]["user"] == {"label": "cat"}
    assert renamed["description"] == item["description"]
    moved = client.update_item(item["id"], dir="/y", description="moved")
    assert (moved["filename"], moved["description"]) == ("/y/b.jpg", "moved")
    with pytest.raises(errors.InvalidArgument):
        client.update_item(item["id"])
    assert client.delete_item(item["id"]) == 1
    with pytest.raises(errors.NotFound):
        client.get_item(item["id"])


def test_server_errors_become_corral_errors(client: Client) -> None:
    with pytest.raises(errors.NotFound):
        client.get_item("0" * 32)
    with pytest.raises(errors.NotFound):
        client.get_dataset(_name("missing"))
    with pytest.raises(errors.NotFound):
        client.upload_bytes(b"x", {"id": "0" * 32}, "x.bin")
    with pytest.raises(errors.NotFound):
        client.download_bytes("0" * 32)
    with pytest.raises(errors.InvalidArgument):
        client.create_dataset("a/b")
    with pytest.raises(errors.InvalidArgument):
        client.upload_bytes(b"x", {"id": "0" * 32}, "../escape")
    dataset = client.create_dataset(_name("thumbless"))
    text = client.upload_bytes(b"plain text", dataset, "t.txt").item
    with pytest.raises((errors.NotFound, errors.FailedPrecondition)):
        client.download_bytes(text["id"], thumbnail=True)


def test_subscribe_streams_the_dataset_events(client: Client) -> None:
    dataset = client.create_dataset(_name("events"))
    uploaded = client.upload_bytes(b"event me", dataset, "e.bin").item
    with client.subscribe(dataset, event_types=["created"]) as events:
        first = next(iter(events))
    assert (first["type"], first["item_id"]) == ("created", uploaded["id"])
    assert first["item"]["filename"] == "/e.bin" and first["cursor"]


def test_preprocess_stats_are_plain_numbers(client: Client) -> None:
    stats = client.preprocess_stats()
    assert isinstance(stats["processed"], int) and isinstance(stats["subscribed"], bool)
    json.dumps(stats)


def test_listing_follows_every_page(client, monkeypatch) -> None:
    import corral.client.client as client_module

    monkeypatch.setattr(client_module, "_LIST_PAGE_SIZE", 2)
    dataset = client.create_dataset("paged")
    names = [f"f{i}.txt" for i in range(5)]
    for name in names:
        client.upload_bytes(name.encode(), dataset["name"], name, remote_dir="/p")
    listed = [item["name"] for item in client.list_items(dataset["name"], "/p")]
    assert listed == names
    assert "paged" in [d["name"] for d in client.list_datasets()]
