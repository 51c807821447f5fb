"""Video file info from clips made with PyAV in several containers, and a corrupt one."""

from __future__ import annotations

from pathlib import Path

import pytest

from preprocess.videos import corrupt_clip, make_clip
from services.preprocess.fileinfo import describe_file


@pytest.mark.parametrize(("container", "extension", "mimetype", "codec", "seconds", "fps"), [
    ("mp4", "mp4", "video/mp4", "h264", 2.0, 12),
    ("mov", "mov", "video/quicktime", "mpeg4", 1.5, 10),
    ("matroska", "mkv", "video/x-matroska", "vp9", 1.0, 24),
    ("webm", "webm", "video/webm", "vp8", 2.5, 8),
    ("avi", "avi", "video/x-msvideo", "mpeg4", 1.0, 15),
])
def test_clips_get_duration_fps_frames_codec_size_and_a_thumbnail(
        tmp_path: Path, container, extension, mimetype, codec, seconds, fps) -> None:
    path = tmp_path / f"clip.{extension}"
    path.write_bytes(make_clip(container, seconds=seconds, fps=fps, width=320, height=180))
    info = describe_file(path, path.name, 256, 100_000_000)
    system = info.system
    assert info.error is None
    assert (system["mimetype"], system["codec"], system["encoding"]) == (mimetype, codec, codec)
    assert (system["width"], system["height"]) == (320, 180)
    assert system["fps"] == pytest.approx(fps, rel=0.01)
    assert system["duration"] == pytest.approx(seconds, abs=0.1)
    assert abs(system["frameCount"] - round(seconds * fps)) <= 1
    thumbnail = info.thumbnail
    assert thumbnail is not None and (thumbnail.width, thumbnail.height) == (256, 144)
    assert system["thumbnail"] == {"width": 256, "height": 144, "mimetype": "image/jpeg",
                                   "size": len(thumbnail.data)}


def test_a_corrupt_video_is_a_failure_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(corrupt_clip())
    info = describe_file(path, path.name, 256, 100_000_000)
    assert info.system["mimetype"] == "video/mp4" and info.thumbnail is None
    assert info.error is not None and info.error.startswith("corrupt video/mp4 video")
    assert str(tmp_path) not in info.error


def test_oversized_frames_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.webm"
    path.write_bytes(make_clip("webm", seconds=0.5, fps=4, width=320, height=180))
    info = describe_file(path, path.name, 256, max_image_pixels=320 * 100)
    assert info.error is not None and "decompression bomb" in info.error
