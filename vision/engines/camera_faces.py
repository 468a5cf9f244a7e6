"""The face engine a camera uses: its faces found by the configured detector, then the engine's own landmarks.

``face.detector`` chooses how camera frames are searched for faces:

- ``hog``: the engine's own detector (dlib HOG), as before; the engine is used as it is.
- ``blazeface``: :class:`vision.engines.blazeface_frames.BlazeFaceFrameDetector` finds the faces (boxes in
  HOG's convention), and the engine fits its own 5 landmarks on them (:meth:`fit`, run on an engine owner:
  dlib's shape predictor must not be shared between threads). Alignment and embedding are the engine's, so
  embeddings and galleries are the same as with HOG.

Only the cameras use this engine. Enrolment, evaluation and the gallery rebuild keep the engine itself, so
their photo checks (HOG on padded photos, short-range BlazeFace as the fallback) do not change.

A motion-gated camera asks for the faces of all its moving regions at once (:meth:`detect_regions`): BlazeFace
packs them into as few model calls as it can, and the landmarks of all of them are one job on an owner.

The BlazeFace session is shared by every camera of the runtime: onnxruntime's ``run`` is thread-safe, and
the detector keeps no state between calls.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

from vision.engines.base import DetectOverride, FaceEngine
from vision.engines.blazeface_frames import Region
from vision.engines.owner import on_owner
from vision.single_face import FaceFitter
from vision.types import Detections, FloatArray, Image

FaceDetectorName = Literal["hog", "blazeface"]


class FrameDetector(Protocol):
    def detect(self, image: Image) -> Detections: ...


class RegionsDetector(Protocol):
    def detect(self, image: Image, regions: list[Region]) -> Detections: ...


class CameraFaceEngine(DetectOverride):
    """A :class:`FaceEngine` whose ``detect`` is ``detector`` plus the engine's landmarks; the rest passes through.

    ``engine`` may be an :class:`vision.engines.owner.EnginePool` (the landmark fit runs as one job on an owner)
    or a bare engine used by one thread (tests, benches).
    """

    def __init__(self, engine: FaceEngine, detector: FrameDetector, regions: RegionsDetector,
                 name: str = "blazeface") -> None:
        super().__init__(engine)
        self._detector = detector
        self._regions = regions
        self.detector_name = name

    @property
    def engine(self) -> FaceEngine:
        return self._engine

    def detect(self, image: Image) -> Detections:
        if image.size == 0:
            return Detections.empty(with_landmarks=True)
        found = self._detector.detect(image)
        if len(found) == 0:
            return Detections.empty(with_landmarks=True)
        return self.fit(image, found.xyxy, found.score)

    def detect_regions(self, image: Image, regions: list[Region]) -> Detections:
        """Faces in ``regions`` of ``image`` (frame pixels), found together (several regions in one model call
        when the detector packs them, :mod:`vision.engines.blazeface_pack`) and fitted in one owner job."""
        found = self._regions.detect(image, regions)
        if len(found) == 0:
            return Detections.empty(with_landmarks=True)
        return self.fit(image, found.xyxy, found.score)

    def fit(self, image: Image, boxes: FloatArray, scores: FloatArray | None = None) -> Detections:
        """The engine's landmarks on ``boxes``, fitted on one of its owners."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)

        def job(own: FaceEngine) -> Detections:
            if not isinstance(own, FaceFitter):
                raise TypeError(f"engine {own.model_id} cannot fit its landmarks on another detector's boxes")
            return own.fit(image, boxes, scores)

        return on_owner(self._engine, job)

