"""Face quality: size, blur, pose and detector score, combined into one score in [0, 1].

The overall score ranks the shots of one track (best-shot selection). Enrolment uses the parts
against explicit limits (minimum size, minimum sharpness).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import dlib
import numpy as np

from models.packs import resolve_pack
from vision.types import Detections, FaceQuality, FloatArray, Image

logger = logging.getLogger(__name__)

# Sharpness is the variance of the Laplacian of the 150x150 aligned grey chip.
SHARPNESS_SATURATION = 400.0

# Enrolment limits, set on the 491 faces found in 495 real enrolment-like photos (CASIA-FaceV5, RMFD
# crops, deepface) by python -m bench.enrol_quality; each keeps >= 99 % of them (see edge.faces.config.FaceConfig).
ENROL_MAX_ABS_YAW = 0.45  # keeps 490 of 491 (|yaw| 99th percentile 0.41, largest 0.452)
ENROL_MIN_HOG_SCORE = 0.01  # keeps 261 of 263 HOG-found faces (1st percentile 0.017)
ENROL_MIN_BLAZEFACE_SCORE = 0.55  # keeps 227 of 228 BlazeFace-found faces (1st percentile 0.60); detector floor 0.5


@dataclass(frozen=True, slots=True)
class QualityWeights:
    size: float = 0.35
    blur: float = 0.30
    pose: float = 0.20
    detector: float = 0.15


def sharpness(chip: Image) -> float:
    grey = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


LandmarkLayout = Literal["dlib5", "arcface5"]


def _eyes_and_nose(landmarks: np.ndarray, layout: LandmarkLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if layout == "dlib5":  # two corners per eye (0-1, 2-3), then the base of the nose
        return landmarks[0:2].mean(axis=0), landmarks[2:4].mean(axis=0), landmarks[4]
    return landmarks[0], landmarks[1], landmarks[2]  # arcface5: eye, eye, nose tip, mouth corners


def yaw_ratio(landmarks: np.ndarray, layout: LandmarkLayout = "dlib5") -> float:
    """Signed horizontal offset of the nose from the eye midpoint, in inter-eye distances.

    About 0 for a frontal face; its magnitude grows as the head turns.
    """
    eye_a, eye_b, nose = _eyes_and_nose(landmarks, layout)
    axis = eye_b - eye_a
    inter = float(np.linalg.norm(axis))
    if inter < 1e-6:
        return 0.0
    mid = (eye_a + eye_b) / 2
    return float(np.dot(nose - mid, axis / inter) / inter)


def assess(dets: Detections, chips: list[Image], min_face_px: int, weights: QualityWeights | None = None,
           layout: LandmarkLayout = "dlib5") -> list[FaceQuality]:
    """One :class:`FaceQuality` per detection; ``chips`` are the aligned chips in the same order."""
    w = weights or QualityWeights()
    out: list[FaceQuality] = []
    for i in range(len(dets)):
        side = float(min(dets.widths[i], dets.heights[i]))
        size = float(np.clip((side - min_face_px) / max(min_face_px, 1), 0.0, 1.0))
        sharp = sharpness(chips[i])
        blur = float(np.clip(sharp / SHARPNESS_SATURATION, 0.0, 1.0))
        yaw = yaw_ratio(dets.landmarks[i], layout) if dets.landmarks is not None else 0.0
        pose = float(np.clip(1.0 - abs(yaw) / 0.5, 0.0, 1.0))
        det = float(np.clip((float(dets.score[i]) + 0.5) / 2.5, 0.0, 1.0))
        score = w.size * size + w.blur * blur + w.pose * pose + w.detector * det
        out.append(FaceQuality(score=score, size_px=side, size=size, blur=blur, sharpness=sharp,
                               pose=pose, yaw=yaw, detector=det))
    return out


# ----------------------------------------------------------------------------------- closed eyes

LANDMARKS_68_PACK = "dlib_landmarks_68"
_EYES_68 = ((36, 42), (42, 48))  # iBUG 300-W: six points around each eye, corners first and fourth


def eye_aspect_ratio_68(points: FloatArray) -> float:
    """Mean eye aspect ratio (Soukupova and Cech, 2016) of the two eyes of 68 landmarks: the eye's
    height (two vertical spans) over its width; about 0.3 open, below about 0.2 closed."""
    pts = np.asarray(points, np.float64).reshape(68, 2)
    ratios = []
    for start, _ in _EYES_68:
        p = pts[start:start + 6]
        width = float(np.linalg.norm(p[0] - p[3]))
        height = float(np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4]))
        ratios.append(height / (2 * width) if width > 1e-6 else 0.0)
    return float(np.mean(ratios))


class EyeMeter:
    """Closed eyes cannot be judged from the engine's 5 points (eye corners and nose only): this fits
    dlib's 68-point model on the face box (about 3 ms) and measures the eye aspect ratio.

    The 68-point model was trained on iBUG 300-W, whose images are licensed for research only; its
    manifest says ``commercial_use: false``, so the enrolment check that uses it is off by default.
    """

    def __init__(self, models_dir: Path | None = None) -> None:
        pack = resolve_pack(LANDMARKS_68_PACK, models_dir)
        self._predictor = dlib.shape_predictor(str(pack.path_for("landmarks_68")))

    def landmarks(self, image: Image, box: FloatArray) -> FloatArray:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        rect = dlib.rectangle(int(box[0]), int(box[1]), int(box[2]), int(box[3]))
        shape = self._predictor(grey, rect)
        out: FloatArray = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
        return out

    def aspect_ratio(self, image: Image, box: FloatArray) -> float:
        """Mean eye aspect ratio of the face in ``box`` (xyxy, HOG box convention)."""
        return eye_aspect_ratio_68(self.landmarks(image, box))
