"""Images made on the fly for the preprocess tests (no binary fixtures)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

QUADRANT_COLOURS = {
    "top_left": (255, 0, 0),
    "top_right": (0, 255, 0),
    "bottom_left": (0, 0, 255),
    "bottom_right": (255, 255, 0),
}


def quadrant_colour(x: int, y: int, width: int, height: int) -> tuple[int, int, int]:
    vertical = "top" if y < height // 2 else "bottom"
    horizontal = "left" if x < width // 2 else "right"
    return QUADRANT_COLOURS[f"{vertical}_{horizontal}"]


def stored_position(orientation: int, x: int, y: int, width: int, height: int) -> tuple[int, int]:
    """Where the display pixel (x, y) of an upright width x height picture is stored, per the
    EXIF definition of each orientation (which stored row / column is the visual top / left)."""
    return {
        1: (x, y),
        2: (width - 1 - x, y),                   # row 0 top, column 0 right
        3: (width - 1 - x, height - 1 - y),      # row 0 bottom, column 0 right
        4: (x, height - 1 - y),                  # row 0 bottom, column 0 left
        5: (y, x),                               # row 0 left, column 0 top
        6: (y, width - 1 - x),                   # row 0 right, column 0 top
        7: (height - 1 - y, width - 1 - x),      # row 0 right, column 0 bottom
        8: (height - 1 - y, x),                  # row 0 left, column 0 bottom
    }[orientation]


def oriented_jpeg(orientation: int, width: int = 120, height: int = 60) -> bytes:
    """A JPEG whose pixels, once `orientation` is applied, show the four coloured quadrants
    upright in a width x height picture."""
    stored_size = (height, width) if orientation >= 5 else (width, height)
    stored = Image.new("RGB", stored_size)
    pixels = stored.load()
    for y in range(height):
        for x in range(width):
            pixels[stored_position(orientation, x, y, width, height)] = quadrant_colour(
                x, y, width, height)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A picture with detail (so encoders do real work), cheap to make at any size."""
    small = Image.linear_gradient("L").resize((64, 64))
    rgb = Image.merge("RGB", (small, small.rotate(90), small.rotate(180)))
    return rgb.resize((width, height)).convert(mode)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG header declaring width x height RGB pixels, with (almost) no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = idat or zlib.compress(b"\x00" * 1024)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data)
            + _png_chunk(b"IEND", b""))


def truncated_jpeg() -> bytes:
    data = encode(gradient(800, 600), "JPEG", quality=90)
    return data[: len(data) // 2]


def garbage_with_png_header(size: int = 4096) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + bytes((i * 97 + 13) % 256 for i in range(size))


_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def blank_png(width: int, height: int, bit_depth: int = 8, colour_type: int = 2,
              extra_chunks: bytes = b"") -> bytes:
    """A complete, valid PNG of zero pixels, compressed row by row: 20000 x 20000 at one bit
    per pixel (400 megapixels) is about 50 KB, made without holding the pixels in memory."""
    row = b"\x00" + bytes((width * _CHANNELS[colour_type] * bit_depth + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + extra_chunks
            + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


def text_chunk_bomb(expands_to: int = 64 << 20) -> bytes:
    """A small valid PNG with a zTXt chunk that inflates to `expands_to` bytes (about 1000:1)."""
    compressed = zlib.compress(bytes(expands_to), 9)
    return blank_png(16, 16, extra_chunks=_png_chunk(b"zTXt", b"Comment\x00\x00" + compressed))
