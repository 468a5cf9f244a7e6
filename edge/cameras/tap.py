"""The tap on a camera worker: the newest frame its pipeline processed, and what the pipeline made of it.

The camera's worker thread writes; any thread reads. Writing costs one lock and two references: the
frame is shared, never copied. The overlay (boxes with track ids and roles, interaction links) is asked
of the pipeline only while someone has read the tap within ``watch_window_s`` (a live preview is open),
so a camera nobody watches pays nothing for it. Drawing and JPEG encoding happen in the reader's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from vision.types import Frame

BoxLabel = Literal["staff", "customer", "vip", "face", "identified"]
Box = tuple[float, float, float, float]
Point = tuple[float, float]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OverlayBox:
    """One thing drawn as a box: a person (staff, customer, VIP) or a face."""

    xyxy: Box
    label: BoxLabel
    track_id: int | None = None
    person_id: str | None = None


@dataclass(frozen=True, slots=True)
class OverlayLink:
    """A staff-customer interaction in progress, drawn as a line between the two people."""

    staff: Point
    customer: Point
    staff_track: int
    customer_track: int


@dataclass(frozen=True, slots=True)
class Overlay:
    """What a pipeline found on one frame; zones are not here (they come from the camera's config)."""

    boxes: tuple[OverlayBox, ...] = ()
    links: tuple[OverlayLink, ...] = ()


@runtime_checkable
class Overlaid(Protocol):
    """A pipeline that can say what it found on the frame it processed last (called in its own thread)."""

    def overlay(self) -> Overlay: ...


@dataclass(frozen=True, slots=True)
class Tapped:
    """The newest processed frame and its overlay (None when nobody was watching as it was processed)."""

    frame: Frame
    overlay: Overlay | None


@dataclass(slots=True)
class FrameTap:
    """Newest processed frame of one camera; written by the worker thread alone."""

    watch_window_s: float = 2.0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _newest: Tapped | None = None
    _last_read: float = -1e9

    @property
    def watched(self) -> bool:
        """Someone read the tap within the watch window: the worker then records overlays."""
        return time.monotonic() - self._last_read < self.watch_window_s

    def put(self, frame: Frame, pipeline: object) -> None:
        """The worker processed ``frame`` with ``pipeline``; keep it (and its overlay while watched)."""
        overlay = None
        if self.watched and isinstance(pipeline, Overlaid):
            try:
                overlay = pipeline.overlay()
            except Exception:  # a preview must never stop the camera
                logger.exception("camera %s: overlay of frame %s failed", frame.camera_id, frame.index)
        tapped = Tapped(frame, overlay)
        with self._cond:
            self._newest = tapped
            self._cond.notify_all()

    def newest(self, after_index: int = -1, timeout: float = 0.0) -> Tapped | None:
        """The newest processed frame with index above ``after_index``, waiting up to ``timeout`` seconds;
        reading it marks the camera as watched."""
        self._last_read = time.monotonic()
        deadline = self._last_read + timeout
        with self._cond:
            while True:
                tapped = self._newest
                if tapped is not None and tapped.frame.index > after_index:
                    return tapped
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
