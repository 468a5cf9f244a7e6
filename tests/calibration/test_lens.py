"""Lens model: checkerboards rendered through known intrinsics and distortion are found and recovered."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.lens import (
    LensModel,
    board_points,
    calibrate_lens,
    find_board,
    render_checkerboard,
    synthetic_poses,
    undistort_maps,
)

SIZE = (1280, 720)
TRUTH = LensModel(fx=900.0, fy=905.0, cx=652.0, cy=355.0, dist=(-0.28, 0.09, 0.0008, -0.0005, 0.0),
                  image_size=SIZE)
BOARD = (9, 6)


@pytest.fixture(scope="module")
def views() -> list[tuple[np.ndarray, np.ndarray]]:
    """Ten rendered views: (image, true corners)."""
    return [render_checkerboard(TRUTH, rvec, tvec, board=BOARD, square_mm=25.0, seed=i)
            for i, (rvec, tvec) in enumerate(synthetic_poses(TRUTH, 10, board=BOARD, square_mm=25.0, seed=7))]


def test_given_a_rendered_board_when_searched_then_every_inner_corner_is_found_to_a_fraction_of_a_pixel(
        views: list[tuple[np.ndarray, np.ndarray]]) -> None:
    image, truth = views[0]
    assert image.shape == (SIZE[1], SIZE[0], 3) and image.dtype == np.uint8
    found = find_board(image, BOARD)
    assert found is not None and found.shape == (54, 2) and found.dtype == np.float32
    nearest = np.linalg.norm(found[:, None, :] - truth[None, :, :], axis=2).min(axis=1)
    assert float(nearest.max()) < 0.25


def test_given_an_image_without_a_board_when_searched_then_none() -> None:
    assert find_board(np.full((480, 640, 3), 127, np.uint8)) is None


def test_given_rendered_views_when_calibrated_then_focal_length_within_1pct_and_k1_within_002(
        views: list[tuple[np.ndarray, np.ndarray]]) -> None:
    corners = [find_board(image, BOARD) for image, _ in views]
    usable = [c for c in corners if c is not None]
    assert len(usable) >= 8
    model = calibrate_lens(usable, board=BOARD, square_mm=25.0, image_size=SIZE)
    assert abs(model.fx - TRUTH.fx) / TRUTH.fx < 0.01
    assert abs(model.fy - TRUTH.fy) / TRUTH.fy < 0.01
    assert abs(model.dist[0] - TRUTH.dist[0]) < 0.02
    assert model.rms < 0.5 and len(model.per_image_rms) == len(usable)
    assert model.image_size == SIZE


def test_given_a_model_when_written_to_config_and_read_back_then_equal() -> None:
    config = TRUTH.to_config()
    assert set(config) == {"fx", "fy", "cx", "cy", "dist", "image_size", "rms"}
    assert LensModel.from_config(config) == TRUTH


@pytest.mark.parametrize(("config", "message"), [
    ({"fx": -1.0, "fy": 900.0, "cx": 640.0, "cy": 360.0, "dist": [0, 0, 0, 0, 0], "image_size": [1280, 720]},
     "focal"),
    ({"fx": 900.0, "fy": 900.0, "cx": 640.0, "cy": 360.0, "dist": [0, 0, 0], "image_size": [1280, 720]},
     "5 distortion"),
    ({"fx": 900.0, "fy": 900.0, "cx": 2000.0, "cy": 360.0, "dist": [0, 0, 0, 0, 0], "image_size": [1280, 720]},
     "principal point"),
    ({"fx": 900.0, "fy": 900.0, "cx": 640.0, "dist": [0, 0, 0, 0, 0], "image_size": [1280, 720]}, "cy"),
])
def test_given_a_malformed_lens_config_then_refused_with_the_reason(config: dict[str, object], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        LensModel.from_config(config)


def test_given_too_few_views_when_calibrated_then_refused(views: list[tuple[np.ndarray, np.ndarray]]) -> None:
    with pytest.raises(CalibrationError, match="at least 3"):
        calibrate_lens([truth for _, truth in views[:2]], board=BOARD, square_mm=25.0, image_size=SIZE)


def test_given_a_view_with_the_wrong_corner_count_when_calibrated_then_refused_naming_it(
        views: list[tuple[np.ndarray, np.ndarray]]) -> None:
    corners = [truth for _, truth in views[:4]]
    corners[2] = corners[2][:40]
    with pytest.raises(CalibrationError, match=r"image 3.*40 corners.*54"):
        calibrate_lens(corners, board=BOARD, square_mm=25.0, image_size=SIZE)


def test_given_corners_outside_the_image_size_when_calibrated_then_refused_as_mismatched(
        views: list[tuple[np.ndarray, np.ndarray]]) -> None:
    corners = [truth for _, truth in views[:4]]
    with pytest.raises(CalibrationError, match=r"image 1.*outside.*640x360"):
        calibrate_lens(corners, board=BOARD, square_mm=25.0, image_size=(640, 360))


def test_given_the_same_view_repeated_when_calibrated_then_refused_as_degenerate(
        views: list[tuple[np.ndarray, np.ndarray]]) -> None:
    same = views[0][1]
    with pytest.raises(CalibrationError, match=r"degenerate|too alike"):
        calibrate_lens([same, same + 0.01, same - 0.01, same], board=BOARD, square_mm=25.0, image_size=SIZE)


def test_given_maps_when_applied_then_straight_lines_come_out_straight(
        views: list[tuple[np.ndarray, np.ndarray]]) -> None:
    image, truth = views[0]
    maps = undistort_maps(TRUTH)
    out = maps.apply(image)
    assert out.shape == image.shape and out.dtype == np.uint8
    corrected = maps.undistort_points(truth).reshape(BOARD[1], BOARD[0], 2)
    for row in corrected:  # each board row is a straight line once undistorted
        centred = row - row.mean(axis=0)
        assert float(np.linalg.svd(centred, compute_uv=False)[1]) < 0.3
    found = find_board(out, BOARD)
    assert found is not None
    nearest = np.linalg.norm(found[:, None, :] - corrected.reshape(-1, 2)[None], axis=2).min(axis=1)
    assert float(nearest.max()) < 0.5


def test_given_a_frame_of_another_size_when_applied_then_refused() -> None:
    maps = undistort_maps(TRUTH)
    with pytest.raises(CalibrationError, match=r"640x360.*1280x720"):
        maps.apply(np.zeros((360, 640, 3), np.uint8))


def test_given_a_model_when_scaled_to_half_size_then_intrinsics_halve() -> None:
    half = TRUTH.scaled((640, 360))
    assert half.fx == pytest.approx(450.0) and half.cy == pytest.approx(177.5) and half.dist == TRUTH.dist
    with pytest.raises(CalibrationError, match="aspect"):
        TRUTH.scaled((640, 480))


def test_given_views_all_facing_the_camera_square_on_when_calibrated_then_refused_as_degenerate() -> None:
    corners = []
    for tx, ty in ((-100.0, -50.0), (0.0, 40.0), (60.0, -50.0), (-60.0, 40.0), (80.0, 0.0)):
        pts, _ = cv2.projectPoints(board_points(BOARD, 25.0), np.zeros((3, 1)), np.array([[tx], [ty], [700.0]]),
                                   TRUTH.camera_matrix, TRUTH.dist_coeffs)
        corners.append(pts.reshape(-1, 2).astype(np.float32))
    with pytest.raises(CalibrationError, match=r"degenerate views.*tilt"):
        calibrate_lens(corners, board=BOARD, square_mm=25.0, image_size=SIZE)


def test_given_nearest_interpolation_then_the_picture_matches_linear_to_within_sampling_noise(
        views: list[tuple[np.ndarray, np.ndarray]]) -> None:
    image, _ = views[1]
    maps = undistort_maps(TRUTH)
    linear = maps.apply(image)
    nearest = maps.apply(image, nearest=True)
    assert nearest.shape == linear.shape
    assert float(np.abs(nearest.astype(np.int16) - linear.astype(np.int16)).mean()) < 3.0
    assert find_board(nearest, BOARD) is not None
