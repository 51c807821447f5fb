"""File info and thumbnails, in-process, on generated files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from services.preprocess.fileinfo import FileInfo, describe_file, sniff, text_charset
from services.preprocess.thumbnails import fit_within

from .images import (
    QUADRANT_COLOURS,
    encode,
    garbage_with_png_header,
    gradient,
    oriented_jpeg,
    png_declaring,
    truncated_jpeg,
)

MAX_PIXELS = 50_000_000


def describe(tmp_path: Path, data: bytes, name: str = "file.bin", size: int = 256) -> FileInfo:
    path = tmp_path / name
    path.write_bytes(data)
    return describe_file(path, name, size, MAX_PIXELS)


def thumbnail_image(info: FileInfo) -> Image.Image:
    assert info.thumbnail is not None, info.error
    image = Image.open(io.BytesIO(info.thumbnail.data))
    image.load()
    return image


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    info = describe(tmp_path, oriented_jpeg(orientation, 120, 60), "photo.jpg", size=48)

    system = info.system
    assert info.error is None
    assert system["exifOrientation"] == orientation
    stored = (60, 120) if orientation >= 5 else (120, 60)
    assert (system["width"], system["height"]) == stored
    assert (system["displayWidth"], system["displayHeight"]) == (120, 60)
    thumb = thumbnail_image(info)
    assert thumb.size == (48, 24)
    assert (system["thumbnail"]["width"], system["thumbnail"]["height"]) == (48, 24)
    for quadrant, (x, y) in {"top_left": (12, 6), "top_right": (36, 6),
                             "bottom_left": (12, 18), "bottom_right": (36, 18)}.items():
        pixel = thumb.convert("RGB").getpixel((x, y))
        assert close_to(pixel, QUADRANT_COLOURS[quadrant]), (quadrant, pixel)


def test_large_jpeg_thumbnail_fits_the_box(tmp_path: Path) -> None:
    info = describe(tmp_path, encode(gradient(4000, 3000), "JPEG"), "big.jpg")
    assert info.system["width"] == 4000 and info.system["height"] == 3000
    assert (info.system["thumbnail"]["width"], info.system["thumbnail"]["height"]) == (256, 192)
    assert thumbnail_image(info).size == (256, 192)
    assert info.system["thumbnail"]["mimetype"] == "image/jpeg"
    assert info.system["thumbnail"]["size"] == len(info.thumbnail.data)

    tall = describe(tmp_path, encode(gradient(1500, 4000), "JPEG"), "tall.jpg")
    assert max(thumbnail_image(tall).size) == 256
    assert thumbnail_image(tall).size == (96, 256)


def test_png_with_alpha_gets_a_transparent_webp_thumbnail(tmp_path: Path) -> None:
    image = Image.new("RGBA", (400, 200), (255, 0, 0, 255))
    image.paste((0, 0, 255, 0), (200, 0, 400, 200))  # right half fully transparent
    info = describe(tmp_path, encode(image, "PNG"), "logo.png")

    assert info.system["mimetype"] == "image/png"
    assert info.system["encoding"] == "png"
    assert info.system["mode"] == "RGBA"
    assert info.system["thumbnail"]["mimetype"] == "image/webp"
    thumb = thumbnail_image(info).convert("RGBA")
    assert thumb.size == (256, 128)
    assert thumb.getpixel((32, 64))[3] > 200
    assert thumb.getpixel((224, 64))[3] < 30


def test_opaque_rgba_png_gets_a_jpeg_thumbnail(tmp_path: Path) -> None:
    info = describe(tmp_path, encode(gradient(300, 300, "RGBA"), "PNG"), "opaque.png")
    assert info.system["mode"] == "RGBA"
    assert info.system["thumbnail"]["mimetype"] == "image/jpeg"


@pytest.mark.parametrize(("fmt", "mimetype", "encoding", "mode", "options"), [
    ("GIF", "image/gif", "gif", "P", {}),
    ("WEBP", "image/webp", "webp", "RGB", {"quality": 80}),
    ("TIFF", "image/tiff", "tiff", "RGB", {"compression": "tiff_lzw"}),
    ("JPEG", "image/jpeg", "jpeg", "L", {}),
    ("BMP", "image/bmp", "bmp", "RGB", {}),
])
def test_common_formats(tmp_path: Path, fmt: str, mimetype: str, encoding: str, mode: str,
                        options: dict) -> None:
    image = gradient(640, 480)
    image = image.convert("P") if mode == "P" else image.convert(mode)
    info = describe(tmp_path, encode(image, fmt, **options), f"picture.{fmt.lower()}")

    assert info.error is None
    assert info.system["mimetype"] == mimetype
    assert info.system["encoding"] == encoding
    assert info.system["mode"] == mode
    assert (info.system["width"], info.system["height"]) == (640, 480)
    assert info.system["exifOrientation"] == 1
    assert thumbnail_image(info).size == (256, 192)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (500, 250), (0, 255, 255, 0))  # red in CMYK
    info = describe(tmp_path, encode(cmyk, "JPEG", quality=95), "print.jpg")

    assert info.system["mode"] == "CMYK"
    thumb = thumbnail_image(info)
    assert thumb.mode == "RGB"
    assert close_to(thumb.getpixel((128, 64)), (255, 0, 0))


def test_grayscale_jpeg_thumbnail_stays_grayscale(tmp_path: Path) -> None:
    info = describe(tmp_path, encode(gradient(800, 800, "L"), "JPEG"), "xray.jpg")
    assert info.system["mode"] == "L"
    assert thumbnail_image(info).mode == "L"


def test_sixteen_bit_png(tmp_path: Path) -> None:
    image = Image.new("I;16", (300, 100), 40000)
    info = describe(tmp_path, encode(image, "PNG"), "depth.png")
    assert info.error is None
    assert info.system["mode"].startswith("I")
    thumb = thumbnail_image(info)
    assert thumb.mode == "L"
    assert abs(thumb.getpixel((10, 10)) - 40000 // 256) <= 2


def test_transparent_gif(tmp_path: Path) -> None:
    image = Image.new("P", (200, 200), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.paste(1, (100, 0, 200, 200))
    info = describe(tmp_path, encode(image, "GIF", transparency=1), "sprite.gif")
    assert info.system["thumbnail"]["mimetype"] == "image/webp"
    assert thumbnail_image(info).convert("RGBA").getpixel((150, 100))[3] == 0


def test_mimetype_comes_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    info = describe(tmp_path, encode(gradient(64, 64), "PNG"), "x.jpg")
    assert info.system["mimetype"] == "image/png"
    assert info.system["encoding"] == "png"

    fake = describe(tmp_path, b"just some words\n", "not-really.png")
    assert fake.system["mimetype"] == "text/plain"
    assert fake.thumbnail is None and fake.error is None


def test_text_files(tmp_path: Path) -> None:
    ascii_info = describe(tmp_path, b"id,label\n1,cat\n2,dog\n", "labels.csv")
    assert ascii_info.system == {"name": "labels.csv", "size": 21, "mimetype": "text/plain",
                                 "encoding": "ascii"}

    utf8 = describe(tmp_path, "caption: Ünïcödé ✓\n".encode(), "caption.txt")
    assert (utf8.system["mimetype"], utf8.system["encoding"]) == ("text/plain", "utf-8")
    assert "width" not in utf8.system and utf8.thumbnail is None


def test_random_bytes_are_binary(tmp_path: Path) -> None:
    info = describe(tmp_path, os.urandom(10_000), "blob.dat")
    assert info.system == {"name": "blob.dat", "size": 10_000,
                           "mimetype": "application/octet-stream", "encoding": "binary"}
    assert info.error is None


def test_empty_file(tmp_path: Path) -> None:
    info = describe(tmp_path, b"", "empty")
    assert info.system["mimetype"] == "application/octet-stream"
    assert info.system["size"] == 0


def test_known_non_image_types_are_not_decoded(tmp_path: Path) -> None:
    info = describe(tmp_path, b"%PDF-1.7\n" + os.urandom(2000), "doc.pdf")
    assert info.system["mimetype"] == "application/pdf"
    assert info.system["encoding"] == "binary"
    assert info.error is None and info.thumbnail is None


@pytest.mark.parametrize(("data", "reason"), [
    (truncated_jpeg(), "truncated"),
    (garbage_with_png_header(), "corrupt image/png"),
    (png_declaring(100_000, 100_000), "decompression bomb"),
    (png_declaring(8000, 8000), "decompression bomb"),  # over the limit, under 2x: a warning
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "unsupported image type"),
])
def test_bad_images_fail_with_a_reason(tmp_path: Path, data: bytes, reason: str) -> None:
    info = describe(tmp_path, data, "bad.jpg")
    assert info.error is not None and reason in info.error
    assert info.thumbnail is None
    assert info.system["name"] == "bad.jpg" and info.system["size"] == len(data)
    assert info.system["mimetype"].startswith("image/")


def test_text_charset_on_a_prefix() -> None:
    euro = "€".encode()
    assert text_charset(b"abc" + euro[:2], complete=False) == "utf-8"  # cut mid-character
    assert text_charset(b"abc" + euro[:2], complete=True) is None
    assert text_charset(b"plain", complete=False) == "utf-8"  # more may follow
    assert text_charset("ü".encode("utf-16"), complete=True) == "utf-16"
    assert text_charset(b"a\x00b", complete=True) is None
    assert sniff(b"\xff\xd8\xff\xe0" + bytes(32), complete=True).mimetype == "image/jpeg"


@pytest.mark.parametrize(("width", "height", "size"), [
    (640, 480, 256), (4000, 3000, 256), (1500, 4000, 256), (257, 100, 256), (100, 257, 256),
    (1001, 999, 256), (999, 1001, 256), (3000, 7, 256), (7, 3000, 256), (200, 100, 256),
    (123, 457, 48), (457, 123, 48),
])
def test_thumbnail_size_matches_pillow(width: int, height: int, size: int) -> None:
    image = Image.new("L", (width, height))
    image.thumbnail((size, size), Image.Resampling.NEAREST, reducing_gap=None)
    assert fit_within(width, height, size) == image.size


def test_drafted_jpeg_thumbnail_looks_like_a_full_decode(tmp_path: Path) -> None:
    # The fast path (decode at 1/2 scale in the DCT, then area averaging) against a careful one
    # (full decode, Lanczos): no visible difference on a smooth picture.
    data = encode(gradient(640, 480), "JPEG", quality=90)
    fast = thumbnail_image(describe(tmp_path, data, "photo.jpg")).convert("RGB")
    reference = Image.open(io.BytesIO(data)).convert("RGB").resize(fast.size,
                                                                   Image.Resampling.LANCZOS)
    diff = ImageChops.difference(fast, reference)
    assert max(ImageStat.Stat(diff).mean) < 3, ImageStat.Stat(diff).mean


def test_fine_detail_does_not_alias_into_a_drafted_jpeg_thumbnail(tmp_path: Path) -> None:
    # Stripes finer than the thumbnail's pixels must average out to grey, as a careful
    # (Lanczos) resize does, not beat into moire bands: after the DCT draft, the filter must
    # average every source pixel it covers.
    data = encode(_stripes(640, 480), "JPEG", quality=95)
    thumb = thumbnail_image(describe(tmp_path, data, "stripes.jpg")).convert("L")
    reference = Image.open(io.BytesIO(data)).convert("L").resize(thumb.size,
                                                                 Image.Resampling.LANCZOS)
    assert ImageStat.Stat(ImageChops.difference(thumb, reference)).mean[0] < 3
    assert ImageStat.Stat(thumb).stddev[0] < 8, ImageStat.Stat(thumb).stddev


def _stripes(width: int, height: int) -> Image.Image:
    """One-pixel black and white vertical stripes, in RGB."""
    row = bytes(255 * (x % 2) for x in range(width))
    return Image.frombytes("L", (width, height), row * height).convert("RGB")
