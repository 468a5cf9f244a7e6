"""ArcFace alignment: the least-squares similarity onto the 112x112 template, on synthetic points and a real photo."""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from vision.align import (
    ARCFACE_TEMPLATE,
    arcface_template,
    estimate_norm,
    norm_crop,
    similarity_transform,
    transform_points,
)
from vision.engines.base import FaceEngine
from vision.types import Image


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx],
                     [scale * math.sin(a), scale * math.cos(a), ty]], np.float64)


def _residual(points: np.ndarray, matrix: np.ndarray, target: np.ndarray) -> float:
    return float(np.linalg.norm(transform_points(points, matrix) - target, axis=1).max())


def _eye_centres(dlib_points: np.ndarray) -> np.ndarray:
    """dlib's 5 points are two corners per eye (0-1, 2-3) and the nose base: the eye centres, image-left first."""
    eyes = np.array([dlib_points[0:2].mean(axis=0), dlib_points[2:4].mean(axis=0)])
    return eyes[np.argsort(eyes[:, 0])]


def _arcface_points_from_eyes(eyes: np.ndarray) -> np.ndarray:
    """Five points in InsightFace order for a frontal face with these eyes: the template moved onto them.

    dlib gives no mouth corners and a nose base rather than a nose tip, so only its eyes are used.
    """
    return transform_points(ARCFACE_TEMPLATE, similarity_transform(ARCFACE_TEMPLATE[:2], eyes))


# ---------------------------------------------------------------- the template and the transform

@pytest.mark.parametrize(("size", "ratio"), [(112, 1.0), (224, 2.0), (448, 4.0)])
def test_template_scales_with_the_chip(size: int, ratio: float) -> None:
    np.testing.assert_allclose(arcface_template(size), ARCFACE_TEMPLATE * ratio, rtol=1e-6)


@pytest.mark.parametrize("size", [0, -112, 100, 128])
def test_template_refuses_sizes_that_are_not_multiples_of_112(size: int) -> None:
    with pytest.raises(ValueError, match="112"):
        arcface_template(size)


@pytest.mark.parametrize(
    ("angle", "scale", "tx", "ty"),
    [(0, 1, 0, 0), (0, 3.5, 200, 100), (30, 0.6, -20, 40), (-45, 2.0, 640, 10), (170, 1.2, 5, 5), (90, 10, 0, 0)],
)
def test_norm_maps_five_similar_points_onto_the_template(angle: float, scale: float, tx: float, ty: float) -> None:
    # given the template moved by a known similarity (a face turned, scaled and shifted in a frame)
    face = transform_points(ARCFACE_TEMPLATE, _similarity(angle, scale, tx, ty))
    # when the alignment is estimated
    matrix = estimate_norm(face)
    # then it maps the points back onto the template (residual far below a pixel) and is the inverse move
    assert _residual(face, matrix, ARCFACE_TEMPLATE) < 1e-3
    inverse = cv2.invertAffineTransform(_similarity(angle, scale, tx, ty))
    np.testing.assert_allclose(matrix, inverse, atol=1e-4)


def test_a_mirrored_face_is_not_reflected_back() -> None:
    # given points mirrored left-right (the template seen in a mirror), when aligned
    mirrored = ARCFACE_TEMPLATE * [-1, 1] + [200, 0]
    matrix = estimate_norm(mirrored)
    # then the transform is a rotation and scale (positive determinant), never a reflection
    assert np.linalg.det(matrix[:, :2]) > 0


def test_the_fit_is_least_squares_on_noisy_points() -> None:
    # given the template moved and jittered by a few pixels
    rng = np.random.default_rng(0)
    face = transform_points(ARCFACE_TEMPLATE, _similarity(12, 2.5, 300, 200)) + rng.normal(0, 3, (5, 2))
    # when aligned, then no similarity found by OpenCV's robust estimator fits better
    ours = estimate_norm(face)
    theirs, _ = cv2.estimateAffinePartial2D(face.astype(np.float32), ARCFACE_TEMPLATE, method=cv2.LMEDS)
    def sse(m: np.ndarray) -> float:
        return float(((transform_points(face, m) - ARCFACE_TEMPLATE) ** 2).sum())
    assert sse(ours) <= sse(theirs) + 1e-6
    assert _residual(face, ours, ARCFACE_TEMPLATE) < 5.0


@pytest.mark.parametrize(
    ("landmarks", "message"),
    [
        (np.zeros((0, 2)), "5 landmarks"),
        (np.zeros((4, 2)), "5 landmarks"),
        (np.zeros((5, 3)), "5 landmarks"),
        (np.zeros((68, 2)), "5 landmarks"),
        (np.full((5, 2), 10.0), "one point"),
        (np.where(np.eye(5, 2) > 0, np.nan, 1.0) + ARCFACE_TEMPLATE, "finite"),
    ],
    ids=["empty", "four", "three-columns", "dlib-68", "collapsed", "nan"],
)
def test_bad_landmarks_are_refused(landmarks: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        norm_crop(np.zeros((50, 50, 3), np.uint8), landmarks)


# ---------------------------------------------------------------- a real photo

def test_norm_crop_aligns_a_real_face(photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given obama.jpg and five points built from the eye centres dlib finds in it
    image = photo("obama.jpg")
    points = _arcface_points_from_eyes(_eye_centres(engine.detect(image).landmarks[0]))  # type: ignore[index]
    # when the face is cropped and aligned
    chip = norm_crop(image, points)
    assert chip.shape == (112, 112, 3) and chip.dtype == np.uint8
    assert _residual(points, estimate_norm(points), ARCFACE_TEMPLATE) < 1.0
    # then dlib, run again on the chip (enlarged and padded so that HOG can see it), finds the eyes
    # where the ArcFace template puts them
    pad = 60
    big = cv2.copyMakeBorder(cv2.resize(chip, (224, 224), interpolation=cv2.INTER_CUBIC), pad, pad, pad, pad,
                             cv2.BORDER_REPLICATE)
    again = engine.detect(np.ascontiguousarray(big))
    assert len(again) == 1
    eyes_in_chip = (_eye_centres(again.landmarks[0]) - pad) / 2  # type: ignore[index]
    assert np.linalg.norm(eyes_in_chip - ARCFACE_TEMPLATE[:2], axis=1).max() < 2.0


def test_norm_crop_undoes_a_rotation_of_a_real_photo(photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given obama.jpg and the same photo turned by 25 degrees, enlarged by 1.3 and shifted
    image = photo("obama.jpg")
    points = _arcface_points_from_eyes(_eye_centres(engine.detect(image).landmarks[0]))  # type: ignore[index]
    h, w = image.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.3)
    turn[:, 2] += (100, 80)
    turned = np.ascontiguousarray(cv2.warpAffine(image, turn, (w + 200, h + 160)))
    # when both faces are aligned on their (moved) points
    straight = norm_crop(image, points).astype(np.int16)
    from_turned = norm_crop(turned, transform_points(points, turn)).astype(np.int16)
    # then the chips agree up to resampling noise
    assert float(np.abs(straight - from_turned).mean()) < 10.0
    assert float(np.abs(straight - norm_crop(image, points + 15).astype(np.int16)).mean()) > 20.0
