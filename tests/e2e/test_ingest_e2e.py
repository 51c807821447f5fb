"""A folder of mixed files through all three real services, the way a user ingests one:
SDK upload -> upload service -> blob store + catalog -> preprocess -> metadata and thumbnails."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from preprocess.images import (
    QUADRANT_COLOURS,
    encode,
    gradient,
    oriented_jpeg,
    png_declaring,
    truncated_jpeg,
)
from sdk.stack import Stack

from corral.client import Client
from corral.client.client import preprocess_status

PICTURE = (120, 60)  # display width x height of every oriented sample


def _write_samples(root: Path) -> Path:
    folder = root / "mixed"
    (folder / "exif").mkdir(parents=True)
    (folder / "formats").mkdir()
    (folder / "bad").mkdir()
    for orientation in range(1, 9):
        (folder / "exif" / f"o{orientation}.jpg").write_bytes(oriented_jpeg(orientation))
    formats = folder / "formats"
    (formats / "alpha.png").write_bytes(encode(gradient(300, 200, "RGBA"), "PNG"))
    (formats / "anim.gif").write_bytes(encode(gradient(64, 48, "P"), "GIF"))
    (formats / "photo.webp").write_bytes(encode(gradient(400, 300), "WEBP"))
    (formats / "scan.tiff").write_bytes(encode(gradient(500, 300), "TIFF"))
    (formats / "print.jpg").write_bytes(encode(gradient(600, 400, "CMYK"), "JPEG"))
    (formats / "gray.jpg").write_bytes(encode(gradient(640, 480, "L"), "JPEG"))
    (formats / "lying-name.jpg").write_bytes(encode(gradient(32, 32), "PNG"))
    (formats / "notes.txt").write_text("plain words\n")
    (folder / "bad" / "truncated.jpg").write_bytes(truncated_jpeg())
    (folder / "bad" / "bomb.png").write_bytes(png_declaring(40_000, 40_000))
    return folder


@pytest.fixture(scope="module")
def ingested(stack: Stack, tmp_path_factory: pytest.TempPathFactory):
    folder = _write_samples(tmp_path_factory.mktemp("samples"))
    with Client(**stack.client_kwargs()) as client:
        client.create_dataset("e2e")
        summary = client.upload_paths([folder], "e2e", remote_dir="/in")
        assert summary.ok and len(summary.created) == 18, summary.counts()
        items = client.wait_for_preprocessing("e2e", timeout=120)
        yield client, {item["filename"]: item for item in items}


def _system(items: dict, filename: str) -> dict:
    return items[f"/in/mixed/{filename}"]["metadata"]["system"]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(ingested, orientation: int) -> None:
    client, items = ingested
    item = items[f"/in/mixed/exif/o{orientation}.jpg"]
    system = item["metadata"]["system"]
    assert preprocess_status(item) == "success"
    assert system["exifOrientation"] == orientation
    assert (system["displayWidth"], system["displayHeight"]) == PICTURE
    stored = PICTURE[::-1] if orientation >= 5 else PICTURE
    assert (system["width"], system["height"]) == stored
    thumb = Image.open(io.BytesIO(client.download_bytes(item["id"], thumbnail=True))).convert("RGB")
    assert thumb.size == (system["thumbnail"]["width"], system["thumbnail"]["height"])
    w, h = thumb.size
    assert w > h, "the thumbnail is upright (landscape like the picture)"
    probes = {"top_left": (w // 4, h // 4), "top_right": (3 * w // 4, h // 4),
              "bottom_left": (w // 4, 3 * h // 4), "bottom_right": (3 * w // 4, 3 * h // 4)}
    for quadrant, xy in probes.items():
        got, want = thumb.getpixel(xy), QUADRANT_COLOURS[quadrant]
        assert all(abs(g - e) < 60 for g, e in zip(got, want, strict=True)), (quadrant, got)


@pytest.mark.parametrize(("filename", "mimetype", "encoding", "mode"), [
    ("formats/alpha.png", "image/png", "png", "RGBA"),
    ("formats/anim.gif", "image/gif", "gif", "P"),
    ("formats/photo.webp", "image/webp", "webp", "RGB"),
    ("formats/scan.tiff", "image/tiff", "tiff", "RGB"),
    ("formats/print.jpg", "image/jpeg", "jpeg", "CMYK"),
    ("formats/gray.jpg", "image/jpeg", "jpeg", "L"),
    ("formats/lying-name.jpg", "image/png", "png", "RGB"),
])
def test_formats_get_file_info_and_a_thumbnail(ingested, filename, mimetype, encoding, mode):
    client, items = ingested
    system = _system(items, filename)
    assert (system["mimetype"], system["encoding"], system["mode"]) == (mimetype, encoding, mode)
    assert system["name"] == filename.rsplit("/", 1)[1]
    assert system["size"] == items[f"/in/mixed/{filename}"]["size"]
    assert max(system["thumbnail"]["width"], system["thumbnail"]["height"]) <= 256
    thumb = client.download_bytes(items[f"/in/mixed/{filename}"]["id"], thumbnail=True)
    assert len(thumb) == system["thumbnail"]["size"]
    assert Image.open(io.BytesIO(thumb)).size == (system["thumbnail"]["width"],
                                                  system["thumbnail"]["height"])


def test_non_images_get_size_mimetype_and_encoding(ingested) -> None:
    _, items = ingested
    system = _system(items, "formats/notes.txt")
    assert (system["mimetype"], system["encoding"], system["size"]) == ("text/plain", "ascii", 12)
    assert system["executionLogs"]["preprocess"]["status"] == "success"
    assert not system.get("thumbnail")


@pytest.mark.parametrize(("filename", "reason"), [
    ("bad/truncated.jpg", "truncated"),
    ("bad/bomb.png", "pixels"),
])
def test_bad_images_fail_with_a_reason_and_the_worker_goes_on(ingested, filename, reason):
    client, items = ingested
    item = items[f"/in/mixed/{filename}"]
    record = item["metadata"]["system"]["executionLogs"]["preprocess"]
    assert record["status"] == "failed"
    assert reason in record["error"].lower()
    stats = client.preprocess_stats()
    assert stats["failed"] == 2 and stats["processed"] == 16 and stats["subscribed"]
