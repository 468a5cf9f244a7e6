"""Face quality on real photos: sharpness, yaw and the combined score."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from vision.engines.base import FaceEngine
from vision.quality import SHARPNESS_SATURATION, QualityWeights, assess, sharpness, yaw_ratio
from vision.types import Detections, Image

# dlib 5-point layout: eye A corners (0, 1), eye B corners (2, 3), nose base (4).
FRONTAL = np.array([[70, 50], [60, 50], [30, 50], [40, 50], [50, 75]], np.float32)


def _blur(image: Image, sigma: float) -> Image:
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), np.uint8)


def test_sharp_face_scores_higher_than_the_same_face_blurred(photo: Callable[[str], Image],
                                                             engine: FaceEngine) -> None:
    # given obama.jpg and the same photo blurred with a Gaussian (sigma 3)
    image = photo("obama.jpg")
    blurred = _blur(image, 3.0)
    dets = engine.detect(image)
    assert len(dets) == 1
    # when both are aligned on the same detection and assessed
    [sharp_chip] = engine.chips(image, dets)
    [blur_chip] = engine.chips(blurred, dets)
    [q_sharp] = assess(dets, [sharp_chip], engine.min_face_px)
    [q_blur] = assess(dets, [blur_chip], engine.min_face_px)
    # then sharpness and the overall score drop, while size, pose and detector parts are equal
    assert sharpness(sharp_chip) > 2 * sharpness(blur_chip)
    assert q_sharp.sharpness == pytest.approx(sharpness(sharp_chip))
    assert q_sharp.blur > q_blur.blur
    assert q_sharp.score > q_blur.score
    assert (q_sharp.size, q_sharp.pose, q_sharp.detector) == (q_blur.size, q_blur.pose, q_blur.detector)


def test_real_quality_parts_are_in_range(photo: Callable[[str], Image], engine_small_faces: FaceEngine) -> None:
    # given the six real faces of t1.jpg
    image = photo("t1.jpg")
    dets = engine_small_faces.detect(image)
    chips = engine_small_faces.chips(image, dets)
    # when assessed
    qualities = assess(dets, chips, engine_small_faces.min_face_px)
    # then there is one per face, every part in [0, 1] and size_px the box's shorter side
    assert len(qualities) == len(dets) == 6
    for q, w, h in zip(qualities, dets.widths, dets.heights, strict=True):
        assert all(0.0 <= part <= 1.0 for part in (q.score, q.size, q.blur, q.pose, q.detector))
        assert q.size_px == pytest.approx(min(w, h))


@pytest.mark.parametrize("sigma", [1.5, 3.0, 6.0])
def test_sharpness_falls_as_blur_grows(photo: Callable[[str], Image], engine: FaceEngine, sigma: float) -> None:
    # given the real aligned chip of obama2.jpg
    image = photo("obama2.jpg")
    [chip] = engine.chips(image, engine.detect(image))
    # when blurred more, then sharpness falls; half the sigma is sharper than this sigma
    assert sharpness(_blur(chip, sigma / 2)) > sharpness(_blur(chip, sigma))


@pytest.mark.parametrize(
    ("chip", "expected"),
    [
        (np.zeros((150, 150, 3), np.uint8), 0.0),  # flat: no edges
        (np.full((10, 10, 3), 200, np.uint8), 0.0),
    ],
)
def test_sharpness_of_flat_images_is_zero(chip: Image, expected: float) -> None:
    # given a flat image, when its sharpness is measured, then it is zero
    assert sharpness(chip) == pytest.approx(expected)


def test_yaw_of_a_frontal_real_face_is_near_zero(photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given the real landmarks of obama.jpg (a frontal face)
    dets = engine.detect(photo("obama.jpg"))
    assert dets.landmarks is not None
    # when the yaw ratio is computed, then it is near zero
    assert abs(yaw_ratio(dets.landmarks[0])) < 0.1


@pytest.mark.parametrize(
    ("nose_x", "sign"),
    [(50, 0), (62, 1), (38, -1), (68, 1)],
    ids=["frontal", "toward-eye-a", "toward-eye-b", "far-toward-eye-a"],
)
def test_yaw_grows_as_the_nose_moves_toward_one_eye(nose_x: float, sign: int) -> None:
    # given synthetic landmarks with the nose shifted horizontally
    landmarks = FRONTAL.copy()
    landmarks[4, 0] = nose_x
    # when the yaw ratio is computed
    yaw = yaw_ratio(landmarks)
    # then its magnitude is the shift in inter-eye distances (30 px), with a sign per side
    assert yaw == pytest.approx(-sign * abs(nose_x - 50) / 30, abs=1e-6)


def test_yaw_of_a_turned_face_is_clearly_larger_than_a_frontal_real_face(photo: Callable[[str], Image],
                                                                         engine: FaceEngine) -> None:
    # given the real landmarks of obama.jpg and a copy with the nose moved 80% toward one eye
    dets = engine.detect(photo("obama.jpg"))
    assert dets.landmarks is not None
    real = dets.landmarks[0]
    turned = real.copy()
    eye_a = real[0:2].mean(axis=0)
    turned[4] = real[4] + 0.8 * (eye_a - (real[0:2].mean(axis=0) + real[2:4].mean(axis=0)) / 2)
    # when both yaws are computed, then the turned one is clearly larger in magnitude
    assert abs(yaw_ratio(turned)) > abs(yaw_ratio(real)) + 0.3
    # and the pose part of its quality falls from near 1 to below 0.5
    moved = Detections(dets.xyxy, dets.score, turned[None], None)
    chip = np.zeros((150, 150, 3), np.uint8)
    assert assess(dets, [chip], 80)[0].pose > 0.8
    assert assess(moved, [chip], 80)[0].pose < 0.5


def test_yaw_of_degenerate_landmarks_is_zero() -> None:
    # given landmarks whose eyes coincide, when the yaw is computed, then it is 0 instead of a division error
    assert yaw_ratio(np.zeros((5, 2), np.float32)) == 0.0


def test_assess_on_empty_detections_returns_nothing() -> None:
    # given no detections, when assessed, then the list is empty
    assert assess(Detections.empty(with_landmarks=True), [], 80) == []
    assert assess(Detections.empty(), [], 80) == []


@pytest.mark.parametrize(
    ("side", "score", "size", "detector"),
    [
        (80, 0.0, 0.0, 0.2),  # at the minimum size: size part 0
        (120, 2.0, 0.5, 1.0),
        (160, -0.5, 1.0, 0.0),  # twice the minimum: size part saturates
        (500, 10.0, 1.0, 1.0),
        (40, -3.0, 0.0, 0.0),  # below the minimum and a negative score: clipped to 0
    ],
)
def test_size_and_detector_parts(side: float, score: float, size: float, detector: float) -> None:
    # given a square box of ``side`` px with a detector score, no landmarks and a flat chip
    dets = Detections.from_lists([[0, 0, side, side]], [score])
    # when assessed against an 80 px minimum
    [q] = assess(dets, [np.zeros((150, 150, 3), np.uint8)], 80)
    # then the size and detector parts follow their formulas, pose is frontal, blur is 0
    assert q.size == pytest.approx(size) and q.detector == pytest.approx(detector)
    assert q.pose == 1.0 and q.yaw == 0.0 and q.blur == 0.0
    w = QualityWeights()
    assert q.score == pytest.approx(w.size * size + w.pose + w.detector * detector)


def test_blur_part_saturates() -> None:
    # given a checkerboard chip (very high Laplacian variance)
    chip = np.indices((150, 150)).sum(axis=0) % 2 * 255
    chip3 = np.repeat(chip[:, :, None], 3, axis=2).astype(np.uint8)
    # when assessed, then the blur part is capped at 1
    [q] = assess(Detections.from_lists([[0, 0, 100, 100]], [1.0]), [chip3], 80)
    assert q.sharpness > SHARPNESS_SATURATION and q.blur == 1.0


@pytest.mark.parametrize(("layout", "points", "frontal"), [
    ("arcface5", [[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]], True),
    ("arcface5", [[38.3, 51.7], [73.5, 51.5], [72.0, 71.7], [41.5, 92.4], [70.7, 92.2]], False),
    ("dlib5", [[70, 50], [60, 50], [30, 50], [40, 50], [50, 75]], True),
    ("dlib5", [[70, 50], [60, 50], [30, 50], [40, 50], [68, 75]], False),
])
def test_yaw_reads_each_engines_landmark_layout(layout: str, points: list[list[float]], frontal: bool) -> None:
    yaw = abs(yaw_ratio(np.asarray(points, np.float32), layout))  # type: ignore[arg-type]
    assert (yaw < 0.05) if frontal else (yaw > 0.3)
