"""Camera sources. One reader thread per camera keeps only the newest frame.

Live cameras never queue up: the pipeline always takes the newest frame and older ones are
dropped (policy ``keep_newest``). Files and folders are paced at their frame rate, like a live
camera. A source that fails is reported in its health and reopened with exponential back-off;
it never raises into the service.

A source is healthy only while frames come: it is ``starting`` from the moment it is opened until
its first frame, ``ok`` after it, and ``stalled`` when no first frame came within
``first_frame_timeout_s`` (or, for a live camera, no frame for that long). A file that opens but is
not a video (a text file FFmpeg would render as ANSI art, audio, a truncated or empty file), and any
finite source that ends without a single frame, is ``invalid``.

A source is shown by its description only, the URL with its credentials redacted
(:func:`edge.redact.redact_url`); the raw URL is kept private for opening the capture.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

import cv2
import numpy as np

from edge.cameras.config import SourceConfig
from edge.cameras.readers import Reader, describe, open_reader
from edge.errors import NotAVideoError, SourceError
from edge.redact import redact_text
from vision.types import Frame

logger = logging.getLogger(__name__)

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0
FIRST_FRAME_TIMEOUT_S = 15.0  # longer than a stream's open and read time-outs together

SourceState = Literal["starting", "ok", "stalled", "reconnecting", "invalid", "ended", "stopped"]


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


FrameObserver = Callable[[Frame], None]


class FrameSource:
    """Owns the reader thread of one camera and its newest-frame slot."""

    def __init__(self, camera_id: str, config: SourceConfig,
                 opener: Callable[[SourceConfig], Reader] = open_reader, *,
                 first_frame_timeout_s: float = FIRST_FRAME_TIMEOUT_S) -> None:
        self.camera_id = camera_id
        self.description = describe(config)
        self._config = config  # holds the raw URL: used to open the capture, never shown
        self._opener = opener
        self._first_frame_timeout_s = first_frame_timeout_s
        self._deadline: float | None = None  # monotonic time by which the next frame is due
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
        self._arm_deadline()
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
        """The source's health; a frame overdue makes ``starting`` or ``ok`` read ``stalled``, even while
        the reader thread is blocked inside the capture."""
        with self._cond:
            health, deadline = self._health, self._deadline
        if health.state not in ("starting", "ok") or deadline is None or time.monotonic() <= deadline:
            return health
        wait = f"{self._first_frame_timeout_s:g} s"
        error = (f"no frame from {self.description} within {wait} of opening" if health.state == "starting"
                 else f"no frame from {self.description} for {wait}")
        return replace(health, state="stalled", error=error)

    def _arm_deadline(self) -> None:
        with self._cond:
            self._deadline = time.monotonic() + self._first_frame_timeout_s

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
                reader = self._opener(self._config)
            except NotAVideoError as exc:
                self._fail(str(exc), state="invalid")
                self._stop.wait(BACKOFF_MAX_S)  # until the file is replaced
                continue
            except (SourceError, cv2.error, OSError, ValueError) as exc:
                self._fail(str(exc))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            except Exception as exc:  # a capture bug must not end the thread: the camera would look alive
                self._fail(f"camera {self.description} could not be opened: {type(exc).__name__}: {exc}")
                self._stop.wait(BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_START_S
            try:
                outcome = self._pump(reader)
            except Exception as exc:  # a reader or observer bug: reported and retried like a read failure
                self._fail(f"camera {self.description} failed: {type(exc).__name__}: {exc}")
                outcome = "failed"
            finally:
                reader.close()
            if outcome == "ended":
                self._set(state="ended", error=None)
                logger.info("camera %s: source ended", self.camera_id)
                return
            if outcome == "failed":
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            elif outcome == "invalid":
                self._stop.wait(BACKOFF_MAX_S)  # until the file is replaced

    def _fail(self, error: str, state: SourceState = "reconnecting") -> None:
        """Report a failure; the text is redacted here, whatever raised it (OpenCV, FFmpeg, a reader)."""
        error = redact_text(error.replace(self._config.url, self.description))
        with self._cond:
            health = self._health
            self._deadline = None
        if health.error != error:
            logger.warning("camera %s: %s; retrying", self.camera_id, error)
        self._set(state=state, error=error, reconnects=health.reconnects + 1)

    def _pump(self, reader: Reader) -> Literal["ended", "failed", "invalid", "stopped", "loop"]:
        if self.health().state != "ok":  # a file that loops stays ok
            self._set(state="starting", error=None)
        self._arm_deadline()
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            try:
                image = reader.read()
            except (SourceError, cv2.error, OSError) as exc:
                self._fail(str(exc))
                return "failed"
            if image is None:
                return self._no_frame(reader, n)
            if reader.finite and self._config.realtime:
                delay = start + n / reader.fps - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return "stopped"
            n += 1
            self._publish(image, live=not reader.finite)
        return "stopped"

    def _no_frame(self, reader: Reader, frames: int) -> Literal["ended", "failed", "invalid", "loop"]:
        """The reader returned no frame after ``frames`` of this opening: end, loop or fail."""
        if not reader.finite:
            self._fail(f"camera {self.description} stopped sending frames")
            return "failed"
        if self._config.kind == "file" and not self._config.path.exists():
            self._fail(f"video file disappeared: {self.description}")
            return "failed"
        if frames == 0:
            self._fail(f"not a video: {self.description} (no decodable frame)", state="invalid")
            return "invalid"
        return "loop" if self._config.loop else "ended"

    def _publish(self, image: np.ndarray, *, live: bool) -> None:
        self._index += 1
        frame = Frame(camera_id=self.camera_id, index=self._index, captured_at=datetime.now(UTC),
                      t_mono=time.monotonic(), image=image)
        for observer in self._observers:
            observer(frame)
        with self._cond:
            dropped = self._health.dropped + (1 if self._latest is not None and self._latest.index
                                              > self._consumed else 0)
            self._latest = frame
            self._health = replace(self._health, state="ok", error=None, frames=self._health.frames + 1,
                                   dropped=dropped, last_frame_at=frame.captured_at)
            # a live camera owes the next frame within the time-out; a file or folder is paced by us
            live_due = live and self._config.realtime
            self._deadline = time.monotonic() + self._first_frame_timeout_s if live_due else None
            self._cond.notify_all()
        if not self._config.realtime:
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
