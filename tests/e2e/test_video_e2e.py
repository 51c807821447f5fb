"""Videos through the three real services: file info and a frame thumbnail for every
container, and a corrupt clip that fails alone while the worker goes on."""

from __future__ import annotations

import io

from PIL import Image
from preprocess.images import encode, gradient
from preprocess.videos import CONTAINERS, corrupt_clip, make_clip

from corral.client.client import preprocess_status


def test_videos_are_described_and_a_corrupt_one_fails_alone(client) -> None:
    client.create_dataset("videos")
    for container, (_, extension) in CONTAINERS.items():
        client.upload_bytes(make_clip(container, seconds=1.5, fps=10, width=320, height=240),
                            "videos", f"{container}.{extension}", remote_dir="/clips")
    client.upload_bytes(corrupt_clip(), "videos", "broken.mp4", remote_dir="/clips")
    client.upload_bytes(encode(gradient(64, 48), "PNG"), "videos", "after.png",
                        remote_dir="/clips")
    items = {item["name"]: item for item in client.wait_for_preprocessing("videos", 90)}

    for container, (_, extension) in CONTAINERS.items():
        item = items[f"{container}.{extension}"]
        system = item["metadata"]["system"]
        assert preprocess_status(item) == "success", system
        assert system["mimetype"].startswith("video/")
        assert (system["width"], system["height"], system["fps"]) == (320, 240, 10.0)
        assert abs(system["duration"] - 1.5) <= 0.1 and abs(system["frameCount"] - 15) <= 1
        thumbnail = client.download_bytes(item["id"], thumbnail=True)
        assert Image.open(io.BytesIO(thumbnail)).size == (256, 192)

    broken = items["broken.mp4"]
    assert preprocess_status(broken) == "failed"
    record = broken["metadata"]["system"]["executionLogs"]["preprocess"]
    assert record["error"].startswith("corrupt video/mp4 video")
    assert preprocess_status(items["after.png"]) == "success"  # the worker went on
