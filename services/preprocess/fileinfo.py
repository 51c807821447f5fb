"""A file's `metadata.system` facts, sniffed from its bytes (never from its name).

Keys follow Dataloop's camelCase: name, size, mimetype, encoding, and for images
exifOrientation, width, height, displayWidth, displayHeight, mode and thumbnail; videos have
codec, width, height, duration (seconds), fps, frameCount and a thumbnail of their first frame.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import filetype

from services.preprocess.thumbnails import ImageError, Thumbnail, describe_image
from services.preprocess.videos import VideoError, describe_video

# filetype looks at no more than the first 8 KiB.
SNIFF_BYTES = 8192
# Enough text to tell its charset; a longer file is checked on this prefix only.
TEXT_SAMPLE_BYTES = 1024 * 1024

OCTET_STREAM = "application/octet-stream"
BINARY = "binary"
TEXT_PLAIN = "text/plain"

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Control characters that ordinary text contains; any other one means binary.
_BINARY_BYTES = bytes(sorted(set(range(32)) - set(b"\t\n\r\f\v\b\x1b") | {0x7F}))


@dataclass(frozen=True)
class Sniffed:
    mimetype: str
    # The text charset, or "binary"; images get their codec once decoded.
    encoding: str


@dataclass(frozen=True)
class FileInfo:
    system: dict[str, Any]
    thumbnail: Thumbnail | None
    # Why the file could not be fully described; None on success.
    error: str | None


def text_charset(sample: bytes, complete: bool) -> str | None:
    """"ascii", "utf-8", "utf-16" or "utf-32" when `sample` reads as text, else None.
    `complete` says whether the sample is the whole file (else it may end mid-character)."""
    for bom, charset in _BOMS:
        if sample.startswith(bom):
            return charset
    if not sample or len(sample.translate(None, _BINARY_BYTES)) != len(sample):
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
    except UnicodeDecodeError:
        return None
    if complete and sample.isascii():
        return "ascii"
    return "utf-8"  # a superset of ASCII, right even if a non-ASCII byte follows the sample


def sniff(sample: bytes, complete: bool) -> Sniffed:
    """The mimetype and charset of a file from its first bytes (at least SNIFF_BYTES of them,
    up to TEXT_SAMPLE_BYTES for a good charset guess)."""
    kind = filetype.guess(sample[:SNIFF_BYTES])
    if kind is not None:
        return Sniffed(kind.mime, BINARY)
    charset = text_charset(sample, complete)
    if charset is not None:
        return Sniffed(TEXT_PLAIN, charset)
    return Sniffed(OCTET_STREAM, BINARY)


def sniff_open_file(file: BinaryIO) -> tuple[Sniffed, int]:
    """The sniffed type of an open file, and its size. Reads the text sample only when the
    first bytes match no known binary type."""
    size = file.seek(0, os.SEEK_END)
    file.seek(0)
    head = file.read(SNIFF_BYTES)
    kind = filetype.guess(head)
    if kind is not None:
        return Sniffed(kind.mime, BINARY), size
    sample = head + file.read(TEXT_SAMPLE_BYTES - len(head))
    return sniff(sample, len(sample) >= size), size


def basic_system(name: str, size: int, sniffed: Sniffed) -> dict[str, Any]:
    return {"name": name, "size": size, "mimetype": sniffed.mimetype,
            "encoding": sniffed.encoding}


def describe_file(path: Path, name: str, thumbnail_size: int, max_image_pixels: int) -> FileInfo:
    """Everything `metadata.system` says about a file, and its thumbnail when it is an image.
    The file is opened once: sniffed from its first bytes, then decoded. The thumbnail's blob
    key is the caller's to add."""
    with path.open("rb") as file:
        sniffed, size = sniff_open_file(file)
        system = basic_system(name, size, sniffed)
        if sniffed.mimetype.startswith("video/"):
            return _describe_video(path, system, sniffed.mimetype, thumbnail_size,
                                   max_image_pixels)
        if not sniffed.mimetype.startswith("image/"):
            return FileInfo(system, None, None)
        try:
            image = describe_image(file, sniffed.mimetype, thumbnail_size, max_image_pixels)
        except ImageError as exc:
            return FileInfo(system, None, str(exc))
    display_width, display_height = image.display_size
    thumb = image.thumbnail
    system.update({
        "encoding": image.encoding,
        "exifOrientation": image.exif_orientation,
        "width": image.width,
        "height": image.height,
        "displayWidth": display_width,
        "displayHeight": display_height,
        "mode": image.mode,
        "thumbnail": _thumbnail_system(thumb),
    })
    return FileInfo(system, thumb, None)


def _thumbnail_system(thumb: Thumbnail) -> dict[str, Any]:
    return {"width": thumb.width, "height": thumb.height, "mimetype": thumb.mimetype,
            "size": len(thumb.data)}


def _describe_video(path: Path, system: dict[str, Any], mimetype: str, thumbnail_size: int,
                    max_pixels: int) -> FileInfo:
    try:
        video = describe_video(path, mimetype, thumbnail_size, max_pixels)
    except VideoError as exc:
        return FileInfo(system, None, str(exc))
    system.update({
        "encoding": video.codec,
        "codec": video.codec,
        "width": video.width,
        "height": video.height,
        "displayWidth": video.width,
        "displayHeight": video.height,
        "duration": video.duration,
        "fps": video.fps,
        "frameCount": video.frame_count,
        "thumbnail": _thumbnail_system(video.thumbnail),
    })
    return FileInfo(system, video.thumbnail, None)
