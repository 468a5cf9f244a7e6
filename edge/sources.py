"""Camera sources. One reader thread per camera keeps only the newest frame.

Live cameras never queue up: the pipeline always takes the newest frame and older ones are
dropped (policy ``keep_newest``). Files and folders are paced at their frame rate, like a live
camera. A source that fails is reported in its health and reopened with exponential back-off;
it never raises into the service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from edge.config import SourceConfig
from edge.errors import SourceError
from vision.types import Frame

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0
STREAM_TIMEOUT_MS = 5000

SourceState = Literal["starting", "ok", "reconnecting", "ended", "stopped"]


@dataclass(frozen=True, slots=True)
class SourceHealth:
    state: SourceState = "starting"
    error: str | None = None
    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    last_frame_at: datetime | None = None

    @property
    def healthy(self) -> bool:
        return self.state in ("starting", "ok", "ended")


class _Reader(Protocol):
    """One opened source; ``read`` returns None at the end or on failure."""

    finite: bool
    fps: float

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


class _CaptureReader:
    def __init__(self, config: SourceConfig) -> None:
        kind = config.kind
        if kind == "usb":
            cap = cv2.VideoCapture(int(config.url.split(":", 1)[1]))
        elif kind == "stream":
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
            cap = cv2.VideoCapture(config.url, cv2.CAP_FFMPEG, params)
        else:
            if not config.path.is_file():
                raise SourceError(f"video file not found: {config.path}")
            cap = cv2.VideoCapture(str(config.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open camera source {config.url}")
        self._cap = cap
        self.finite = kind == "file"
        native = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = config.fps or (native if 0 < native <= 120 else 10.0)

    def read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return np.ascontiguousarray(image)

    def close(self) -> None:
        self._cap.release()


class _DirReader:
    def __init__(self, config: SourceConfig) -> None:
        folder = config.path
        if not folder.is_dir():
            raise SourceError(f"image folder not found: {folder}")
        self._files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"image folder {folder} holds no images")
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


def open_reader(config: SourceConfig) -> _Reader:
    if config.kind == "dir":
        return _DirReader(config)
    return _CaptureReader(config)


FrameObserver = Callable[[Frame], None]


class FrameSource:
    """Owns the reader thread of one camera and its newest-frame slot."""

    def __init__(self, camera_id: str, config: SourceConfig,
                 opener: Callable[[SourceConfig], _Reader] = open_reader) -> None:
        self.camera_id = camera_id
        self.config = config
        self._opener = opener
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._health = SourceHealth()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._index = 0
        self._observers: list[FrameObserver] = []
        self._consumed = 0

    def add_observer(self, observer: FrameObserver) -> None:
        """Called in the reader thread for every frame read, dropped or not."""
        self._observers.append(observer)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"source-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set(state="stopped")

    def health(self) -> SourceHealth:
        with self._cond:
            return self._health

    @property
    def finished(self) -> bool:
        return self.health().state in ("ended", "stopped")

    def wait_newer(self, after_index: int, timeout: float) -> Frame | None:
        """The newest frame with index above ``after_index``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._stop.is_set():
                frame = self._latest
                if frame is not None and frame.index > after_index:
                    return frame
                if self._health.state in ("ended", "stopped"):
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
        return None

    def _set(self, **changes: object) -> None:
        with self._cond:
            self._health = replace(self._health, **changes)  # type: ignore[arg-type]
            self._cond.notify_all()

    def _run(self) -> None:
        backoff = BACKOFF_START_S
        while not self._stop.is_set():
            try:
                reader = self._opener(self.config)
            except (SourceError, cv2.error, OSError, ValueError) as exc:
                self._fail(str(exc))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_START_S
            try:
                outcome = self._pump(reader)
            finally:
                reader.close()
            if outcome == "ended":
                self._set(state="ended", error=None)
                logger.info("camera %s: source ended", self.camera_id)
                return
            if outcome == "failed":
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _fail(self, error: str) -> None:
        health = self.health()
        if health.error != error:
            logger.warning("camera %s: %s; retrying", self.camera_id, error)
        self._set(state="reconnecting", error=error, reconnects=health.reconnects + 1)

    def _pump(self, reader: _Reader) -> Literal["ended", "failed", "stopped", "loop"]:
        self._set(state="ok", error=None)
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            try:
                image = reader.read()
            except (SourceError, cv2.error, OSError) as exc:
                self._fail(str(exc))
                return "failed"
            if image is None:
                if not reader.finite:
                    self._fail(f"camera {self.config.url} stopped sending frames")
                    return "failed"
                if self.config.kind == "file" and not self.config.path.exists():
                    self._fail(f"video file disappeared: {self.config.path}")
                    return "failed"
                return "loop" if self.config.loop else "ended"
            if reader.finite and self.config.realtime:
                delay = start + n / reader.fps - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return "stopped"
            n += 1
            self._publish(image)
        return "stopped"

    def _publish(self, image: np.ndarray) -> None:
        self._index += 1
        frame = Frame(camera_id=self.camera_id, index=self._index, captured_at=datetime.now(UTC),
                      t_mono=time.monotonic(), image=image)
        for observer in self._observers:
            observer(frame)
        with self._cond:
            dropped = self._health.dropped + (1 if self._latest is not None and self._latest.index
                                              > self._consumed else 0)
            self._latest = frame
            self._health = replace(self._health, frames=self._health.frames + 1, dropped=dropped,
                                   last_frame_at=frame.captured_at)
            self._cond.notify_all()
        if not self.config.realtime:
            self._wait_consumed(frame.index)

    def mark_consumed(self, index: int) -> None:
        """The pipeline took frame ``index``; used for drop counts and non-realtime pacing."""
        with self._cond:
            self._consumed = max(self._consumed, index)
            self._cond.notify_all()

    def _wait_consumed(self, index: int) -> None:
        with self._cond:
            while not self._stop.is_set() and self._consumed < index:
                self._cond.wait(0.5)
