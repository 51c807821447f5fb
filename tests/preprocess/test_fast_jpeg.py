"""Colour JPEG thumbnails through OpenCV (thumbnails.fast_jpeg_thumbnail): the same pixels
and picture as Pillow's path, used only where it is the same picture, and never a moire."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from services.preprocess.fileinfo import describe_file
from services.preprocess.thumbnails import (
    dct_scale,
    fast_jpeg_thumbnail,
    fit_within,
    make_thumbnail,
)

from .images import encode, gradient, oriented_jpeg, truncated_jpeg


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def decoded(data: bytes) -> Image.Image:
    image = opened(data)
    image.load()
    return image


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return max(ImageStat.Stat(ImageChops.difference(a, b)).mean)


@pytest.mark.parametrize(("width", "height", "size"), [
    (640, 480, 256), (4000, 3000, 256), (1500, 4000, 256), (513, 300, 256), (511, 300, 256),
    (2049, 1000, 256), (300, 200, 256), (4000, 3000, 48), (100, 3000, 64),
])
def test_dct_scale_is_the_one_pillows_draft_picks(width: int, height: int, size: int) -> None:
    target = fit_within(width, height, size)
    image = opened(encode(Image.new("RGB", (width, height)), "JPEG"))
    image.draft("RGB", target)
    scale = dct_scale(width, height, target)
    assert image.size == (-(-width // scale), -(-height // scale))


def test_colour_jpeg_thumbnail_matches_pillows_path() -> None:
    data = encode(gradient(1280, 960), "JPEG", quality=90)
    fast = fast_jpeg_thumbnail(io.BytesIO(data), opened(data), 1, 256)
    assert fast is not None
    assert (fast.width, fast.height, fast.mimetype, fast.extension) == (256, 192, "image/jpeg",
                                                                         "jpg")
    careful = make_thumbnail(opened(data), 1, 256)
    assert decoded(fast.data).size == (256, 192)
    assert decoded(fast.data).mode == "RGB"
    assert mean_difference(decoded(fast.data), decoded(careful.data)) < 3


def test_describe_file_makes_colour_jpeg_thumbnails_this_way(tmp_path: Path) -> None:
    data = encode(gradient(640, 480), "JPEG")
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    info = describe_file(path, "photo.jpg", 256, 50_000_000)
    fast = fast_jpeg_thumbnail(io.BytesIO(data), opened(data), 1, 256)
    assert info.thumbnail is not None and fast is not None
    assert info.thumbnail.data == fast.data


@pytest.mark.parametrize("orientation", range(1, 9))
def test_oriented_jpegs_take_the_fast_path(orientation: int) -> None:
    # test_fileinfo checks the picture is upright for each orientation; here, that it was
    # this path that made it.
    data = oriented_jpeg(orientation, 120, 60)
    thumbnail = fast_jpeg_thumbnail(io.BytesIO(data), opened(data), orientation, 48)
    assert thumbnail is not None and (thumbnail.width, thumbnail.height) == (48, 24)


@pytest.mark.parametrize("case", ["grey", "cmyk", "truncated", "bytes after the end"])
def test_other_jpegs_are_left_to_pillow(case: str) -> None:
    colour = encode(gradient(640, 480), "JPEG")
    data = {
        "grey": encode(gradient(640, 480, "L"), "JPEG"),
        "cmyk": encode(gradient(640, 480, "CMYK"), "JPEG"),
        "truncated": truncated_jpeg(),
        "bytes after the end": colour + b"trailing",
    }[case]
    assert fast_jpeg_thumbnail(io.BytesIO(data), opened(data), 1, 256) is None


def test_steps_of_2x_or_more_after_the_dct_average_instead_of_sampling() -> None:
    # 8-pixel stripes survive the 1/8 DCT scale as 1-pixel stripes, 8.6x the thumbnail's
    # pixels: a bilinear resize would sample them into bands; area averaging gives grey.
    row = bytes(255 * ((x // 8) % 2) for x in range(2200))
    stripes = Image.frombytes("L", (2200, 1650), row * 1650).convert("RGB")
    data = encode(stripes, "JPEG", quality=95)
    thumbnail = fast_jpeg_thumbnail(io.BytesIO(data), opened(data), 1, 32)
    assert thumbnail is not None and (thumbnail.width, thumbnail.height) == (32, 24)
    grey = decoded(thumbnail.data).convert("L")
    assert ImageStat.Stat(grey).stddev[0] < 8, ImageStat.Stat(grey).stddev
    assert abs(ImageStat.Stat(grey).mean[0] - 128) < 20


def test_memory_limit_counts_from_what_the_process_starts_with() -> None:
    # A decoding process maps ~300 MB of libraries (OpenCV) before it decodes anything: a
    # 200 MB limit still lets it allocate 150 MB, and stops it at 300 MB.
    script = (
        "from services.preprocess.decoding import limit_memory\n"
        "import services.preprocess.thumbnails\n"
        "limit_memory(200)\n"
        "block = bytearray(150 * 1024 * 1024)\n"
        "del block\n"
        "try:\n"
        "    bytearray(300 * 1024 * 1024)\n"
        "except MemoryError:\n"
        "    print('refused')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "refused", result.stderr
