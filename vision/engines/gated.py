"""One camera's motion gate in front of its detectors: they detect only where :mod:`vision.motion` says.

- The camera's pipeline calls :meth:`CameraGate.observe` once per frame, before any detector runs on it.
- :class:`GatedFaceEngine` and :class:`GatedDetector` wrap a face engine and a person detector. Asked to
  detect in the observed frame, each looks at the frame's moving blobs plus the boxes *it* found in the
  previous frame (so a face or a person who stops moving is still looked at), and hands what it found
  back to the gate for the next frame. Any other image (an enrolment photo, a frame that was not observed)
  is detected whole.
- The face engine (dlib HOG: cost grows with the area) detects in the regions only. A person detector
  whose input is a fixed size (NanoDet: 416 px, the same cost for a region as for the whole frame) is run
  once on the whole frame when it has anything to look at, and skipped when there is nothing
  (``regions=False``). Given a :class:`vision.cadence.CadenceConfig`, it runs only when
  :class:`vision.cadence.PersonCadence` says (the first frame, each refresh, motion outside the people it
  found, and every N-th frame of motion inside them) and carries the people it found last over otherwise.
- Alignment and embedding pass through unchanged.

State belongs to the camera's pipeline thread; the wrapped engine keeps its own rules (an
:class:`vision.engines.owner.EnginePool` for dlib).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from vision.cadence import RUNS, CadenceConfig, Decision, PersonCadence
from vision.engines.base import DetectOverride, FaceEngine
from vision.motion import MotionConfig, MotionDetector, MotionResult, detect_in_regions, focus
from vision.types import Detections, FloatArray, Image

WHOLE = MotionResult(True, (), 1.0)


class Detector(Protocol):
    def detect(self, image: Image) -> Detections: ...


@runtime_checkable
class RegionsAtOnce(Protocol):
    """A detector that finds what lies in several regions of one image together (fewer model calls)."""

    def detect_regions(self, image: Image, regions: list[tuple[int, int, int, int]]) -> Detections: ...


@dataclass(slots=True)
class GateCounts:
    """Frames the gate has seen and what each detector looked at (read by tests and the bench)."""

    frames: int = 0
    full: int = 0  # whole-frame looks: the first frame and each refresh
    skipped: dict[str, int] = field(default_factory=dict)  # detector -> frames it did not run on
    area: dict[str, float] = field(default_factory=dict)  # detector -> sum over frames of the fraction looked at
    carried: dict[str, int] = field(default_factory=dict)  # detector -> frames its last boxes were carried over


class CameraGate:
    """The motion detector of one camera and the boxes its detectors found in the last frame."""

    def __init__(self, config: MotionConfig | None = None) -> None:
        self._motion = MotionDetector(config)
        self._image: Image | None = None
        self._result = WHOLE
        self._kept: dict[str, FloatArray] = {}  # detector -> its boxes in the last frame it ran on
        self.counts = GateCounts()
        self.looks: dict[str, str] = {}  # detector -> where it looked in the last frame it was asked

    def observe(self, image: Image, t_mono: float) -> MotionResult:
        """Find what moves in this frame (call once per frame, before its detectors)."""
        self._result = self._motion.update(image, t_mono)
        self._image = image
        self.counts.frames += 1
        self.counts.full += int(self._result.full_frame)
        return self._result

    def observed(self, image: Image) -> MotionResult | None:
        """The motion result of ``image`` when it is the frame last observed; None for any other image."""
        return self._result if image is self._image else None

    def carry(self, channel: str) -> None:
        """``channel``'s detector did not run on the observed frame: its last boxes were carried over."""
        self.counts.carried[channel] = self.counts.carried.get(channel, 0) + 1

    def detect(self, detect: Detector, image: Image, channel: str, *, regions: bool = True,
               also: Sequence[Sequence[float]] = ()) -> Detections:
        """``detect`` on ``image`` where the gate says for ``channel``, and in the boxes ``also`` names;
        remembers what it found for the next frame. Thread-safe for different channels of one observed frame
        (each writes its own entry)."""
        if image is not self._image:
            return detect.detect(image)
        kept = self._kept.get(channel, np.zeros((0, 4), np.float32))
        where = focus(self._result, [*kept.tolist(), *also], self._motion.config)
        if not regions and not where.idle:
            where = WHOLE
        if isinstance(detect, RegionsAtOnce) and where.regions and not where.full_frame:
            found = detect.detect_regions(image, list(where.regions))  # all regions together
        else:
            found = detect_in_regions(detect.detect, image, where)
        self._kept[channel] = found.xyxy
        self.counts.area[channel] = self.counts.area.get(channel, 0.0) + where.area
        self.counts.skipped[channel] = self.counts.skipped.get(channel, 0) + int(where.idle)
        self.looks[channel] = "skipped" if where.idle else "whole" if where.full_frame else "regions"
        return found


class GatedDetector:
    """A person (or any) detector that detects only where its camera's gate says; with a ``cadence``, only on
    the frames :class:`vision.cadence.PersonCadence` picks, carrying its last boxes over between them."""

    def __init__(self, detector: Detector, gate: CameraGate, *, channel: str = "persons",
                 regions: bool = False, cadence: CadenceConfig | None = None) -> None:
        self._detector = detector
        self._gate = gate
        self._channel = channel
        self._regions = regions
        self._cadence = PersonCadence(cadence) if cadence is not None else None
        self._last = Detections.empty()
        self.decision: Decision | None = None  # why it ran or not on the last frame (None: no cadence)

    def detect(self, image: Image) -> Detections:
        motion = self._gate.observed(image)
        if self._cadence is None or motion is None:
            return self._gate.detect(self._detector, image, self._channel, regions=self._regions)
        self.decision = self._cadence.decide(motion)
        if self.decision not in RUNS:
            self._gate.carry(self._channel)
            return self._last
        self._last = self._gate.detect(self._detector, image, self._channel, regions=self._regions)
        self._cadence.ran(self._last.xyxy)
        return self._last


class GatedFaceEngine(DetectOverride):
    """A :class:`FaceEngine` whose ``detect`` goes through its camera's gate; the rest passes through."""

    def __init__(self, engine: FaceEngine, gate: CameraGate) -> None:
        super().__init__(engine)
        self._gate = gate
        self._also: list[tuple[float, float, float, float]] = []

    def look_also(self, boxes: Sequence[tuple[float, float, float, float]]) -> None:
        """Look in ``boxes`` too (besides what moves and the faces found last) on the next observed frame."""
        self._also = list(boxes)

    def detect(self, image: Image) -> Detections:
        also, self._also = self._also, []
        found = self._gate.detect(self._engine, image, "faces", also=also)
        if found.landmarks is None and len(found) == 0:  # nothing detected anywhere: empty, as a face engine says it
            return Detections.empty(with_landmarks=True)
        return found

