"""Face quality: size, blur, pose and detector score, combined into one score in [0, 1].

The overall score ranks the shots of one track (best-shot selection). Enrolment uses the parts
against explicit limits (minimum size, minimum sharpness).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from vision.types import Detections, FaceQuality, Image

# Sharpness is the variance of the Laplacian of the 150x150 aligned grey chip.
SHARPNESS_SATURATION = 400.0


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
