"""A perceptual hash for near-duplicate search, as a corral trigger function.

    corral triggers create phash --dataset cats --filter 'mimetype~image/*'
    corral worker --trigger phash --function examples.phash:phash

Each image gets metadata.system.phash.dhash: a 64-bit difference hash (dHash) as 16 hex
digits. Resized, recompressed or lightly edited copies of a picture differ from it in a few
bits (Hamming distance <= 10 of 64 is a near-duplicate); different pictures in about 32.
`python -m examples.phash DATASET` lists the near-duplicate pairs of a dataset.
"""

from __future__ import annotations

import sys
from typing import Any

from PIL import Image, ImageOps

HASH_SIZE = 8
NEAR_DUPLICATE_BITS = 10


def dhash(image: Image.Image, size: int = HASH_SIZE) -> int:
    """Grey, (size+1) x size pixels; each bit: is a pixel brighter than its right neighbour."""
    image = ImageOps.exif_transpose(image)
    image.draft("L", (size * 4, size * 4))  # JPEG: decode at a fraction of the size
    small = image.convert("L").resize((size + 1, size), Image.Resampling.LANCZOS)
    pixels = list(small.getdata())
    bits = 0
    for row in range(size):
        for col in range(size):
            left, right = pixels[row * (size + 1) + col], pixels[row * (size + 1) + col + 1]
            bits = (bits << 1) | (left > right)
    return bits


def distance(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def phash(item: dict[str, Any], ctx: Any) -> None:
    """The trigger function: reads the item's bytes and stores its dHash."""
    with ctx.open() as stream, Image.open(stream) as image:
        ctx.set_system({"dhash": f"{dhash(image):016x}", "bits": HASH_SIZE * HASH_SIZE})


def near_duplicates(client: Any, dataset: str, max_bits: int = NEAR_DUPLICATE_BITS,
                    trigger: str = "phash") -> list[tuple[str, str, int]]:
    """(filename, filename, differing bits) of every pair within `max_bits`."""
    hashed = [(item["filename"], item["metadata"]["system"][trigger]["dhash"])
              for item in client.list_items(dataset, filter=f"metadata.system.{trigger}.dhash?")]
    pairs = []
    for i, (name_a, hash_a) in enumerate(hashed):
        for name_b, hash_b in hashed[i + 1:]:
            bits = distance(hash_a, hash_b)
            if bits <= max_bits:
                pairs.append((name_a, name_b, bits))
    return sorted(pairs, key=lambda pair: pair[2])


if __name__ == "__main__":
    from corral.client import Client

    with Client() as sdk:
        for a, b, bits in near_duplicates(sdk, sys.argv[1]):
            print(f"{bits:2d}  {a}  {b}")
