"""Generated test files: small images in nested folders, plus a text file."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image


def image_bytes(width: int, height: int, fmt: str = "JPEG", color: int = 0) -> bytes:
    image = Image.new("RGB", (width, height), ((color * 40) % 256, 120, (255 - color) % 256))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def make_photo_tree(root: Path) -> Path:
    """root/photos/{a.jpg, b.png, notes.txt, cats/c.jpg, cats/kittens/d.jpg}; returns the
    photos folder."""
    photos = root / "photos"
    (photos / "cats" / "kittens").mkdir(parents=True)
    (photos / "a.jpg").write_bytes(image_bytes(640, 480, color=1))
    (photos / "b.png").write_bytes(image_bytes(300, 500, "PNG", color=2))
    (photos / "notes.txt").write_text("not an image\n")
    (photos / "cats" / "c.jpg").write_bytes(image_bytes(800, 600, color=3))
    (photos / "cats" / "kittens" / "d.jpg").write_bytes(image_bytes(120, 90, color=4))
    return photos


PHOTO_FILENAMES = ["a.jpg", "b.png", "cats/c.jpg", "cats/kittens/d.jpg", "notes.txt"]
