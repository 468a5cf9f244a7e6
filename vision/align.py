"""Face alignment: a similarity transform of 5 landmarks onto the ArcFace 112x112 template.

The 5 points are in InsightFace's order: the eye on the image's left, the eye on the image's
right, the nose tip, the mouth corner on the image's left, the mouth corner on the image's right.
(dlib's 5 points are a different layout: two corners per eye and the base of the nose.)

The transform is the least-squares similarity (rotation, uniform scale, translation, no
reflection) of Umeyama (1991), the one scikit-image's ``SimilarityTransform.estimate`` computes,
so that chips match what ArcFace models were trained on.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import numpy.typing as npt

from vision.types import FloatArray, Image

logger = logging.getLogger(__name__)

ARCFACE_SIZE = 112
# The standard arcface_dst points for a 112x112 chip (insightface utils/face_align.py).
ARCFACE_TEMPLATE: FloatArray = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)

Matrix = npt.NDArray[np.float64]


def arcface_template(size: int = ARCFACE_SIZE) -> FloatArray:
    """The 5 template points for a ``size`` x ``size`` chip; ``size`` must be a multiple of 112."""
    if size <= 0 or size % ARCFACE_SIZE:
        raise ValueError(f"ArcFace chips are a multiple of {ARCFACE_SIZE} px, got {size}")
    out: FloatArray = (ARCFACE_TEMPLATE * (size / ARCFACE_SIZE)).astype(np.float32)
    return out


def similarity_transform(src: npt.ArrayLike, dst: npt.ArrayLike) -> Matrix:
    """The 2x3 least-squares similarity that maps ``src`` (N,2) onto ``dst`` (N,2), N >= 2."""
    s = np.asarray(src, np.float64)
    d = np.asarray(dst, np.float64)
    if s.ndim != 2 or s.shape[1] != 2 or s.shape != d.shape or s.shape[0] < 2:
        raise ValueError(f"need two matching (N, 2) point sets with N >= 2, got {s.shape} and {d.shape}")
    if not (np.isfinite(s).all() and np.isfinite(d).all()):
        raise ValueError("landmarks must be finite numbers")
    src_mean, dst_mean = s.mean(axis=0), d.mean(axis=0)
    src_c, dst_c = s - src_mean, d - dst_mean
    src_var = float((src_c**2).sum()) / len(s)
    if src_var < 1e-12:
        raise ValueError("the landmarks all lie on one point; no transform can be estimated")
    cov = dst_c.T @ src_c / len(s)
    u, sing, vt = np.linalg.svd(cov)
    signs = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        signs[-1] = -1.0  # no reflection: a mirrored face is not the same face
    rotation = u @ np.diag(signs) @ vt
    scale = float((sing * signs).sum()) / src_var
    matrix = np.empty((2, 3), np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def transform_points(points: npt.ArrayLike, matrix: Matrix) -> FloatArray:
    """Apply a 2x3 affine ``matrix`` to (N,2) points."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    out: FloatArray = (p @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
    return out


def estimate_norm(landmarks: npt.ArrayLike, size: int = ARCFACE_SIZE) -> Matrix:
    """The similarity taking 5 face landmarks (InsightFace order) onto the ArcFace template."""
    points = np.asarray(landmarks, np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"ArcFace alignment needs 5 landmarks of shape (5, 2), got {points.shape}")
    return similarity_transform(points, arcface_template(size))


def norm_crop(image: Image, landmarks: npt.ArrayLike, size: int = ARCFACE_SIZE) -> Image:
    """The aligned ``size`` x ``size`` chip of the face whose 5 landmarks are given (same colour order)."""
    matrix = estimate_norm(landmarks, size)
    chip = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    out: Image = np.ascontiguousarray(chip, dtype=np.uint8)
    return out
