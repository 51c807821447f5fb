"""Photo-like JPEGs for benchmarks and the demo: smooth gradients, soft shapes and sensor-like
noise, so that encoded sizes and decode costs resemble camera photos (640x480 ~ 50 KB)."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter


def photo_like(width: int, height: int, seed: int) -> Image.Image:
    rng = random.Random(seed)
    # Work at a quarter size and upscale: smooth areas like a real scene, cheap to make.
    small = (max(8, width // 4), max(8, height // 4))
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    gradient = Image.linear_gradient("L").resize(small)
    image = Image.composite(Image.new("RGB", small, bottom), Image.new("RGB", small, top), gradient)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(small[0]), rng.randrange(small[1])
        r = rng.randrange(4, max(5, small[0] // 4))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    image = image.filter(ImageFilter.GaussianBlur(3)).resize((width, height), Image.BICUBIC)
    noise = Image.effect_noise((width, height), 24).convert("RGB")
    return Image.blend(image, noise, 0.19)


def write_jpegs(folder: Path, count: int, width: int, height: int, quality: int = 85,
                seed: int = 0) -> list[Path]:
    """Writes `count` distinct JPEGs. A few base images are varied per file (cheap to make),
    so each file still has its own bytes and sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    bases = [photo_like(width, height, seed + i) for i in range(min(count, 8))]
    paths = []
    for i in range(count):
        image = bases[i % len(bases)].copy()
        ImageDraw.Draw(image).text((10 + i % 50, 10), f"{i:06d}", fill=(255, 255, 255))
        path = folder / f"img_{i:06d}.jpg"
        image.save(path, "JPEG", quality=quality)
        paths.append(path)
    return paths


if __name__ == "__main__":
    import sys
    import tempfile

    out = Path(tempfile.mkdtemp())
    for w, h in ((640, 480), (4000, 3000)):
        p = write_jpegs(out / f"{w}", 3, w, h)
        print(w, h, [f.stat().st_size // 1024 for f in p], "KiB", file=sys.stderr)
