"""One camera's motion gate in front of its detectors: they detect only where :mod:`vision.motion` says.

- The camera's pipeline calls :meth:`CameraGate.observe` once per frame, before any detector runs on it.
- :class:`GatedFaceEngine` and :class:`GatedDetector` wrap a face engine and a person detector. Asked to
  detect in the observed frame, they detect in its moving regions only (or in the whole frame, or nowhere),
  and hand what they found back to the gate, which keeps looking at those boxes in the next frame even
  if they stop moving. Any other image (an enrolment photo, a frame that was not observed) is detected whole.
- Alignment and embedding pass through unchanged.

State belongs to the camera's pipeline thread; the wrapped engine keeps its own rules (an
:class:`vision.engines.owner.EnginePool` for dlib).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vision.engines.base import FaceEngine
from vision.motion import MotionConfig, MotionDetector, MotionResult, detect_in_regions
from vision.quality import LandmarkLayout
from vision.types import Detections, FloatArray, Image

WHOLE = MotionResult(True, (), 1.0)


class Detector(Protocol):
    def detect(self, image: Image) -> Detections: ...


@dataclass(slots=True)
class GateCounts:
    """Frames the gate has seen, by what it decided (read by metrics and the bench)."""

    frames: int = 0
    idle: int = 0
    full: int = 0
    regions: int = 0


class CameraGate:
    """The motion detector of one camera and the boxes its detectors found in the last frame."""

    def __init__(self, config: MotionConfig | None = None) -> None:
        self._motion = MotionDetector(config)
        self._image: Image | None = None
        self._result = WHOLE
        self._kept: list[FloatArray] = []
        self.counts = GateCounts()

    def observe(self, image: Image, t_mono: float) -> MotionResult:
        """Decide where to detect in this frame (call once per frame, before its detectors)."""
        keep = np.concatenate(self._kept) if self._kept else np.zeros((0, 4), np.float32)
        self._kept = []
        self._result = self._motion.update(image, t_mono, keep.tolist())
        self._image = image
        self.counts.frames += 1
        if self._result.full_frame:
            self.counts.full += 1
        elif self._result.idle:
            self.counts.idle += 1
        else:
            self.counts.regions += len(self._result.regions)
        return self._result

    @property
    def last(self) -> MotionResult:
        return self._result

    def detect(self, detect: Detector, image: Image) -> Detections:
        """``detect`` on ``image`` where the gate says, remembering what it found for the next frame."""
        where = self._result if image is self._image else WHOLE
        found = detect_in_regions(detect.detect, image, where)
        if image is self._image and len(found):
            self._kept.append(found.xyxy)
        return found


class GatedDetector:
    """A person (or any) detector that detects only where its camera's gate says."""

    def __init__(self, detector: Detector, gate: CameraGate) -> None:
        self._detector = detector
        self._gate = gate

    def detect(self, image: Image) -> Detections:
        return self._gate.detect(self._detector, image)


class GatedFaceEngine:
    """A :class:`FaceEngine` whose ``detect`` goes through its camera's gate; the rest passes through."""

    def __init__(self, engine: FaceEngine, gate: CameraGate) -> None:
        self._engine = engine
        self._gate = gate

    @property
    def model_id(self) -> str:
        return self._engine.model_id

    @property
    def dim(self) -> int:
        return self._engine.dim

    @property
    def min_face_px(self) -> int:
        return self._engine.min_face_px

    @property
    def landmark_layout(self) -> LandmarkLayout:
        return self._engine.landmark_layout

    def detect(self, image: Image) -> Detections:
        found = self._gate.detect(self._engine, image)
        if found.landmarks is None and len(found) == 0:  # nothing detected anywhere: empty, as a face engine says it
            return Detections.empty(with_landmarks=True)
        return found

    def embed(self, image: Image, dets: Detections) -> FloatArray:
        return self._engine.embed(image, dets)

    def chips(self, image: Image, dets: Detections) -> list[Image]:
        return self._engine.chips(image, dets)

    def embed_chips(self, chips: list[Image]) -> FloatArray:
        return self._engine.embed_chips(chips)
