"""Camera readers: open one source (capture, video file, image folder) and read its frames.

A file must be a video: one whose first bytes are text (FFmpeg would render a long text file as
ANSI-art frames), that FFmpeg cannot open, whose stream is rendered text or that has no decodable
first frame is refused with :class:`~edge.errors.NotAVideoError`. Every message names the source by
:func:`describe`, never by its raw URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.cameras.config import SourceConfig
from edge.errors import NotAVideoError, SourceError
from edge.redact import redact_url

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
STREAM_TIMEOUT_MS = 5000
SNIFF_BYTES = 4096
# FFmpeg renders these text-art formats as video; a camera file holding one is not a video.
TEXT_CODECS = frozenset({"ansi", "bint", "xbin", "idf\x00"})


class Reader(Protocol):
    """One opened source; ``read`` returns None at the end or on failure."""

    finite: bool
    fps: float

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


def describe(config: SourceConfig) -> str:
    """How a source is shown in health, logs and errors: its URL without credentials."""
    return redact_url(config.url)


def _looks_like_text(head: bytes) -> bool:
    """True when the start of a file is UTF-8 text (no NUL byte); video containers are binary."""
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # only a character cut at the end of the sample
    return True


def _codec(cap: cv2.VideoCapture) -> str:
    code = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))


class _CaptureReader:
    def __init__(self, config: SourceConfig) -> None:
        kind = config.kind
        shown = describe(config)
        self._pending: np.ndarray | None = None
        if kind == "usb":
            cap = cv2.VideoCapture(int(config.url.split(":", 1)[1]))
        elif kind == "stream":
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                      cv2.CAP_PROP_N_THREADS, config.decode_threads]
            cap = cv2.VideoCapture(config.url, cv2.CAP_FFMPEG, params)
        else:
            cap = self._open_file(config, shown)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open camera source {shown}")
        self._cap = cap
        self.finite = kind == "file"
        native = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = config.fps or (native if 0 < native <= 120 else 10.0)
        if self.finite:
            self._check_video(shown)

    @staticmethod
    def _open_file(config: SourceConfig, shown: str) -> cv2.VideoCapture:
        path = config.path
        if not path.is_file():
            raise SourceError(f"video file not found: {shown}")
        with path.open("rb") as f:
            head = f.read(SNIFF_BYTES)
        if not head:
            raise NotAVideoError(f"not a video: {shown} (empty file)")
        if _looks_like_text(head):
            raise NotAVideoError(f"not a video: {shown} (a text file)")
        cap = cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, config.decode_threads])
        if not cap.isOpened():
            cap.release()
            raise NotAVideoError(f"not a video: {shown} (no video stream could be opened)")
        return cap

    def _check_video(self, shown: str) -> None:
        """Refuse a file whose stream is rendered text, or that has no decodable first frame."""
        if _codec(self._cap) in TEXT_CODECS:
            self._cap.release()
            raise NotAVideoError(f"not a video: {shown} (text rendered as video)")
        self._pending = self._decode()
        if self._pending is None:
            self._cap.release()
            raise NotAVideoError(f"not a video: {shown} (no decodable frame)")

    def _decode(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return np.ascontiguousarray(image)

    def read(self) -> np.ndarray | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image
        return self._decode()

    def close(self) -> None:
        self._cap.release()


class _DirReader:
    def __init__(self, config: SourceConfig) -> None:
        folder = config.path
        shown = describe(config)
        if not folder.is_dir():
            raise SourceError(f"image folder not found: {shown}")
        self._files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"image folder {shown} holds no images")
        self._iter: Iterator[Path] = iter(self._files)
        self.finite = True
        self.fps = config.fps or 2.0

    def close(self) -> None:
        self._files = []

    def read(self) -> np.ndarray | None:
        path = next(self._iter, None)
        if path is None:
            return None
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"cannot read image {path}")
        return image


def open_reader(config: SourceConfig) -> Reader:
    if config.kind == "dir":
        return _DirReader(config)
    return _CaptureReader(config)
