"""Image facts and thumbnails with Pillow, and with OpenCV for colour JPEGs (the common case,
in about two thirds of the CPU). Pure functions: a local file in, values out.

Decoding is bounded: only the Pillow decoder matching the sniffed type is tried, images with
more than `max_pixels` pixels are refused before any pixel is decoded, and JPEGs are decoded
at a reduced scale (`draft`), so a 12-megapixel photo costs a fraction of a full decode.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# Before numpy loads: its BLAS would otherwise reserve a thread pool (and ~40 MB of address
# space) in every decoding process, for linear algebra nothing here does.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

# Decoding processes run one image at a time each: OpenCV's own thread pool would only add
# threads competing for the same cores.
cv2.setNumThreads(1)

ORIENTATION_TAG = 0x0112

# What to apply to the stored pixels to show them upright, per EXIF orientation.
TRANSPOSE_FOR_ORIENTATION: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Sniffed mimetype -> the only Pillow decoders allowed to read it.
PILLOW_FORMATS: dict[str, tuple[str, ...]] = {
    "image/jpeg": ("JPEG", "MPO"),
    "image/png": ("PNG",),
    "image/apng": ("PNG",),
    "image/gif": ("GIF",),
    "image/webp": ("WEBP",),
    "image/tiff": ("TIFF",),
    "image/bmp": ("BMP", "DIB"),
    "image/x-icon": ("ICO",),
    "image/vnd.adobe.photoshop": ("PSD",),
    "image/jpx": ("JPEG2000",),
    "image/avif": ("AVIF",),
}

# Pillow format -> the codec name reported as `encoding`.
CODEC_NAMES = {"MPO": "jpeg", "JPEG2000": "jpeg2000", "DIB": "bmp"}

JPEG_QUALITY = 85
WEBP_QUALITY = 85
# Area averaging (BOX), the standard moire-free filter for shrinking: once draft or reduce
# has done most of the shrinking (under 2x is left), it is within a few levels of Lanczos and
# costs 3/4 of bilinear, the largest step of a small JPEG's thumbnail after decoding.
THUMBNAIL_RESAMPLE = Image.Resampling.BOX


class ImageError(Exception):
    """The file claims to be an image but cannot be described; `str()` is the reason."""


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    width: int
    height: int
    mimetype: str
    extension: str


@dataclass(frozen=True)
class ImageInfo:
    encoding: str
    exif_orientation: int
    width: int
    height: int
    mode: str
    thumbnail: Thumbnail

    @property
    def display_size(self) -> tuple[int, int]:
        if self.exif_orientation >= 5:  # 5-8 turn the picture by 90 degrees
            return self.height, self.width
        return self.width, self.height


@contextlib.contextmanager
def _bomb_limit(max_pixels: int) -> Iterator[None]:
    """Pillow's own decompression-bomb check, with our limit and its warning made an error."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def exif_orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not fail an otherwise good image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info)


def _to_displayable(image: Image.Image) -> Image.Image:
    """RGB, L, RGBA or LA: the modes thumbnails are resized and encoded in."""
    if image.mode in ("RGB", "L", "RGBA", "LA"):
        return image
    if _has_alpha(image):
        return image.convert("LA" if image.mode in ("La",) else "RGBA")
    if image.mode == "1":
        return image.convert("L")
    if image.mode.startswith("I"):  # 16/32-bit integer samples: keep the top 8 bits
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.mode == "F":
        return image.convert("L")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, P without transparency


def _encode(image: Image.Image) -> Thumbnail:
    alpha_used = image.mode in ("RGBA", "LA") and image.getextrema()[-1][0] < 255
    buffer = io.BytesIO()
    if alpha_used:
        image.convert("RGBA").save(buffer, "WEBP", quality=WEBP_QUALITY)
        mimetype, extension = "image/webp", "webp"
    else:
        if image.mode in ("RGBA", "LA"):
            image = image.convert(image.mode[:-1])
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
        mimetype, extension = "image/jpeg", "jpg"
    return Thumbnail(buffer.getvalue(), image.width, image.height, mimetype, extension)


def fit_within(width: int, height: int, size: int) -> tuple[int, int]:
    """The size `Image.thumbnail((size, size))` gives: aspect kept, never enlarged, the short
    side rounded to the aspect ratio closest to the original's."""
    if width <= size and height <= size:
        return width, height
    aspect = width / height
    if aspect <= 1:
        return _closest(size * aspect, lambda n: abs(aspect - n / size)), size
    return size, _closest(size / aspect, lambda n: abs(aspect - size / n) if n else 0)


def _closest(exact: float, error: Callable[[int], float]) -> int:
    return max(1, min(math.floor(exact), math.ceil(exact), key=error))


# cv2.imdecode flags per DCT scale: decode at 1/scale, in OpenCV's BGR order (which
# cv2.imencode expects), stored pixels (the EXIF orientation is applied after resizing, as for
# every other image).
_CV_DCT_SCALE_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                       4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
# What to apply to the stored pixels to show them upright, as TRANSPOSE_FOR_ORIENTATION.
_CV_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda pixels: cv2.flip(pixels, 1),
    3: lambda pixels: cv2.rotate(pixels, cv2.ROTATE_180),
    4: lambda pixels: cv2.flip(pixels, 0),
    5: cv2.transpose,
    6: lambda pixels: cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE),
    7: lambda pixels: cv2.flip(cv2.transpose(pixels), -1),
    8: lambda pixels: cv2.rotate(pixels, cv2.ROTATE_90_COUNTERCLOCKWISE),
}
JPEG_END = b"\xff\xd9"


def dct_scale(width: int, height: int, target: tuple[int, int]) -> int:
    """The reduction Pillow's JPEG draft picks: the largest of 8, 4, 2, 1 by which the picture
    still covers `target` (JpegImagePlugin.draft)."""
    fits = min(width // target[0], height // target[1])
    return next(scale for scale in (8, 4, 2, 1) if fits >= scale)


def fast_jpeg_thumbnail(source: Path | BinaryIO, image: Image.Image, orientation: int,
                        size: int) -> Thumbnail | None:
    """The thumbnail of a colour JPEG through OpenCV: the same libjpeg-turbo decode at a
    reduced DCT scale as Pillow's draft (the same pixels), then a bilinear resize and the
    encode, in about two thirds of the CPU of Pillow's path (most of the difference is the
    resize).
    None for anything else (grey, CMYK, MPO, bytes after the end marker, truncated): Pillow's
    path handles those, with its exact errors.

    Bilinear is enough because the DCT already did the shrinking by powers of two: what is
    left is under 2x, where bilinear samples cover every source pixel, so fine detail greys
    out instead of turning into moire. A step of 2x or more (a JPEG over 16x its thumbnail)
    uses area averaging."""
    if image.format != "JPEG" or image.mode != "RGB":
        return None
    data = _whole(source)
    if not data.endswith(JPEG_END):
        return None
    target = fit_within(image.width, image.height, size)
    flags = _CV_DCT_SCALE_FLAGS[dct_scale(image.width, image.height, target)]
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags | cv2.IMREAD_IGNORE_ORIENTATION)
    if pixels is None or pixels.ndim != 3 or pixels.shape[2] != 3:
        return None
    height, width = pixels.shape[:2]
    if (width, height) != target:
        under_2x = width < 2 * target[0] and height < 2 * target[1]
        pixels = cv2.resize(pixels, target,
                            interpolation=cv2.INTER_LINEAR if under_2x else cv2.INTER_AREA)
    if orientation in _CV_ORIENT:
        pixels = _CV_ORIENT[orientation](pixels)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        return None
    height, width = pixels.shape[:2]
    return Thumbnail(encoded.tobytes(), width, height, "image/jpeg", "jpg")


def make_thumbnail(image: Image.Image, orientation: int, size: int) -> Thumbnail:
    """Long side at most `size`, upright, JPEG when opaque and WebP when transparent.
    Consumes `image` (drafting changes its decoded size)."""
    target = fit_within(image.width, image.height, size)
    # JPEG only: the decoder scales by 1/2, 1/4 or 1/8 in the DCT, down to no less than
    # `target`; `box` is the original picture's area in the drafted pixels.
    drafted = image.draft(None, target)
    box = drafted[1] if drafted is not None else None
    small = _to_displayable(image)
    if small.size != target:
        # reducing_gap: an image still over twice the target (not a JPEG) is first
        # box-reduced by an integer factor, then filtered.
        small = small.resize(target, THUMBNAIL_RESAMPLE, box=box, reducing_gap=2.0)
    if orientation in TRANSPOSE_FOR_ORIENTATION:
        small = small.transpose(TRANSPOSE_FOR_ORIENTATION[orientation])
    return _encode(small)


def _whole(source: Path | BinaryIO) -> bytes:
    """The file's bytes from its start, which is where Pillow reads an open file from too."""
    if isinstance(source, Path):
        return source.read_bytes()
    source.seek(0)
    return source.read()


def describe_image(source: Path | BinaryIO, mimetype: str, thumbnail_size: int,
                   max_pixels: int) -> ImageInfo:
    """Reads an image's facts and makes its thumbnail from a path or an open binary file
    (read from its start); raises ImageError with the reason."""
    formats = PILLOW_FORMATS.get(mimetype)
    if formats is None:
        raise ImageError(f"unsupported image type {mimetype}")
    try:
        with _bomb_limit(max_pixels), Image.open(source, formats=list(formats)) as image:
            codec = image.format or ""
            orientation = exif_orientation(image)
            width, height, mode = image.width, image.height, image.mode
            thumbnail = (fast_jpeg_thumbnail(source, image, orientation, thumbnail_size)
                         or make_thumbnail(image, orientation, thumbnail_size))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"decompression bomb: {exc}") from exc
    except MemoryError as exc:
        raise ImageError("out of memory while decoding") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageError(f"corrupt {mimetype} image: not recognised by the decoder") from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        raise ImageError(f"corrupt {mimetype} image: {exc}") from exc
    return ImageInfo(encoding=CODEC_NAMES.get(codec, codec.lower()),
                     exif_orientation=orientation, width=width, height=height, mode=mode,
                     thumbnail=thumbnail)
