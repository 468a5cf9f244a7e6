"""Helpers of the clip tests: frames made from real photos with their index drawn as a big binary marker,
a recorder driven along a scripted timeline, and reading (encrypted) clips back with PyAV."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import cv2
import numpy as np

from edge.clips.types import ClipWritten
from vault.clip_file import ClipReader
from vision.types import Frame, Image

T0 = 1000.0  # monotonic seconds of the timeline's zero
CAPTURED_T0 = datetime(2026, 3, 14, 17, 59, 58, tzinfo=UTC)  # 01:59:58 on the 15th in UTC+8
MARKER_BITS = 8
MARKER_BLOCK = 40  # pixels per bit: 8 x 40 = 320 px wide, robust to H.264 compression
CLIP_KEY = hashlib.sha256(b"the clip key of the tests").digest()


def fit(image: Image, width: int, height: int) -> Image:
    """``image`` scaled to fit ``width`` x ``height``, centred on black."""
    scale = min(width / image.shape[1], height / image.shape[0])
    w, h = int(image.shape[1] * scale), int(image.shape[0] * scale)
    out = np.zeros((height, width, 3), np.uint8)
    y, x = (height - h) // 2, (width - w) // 2
    out[y:y + h, x:x + w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return out


def draw_marker(image: Image, value: int) -> Image:
    """A copy of ``image`` with ``value`` (0..255) drawn as 8 black/white blocks along its top edge."""
    out = image.copy()
    for bit in range(MARKER_BITS):
        x = bit * MARKER_BLOCK
        out[:MARKER_BLOCK, x:x + MARKER_BLOCK] = 255 if value >> bit & 1 else 0
    return out


def read_marker(image: Image) -> int:
    value = 0
    inset = MARKER_BLOCK // 4
    for bit in range(MARKER_BITS):
        x = bit * MARKER_BLOCK
        block = image[inset:MARKER_BLOCK - inset, x + inset:x + MARKER_BLOCK - inset]
        if float(block.mean()) > 128:
            value |= 1 << bit
    return value


def make_frame(index: int, t: float, image: Image, camera_id: str = "counter-1") -> Frame:
    """Frame ``index`` at ``t`` seconds on the timeline."""
    return Frame(camera_id, index, CAPTURED_T0 + timedelta(seconds=t), T0 + t, image)


def jittered_times(until: float, seed: int = 7, low: float = 0.08, high: float = 0.17) -> list[float]:
    """Capture times from 0 to ``until`` with irregular gaps (about 6 to 12 fps, 8 on average)."""
    rng = np.random.default_rng(seed)
    out = [0.0]
    while out[-1] + high < until:
        out.append(round(out[-1] + float(rng.uniform(low, high)), 4))
    return out


@dataclass
class Written:
    """Collects what a recorder reports (``on_written`` runs on its encoder thread)."""

    clips: list[ClipWritten] = field(default_factory=list)

    def __call__(self, clip: ClipWritten) -> None:
        self.clips.append(clip)

    def by_interaction(self) -> dict[str, ClipWritten]:
        return {c.participants.interaction_id: c for c in self.clips}


@dataclass(frozen=True, slots=True)
class Decoded:
    codec: str
    pix_fmt: str
    width: int
    height: int
    duration_s: float  # the container's
    pts_s: list[float]
    images: list[Image]


def plaintext(path: Path, key: bytes = CLIP_KEY) -> bytes:
    """The MP4 inside an encrypted clip file."""
    with ClipReader(path, key) as reader:
        return reader.read()


def decode(path: Path, key: bytes = CLIP_KEY) -> Decoded:
    """Every frame of an encrypted clip, decrypted on the fly and read back with PyAV (BGR)."""
    with ClipReader(path, key) as reader, av.open(reader) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        pts: list[float] = []
        images: list[Image] = []
        for frame in container.decode(stream):
            assert frame.pts is not None and frame.time_base is not None
            pts.append(float(frame.pts * frame.time_base))
            images.append(np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8))
        duration = (container.duration or 0) / av.time_base
        return Decoded(codec, stream.codec_context.pix_fmt or "", stream.codec_context.width,
                       stream.codec_context.height, duration, pts, images)


def laplacian_var(image: Image, box: Sequence[float]) -> float:
    x1, y1, x2, y2 = (int(v) for v in box)
    gray = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())
