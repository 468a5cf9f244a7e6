"""One clip file: H.264 (libx264, yuv420p) in an MP4 that browsers play, with variable frame rate.

Each frame's timestamp comes from its monotonic capture time relative to the clip's first frame, in
milliseconds (the MP4 track's timescale is 1000 too), so a clip lasts as long as the real scene even when the
camera is processed at an irregular rate. ``movflags=+faststart`` puts the index first, so a browser can
start playing before the whole file has arrived.
"""

from __future__ import annotations

import hashlib
import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from vision.types import Image

logger = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)  # milliseconds
CONTAINER_OPTIONS = {"movflags": "+faststart", "video_track_timescale": "1000"}
BT601 = 6  # AVCOL_SPC_SMPTE170M, AVCOL_PRI_SMPTE170M, AVCOL_TRC_SMPTE170M
LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG
ENCODER_ERRORS = (av.FFmpegError, OSError, ValueError)  # what opening, encoding or closing a clip may raise


class Mp4Writer:
    """Writes one clip to ``path`` (any name: the format is always MP4). The file is created with the first
    frame, whose size (even) fixes the clip's size; later frames of another size are resized to it. Used by
    one thread. Raises what PyAV and the file system raise (:data:`ENCODER_ERRORS`)."""

    def __init__(self, path: Path, *, preset: str, crf: int, gop: int = 30) -> None:
        self.path = path
        self._preset = preset
        self._crf = crf
        self._gop = gop
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._size = (0, 0)
        self._t0 = 0.0
        self._last_pts = -1
        self.frames = 0

    def _open(self, width: int, height: int, t_mono: float) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"clip frames must have even dimensions, got {width}x{height}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self.path), mode="w", format="mp4", options=CONTAINER_OPTIONS)
        self._container = container  # set first, so that abort() closes it whatever fails next
        stream = container.add_stream("libx264", options={"preset": self._preset, "crf": str(self._crf)})
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        context = stream.codec_context
        context.time_base = TIME_BASE
        context.gop_size = self._gop  # a key frame every few seconds, so that a player can seek
        # BT.601, limited range: what cv2's BGR->I420 conversion gives, tagged so that players need not guess
        context.colorspace = context.color_primaries = context.color_trc = BT601
        context.color_range = LIMITED_RANGE
        self._stream = stream
        self._size = (width, height)
        self._t0 = t_mono

    def write(self, image: Image, t_mono: float) -> None:
        """Encode one BGR frame captured at monotonic ``t_mono`` (seconds, increasing)."""
        if self._stream is None:
            self._open(image.shape[1], image.shape[0], t_mono)
        assert self._stream is not None and self._container is not None
        if (image.shape[1], image.shape[0]) != self._size:
            image = np.asarray(cv2.resize(image, self._size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        # cv2's conversion is several times faster than PyAV's swscale and matches it to one level
        i420 = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        pts = max(round((t_mono - self._t0) * 1000), self._last_pts + 1)  # strictly increasing, as MP4 needs
        frame.pts = pts
        frame.time_base = TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._last_pts = pts
        self.frames += 1

    def finish(self) -> None:
        """Drain the encoder, write the index (moved to the front) and fsync the file."""
        if self._container is None or self._stream is None:
            raise ValueError("no frame was written")
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        container, self._container = self._container, None
        container.close()
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def abort(self) -> None:
        """Give up: close what is open, ignoring its errors, and delete the file."""
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except ENCODER_ERRORS as exc:
                logger.debug("closing the aborted clip %s: %s", self.path, exc)
        self.path.unlink(missing_ok=True)


def publish(part: Path, final: Path) -> tuple[str, int]:
    """Rename the finished ``part`` file to ``final`` (same folder, atomically), fsync the folder, and return
    the final file's sha256 (hex) and size."""
    os.replace(part, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    digest = hashlib.sha256()
    with final.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest(), final.stat().st_size
