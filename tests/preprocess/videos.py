"""Short clips of known duration and frame rate, made with PyAV (no fixtures on disk)."""

from __future__ import annotations

import io
from fractions import Fraction

import av
from PIL import Image

# container format -> (codec, file extension)
CONTAINERS = {
    "mp4": ("libx264", "mp4"),
    "mov": ("mpeg4", "mov"),
    "matroska": ("libvpx-vp9", "mkv"),
    "webm": ("libvpx", "webm"),
    "avi": ("mpeg4", "avi"),
}


def make_clip(container: str, *, seconds: float = 1.0, fps: int = 12, width: int = 160,
              height: int = 96) -> bytes:
    """A clip whose frames are a moving gradient; `seconds * fps` frames."""
    codec, _ = CONTAINERS[container]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        frames = round(seconds * fps)
        ramp = Image.linear_gradient("L").resize((width, height))
        mirrored = ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        for index in range(frames):
            green = Image.new("L", (width, height), (index * 20) % 256)
            picture = Image.merge("RGB", (ramp, green, mirrored))
            frame = av.VideoFrame.from_image(picture)
            frame.pts = index
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def corrupt_clip() -> bytes:
    """A real MP4's header followed by garbage: sniffed as video, undecodable."""
    good = make_clip("mp4")
    return good[:64] + bytes(range(256)) * 40
