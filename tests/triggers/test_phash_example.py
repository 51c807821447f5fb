"""examples/phash.py as documented: `corral triggers create` + `corral worker` (subprocesses),
then near-duplicate search over the stored hashes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from PIL import Image, ImageDraw

from examples import phash
from tests.triggers.test_worker import REPO, logs, wait_for


def _picture(seed: int) -> Image.Image:
    image = Image.new("RGB", (320, 240), (seed * 40 % 255, 90, 160))
    draw = ImageDraw.Draw(image)
    for i in range(6):
        x = (seed * 53 + i * 47) % 280
        draw.ellipse((x, i * 35, x + 40 + seed * 7, i * 35 + 50), fill=(255 - i * 30, i * 40, 0))
    return image


def test_phash_trigger_finds_near_duplicates(stack, client, tmp_path: Path):
    dataset = client.create_dataset(f"ph-{uuid.uuid4().hex[:8]}")["name"]
    env = {**stack.env, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "corral.cli.main"]
    created = subprocess.run([*cli, "triggers", "create", "phash", "--dataset", dataset,
                              "--filter", "mimetype~image/*"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    worker = subprocess.Popen([*cli, "worker", "--trigger", "phash", "--function",
                               "examples.phash:phash"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _picture(1).save(tmp_path / "a.jpg", quality=90)
        _picture(1).resize((160, 120)).save(tmp_path / "a-small.jpg", quality=60)
        _picture(4).save(tmp_path / "b.png")
        items = [client.upload_file(tmp_path / name, dataset).item
                 for name in ("a.jpg", "a-small.jpg", "b.png")]
        for item in items:
            wait_for(lambda item=item: "phash" in logs(client, item["id"]), what="hashes")
        pairs = phash.near_duplicates(client, dataset)
        assert [(a, b) for a, b, _ in pairs] == [("/a-small.jpg", "/a.jpg")]
        listing = subprocess.run([*cli, "triggers", "list"], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=60)
        assert "phash" in listing.stdout and "mimetype~image/*" in listing.stdout
    finally:
        worker.terminate()
        assert worker.wait(30) == 0
        subprocess.run([*cli, "triggers", "delete", "phash"], cwd=REPO, env=env, timeout=60)
