"""fit_floor_homography: known floor points projected through a known homography are recovered, with per-point
errors, RANSAC rejecting a mis-clicked point, and degenerate sets refused with a reason naming the points."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.homography import FloorFit, FloorHomography, fit_floor_homography

# A camera 2.8 m up looking down at the floor at an angle: floor metres -> image pixels.
TRUE_H = np.array([[120.0, -35.0, 420.0], [8.0, 40.0, 180.0], [0.01, -0.05, 1.0]])
FLOOR = [(0.0, 0.0), (4.0, 0.0), (4.0, 6.0), (0.0, 6.0), (2.0, 3.0), (1.0, 5.0), (3.5, 1.5), (0.5, 2.0)]


def to_image(floor: list[tuple[float, float]]) -> list[tuple[float, float]]:
    pts = cv2.perspectiveTransform(np.asarray(floor, np.float64).reshape(-1, 1, 2), TRUE_H).reshape(-1, 2)
    return [(float(x), float(y)) for x, y in pts]


def test_given_projected_floor_points_when_fitted_then_the_inverse_homography_is_recovered() -> None:
    fit = fit_floor_homography(to_image(FLOOR), FLOOR)
    assert isinstance(fit, FloorFit)
    recovered = np.linalg.inv(fit.matrix)
    np.testing.assert_allclose(recovered / recovered[2, 2], TRUE_H, rtol=1e-6, atol=1e-6)
    assert fit.rms_m < 1e-6 and fit.rms_px < 1e-4
    assert len(fit.per_point_error_m) == len(FLOOR) == len(fit.per_point_error_px) == len(fit.inliers)
    assert all(fit.inliers)
    assert isinstance(fit.homography, FloorHomography)
    np.testing.assert_allclose(fit.homography.to_floor(to_image(FLOOR)), FLOOR, atol=1e-6)


def test_given_clicks_with_pixel_noise_when_fitted_then_errors_are_centimetres_and_reported_per_point() -> None:
    rng = np.random.default_rng(3)
    image = [(x + rng.normal(0, 1.5), y + rng.normal(0, 1.5)) for x, y in to_image(FLOOR)]
    fit = fit_floor_homography(image, FLOOR)
    errors = np.asarray(fit.per_point_error_m)
    assert 0 < errors.max() < 0.1
    assert fit.rms_m == pytest.approx(float(np.sqrt((errors ** 2).mean())))
    assert 0 < fit.rms_px < 5


def test_given_one_mis_clicked_point_when_fitted_with_ransac_then_it_is_the_one_outlier() -> None:
    image = to_image(FLOOR)
    image[4] = (image[4][0] + 120.0, image[4][1] - 80.0)
    fit = fit_floor_homography(image, FLOOR, ransac=True)
    assert fit.inliers == tuple(i != 4 for i in range(len(FLOOR)))
    assert fit.per_point_error_m[4] > 0.5
    assert fit.rms_m < 1e-6  # over the inliers
    assert fit.outlier_numbers == (5,)


def test_given_four_points_when_fitted_without_ransac_then_exact() -> None:
    fit = fit_floor_homography(to_image(FLOOR[:4]), FLOOR[:4], ransac=False)
    assert max(fit.per_point_error_px) < 1e-3


@pytest.mark.parametrize(("image", "floor", "message"), [
    (to_image(FLOOR[:3]), FLOOR[:3], "at least 4 point pairs, got 3"),
    (to_image(FLOOR), FLOOR[:5], "8 image points but 5 floor points"),
    ([(10.0, 10.0), (200.0, 200.0), (300.0, 300.0), (400.0, 400.0), (500.0, 500.0)], FLOOR[:5],
     r"image points 1, 2, 3, 4, 5 lie on one line"),
    (to_image(FLOOR[:4]), [(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (0.0, 3.0)], r"floor points 1, 2, 3 lie on one line"),
    (to_image([(0.0, 0.0), (4.0, 0.0), (4.0, 6.0), (4.0, 6.0), (0.0, 6.0)]),
     [(0.0, 0.0), (4.0, 0.0), (4.0, 6.0), (4.0, 6.0), (0.0, 6.0)], r"points 3 and 4 are the same image point"),
    (to_image(FLOOR[:4]), [(0.0, 0.0), (4.0, 0.0), (4.0, 6.0), (4.0, 0.0)], r"points 2 and 4 are the same floor point"),
    ([*to_image(FLOOR[:3]), (float("nan"), 2.0)], FLOOR[:4], r"image point 4 is not finite"),
])
def test_given_a_degenerate_set_when_fitted_then_refused_naming_the_points(
        image: list[tuple[float, float]], floor: list[tuple[float, float]], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        fit_floor_homography(image, floor)


def test_given_most_points_on_a_line_when_fitted_then_refused_naming_that_line() -> None:
    floor = [(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (3.0, 0.0), (4.0, 0.0), (2.0, 5.0)]
    with pytest.raises(CalibrationError, match=r"(image|floor) points 1, 2, 3, 4, 5 lie on one line"):
        fit_floor_homography(to_image(floor), floor)
