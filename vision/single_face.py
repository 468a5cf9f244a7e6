"""Find the face of a photo KNOWN to hold one person (enrolment, evaluation), robust to tight ID-style crops.

dlib's HOG misses most tight face crops even when padded (it finds no face in 227 of 349 RMFD crops);
MediaPipe's short-range BlazeFace finds 347 of them once padded. The engine's embedder, though, needs
its own landmarks (dlib's 5 points), so a BlazeFace box is first moved into HOG's box convention and
dlib's shape predictor is fitted on it (:class:`FaceFitter`).

Strategies (``SingleFaceStrategy``):

- ``hog``: the engine's own detector on the photo as it is;
- ``hog_pad``: the same on the photo padded by 25 % of its longer side (replicated border);
- ``hog_pad+blazeface``: ``hog_pad``; where it finds nothing, BlazeFace on the padded photo, its boxes
  mapped to HOG's convention and the engine's landmarks fitted on them;
- ``blazeface``: BlazeFace (mapped boxes + fitted landmarks) on every photo, HOG never runs.

An engine that cannot fit landmarks on given boxes (not a :class:`FaceFitter`) always uses its own detector.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Protocol, get_args, runtime_checkable

import cv2
import numpy as np

from vision.engines.base import FaceEngine
from vision.engines.blazeface import BlazeFaceConfig, BlazeFaceDetector
from vision.types import Detections, FloatArray, Image

logger = logging.getLogger(__name__)

SingleFaceStrategy = Literal["hog", "hog_pad", "hog_pad+blazeface", "blazeface"]
STRATEGIES: tuple[str, ...] = get_args(SingleFaceStrategy)
DEFAULT_STRATEGY: SingleFaceStrategy = "hog_pad+blazeface"
PAD_FRACTION = 0.25  # tight ID-style crops need context around the face, for HOG and for BlazeFace alike

# BlazeFace (short range, on padded photos) -> HOG box: the HOG box's centre offset in units of the
# BlazeFace box's width and height, and its size ratio. Medians over the 316 photos of
# ../shared/data/faces/east_asian where both found exactly one face (interquartile ranges:
# dx -0.069..0.042, dy -0.059..0.004, w and h 0.94..1.06).
BLAZE_TO_HOG_DX = -0.007
BLAZE_TO_HOG_DY = -0.026
BLAZE_TO_HOG_SCALE_W = 1.001
BLAZE_TO_HOG_SCALE_H = 1.000


@runtime_checkable
class FaceFitter(Protocol):
    """An engine that fits its own landmarks on face boxes found by another detector."""

    def fit(self, image: Image, boxes: FloatArray, scores: FloatArray | None = None) -> Detections: ...


@dataclass(frozen=True, slots=True)
class FoundFaces:
    """The faces of one photo as the engine embeds them: ``dets`` are in ``image`` (possibly padded) pixels."""

    image: Image
    dets: Detections
    detector: str  # "hog" (the engine's own) or "blazeface"

    def largest(self) -> Detections:
        if len(self.dets) == 0:
            return self.dets
        return self.dets[np.array([int(np.argmax(self.dets.widths * self.dets.heights))], np.int64)]


def pad_photo(image: Image, fraction: float = PAD_FRACTION) -> tuple[Image, int]:
    """The photo with ``fraction`` of its longer side replicated around it, and that border in pixels."""
    pad = int(fraction * max(image.shape[:2]))
    padded = np.asarray(cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE), np.uint8)
    return padded, pad


def blaze_to_hog_boxes(boxes: FloatArray) -> FloatArray:
    """BlazeFace boxes (xyxy) moved and scaled into HOG's box convention."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + BLAZE_TO_HOG_DX * w
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + BLAZE_TO_HOG_DY * h
    hw, hh = BLAZE_TO_HOG_SCALE_W * w / 2, BLAZE_TO_HOG_SCALE_H * h / 2
    out: FloatArray = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1).astype(np.float32)
    return out


class SingleFaceFinder:
    """Faces of a one-person photo by ``strategy``; see the module docstring."""

    def __init__(self, engine: FaceEngine, strategy: SingleFaceStrategy = DEFAULT_STRATEGY,
                 blazeface: BlazeFaceDetector | None = None, blazeface_config: BlazeFaceConfig | None = None) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown single-face strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
        self._engine = engine
        self._fitter = engine if isinstance(engine, FaceFitter) else None
        if strategy in ("hog_pad+blazeface", "blazeface") and self._fitter is None:
            logger.warning("engine %s cannot fit its landmarks on BlazeFace boxes; strategy %s falls back to "
                           "its own detector on padded photos", engine.model_id, strategy)
            strategy = "hog_pad"
        self.strategy: SingleFaceStrategy = strategy
        self._blazeface = blazeface
        if self._blazeface is None and strategy in ("hog_pad+blazeface", "blazeface"):
            self._blazeface = BlazeFaceDetector(blazeface_config)

    @property
    def engine(self) -> FaceEngine:
        return self._engine

    def find(self, image: Image) -> FoundFaces:
        """Every face found by the strategy (HOG convention, engine landmarks), in the returned image's pixels."""
        if self.strategy == "hog":
            return FoundFaces(image, self._engine.detect(image), "hog")
        padded, _ = pad_photo(image)
        if self.strategy != "blazeface":
            dets = self._engine.detect(padded)
            if len(dets) or self.strategy == "hog_pad":
                return FoundFaces(padded, dets, "hog")
        return FoundFaces(padded, self._blazeface_faces(padded), "blazeface")

    def _blazeface_faces(self, image: Image) -> Detections:
        if self._blazeface is None or self._fitter is None:
            raise RuntimeError("BlazeFace strategy without a detector or a landmark fitter")
        found = self._blazeface.detect(image)
        if len(found) == 0:
            return Detections.empty(with_landmarks=True)
        boxes = blaze_to_hog_boxes(found.xyxy)
        height, width = image.shape[:2]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width - 1)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height - 1)
        return self._fitter.fit(image, boxes, found.score)

    def embed_largest(self, image: Image) -> FloatArray | None:
        """Embedding of the photo's largest face; None when there is none."""
        found = self.find(image)
        face = found.largest()
        if len(face) == 0:
            return None
        vector: FloatArray = self._engine.embed(found.image, face)[0]
        return vector
