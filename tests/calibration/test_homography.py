from __future__ import annotations

import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.homography import FloorHomography

IMAGE = [(100.0, 600.0), (1180.0, 600.0), (900.0, 300.0), (380.0, 300.0)]
FLOOR = [(0.0, 0.0), (4.0, 0.0), (4.0, 6.0), (0.0, 6.0)]


def test_given_four_pairs_when_fitted_then_points_map_to_the_floor() -> None:
    h = FloorHomography.from_points(IMAGE, FLOOR)
    np.testing.assert_allclose(h.to_floor(IMAGE), FLOOR, atol=1e-6)
    assert h.to_floor(np.zeros((0, 2))).shape == (0, 2)


@pytest.mark.parametrize(("image", "floor", "message"), [
    ([], [], "at least 4"),
    (IMAGE[:3], FLOOR[:3], "at least 4"),
    (IMAGE, FLOOR[:3], "floor points"),
    ([(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)], FLOOR, "collinear"),
    ([*IMAGE[:3], (float("nan"), 1.0)], FLOOR, "not finite"),
    ([*IMAGE, (640.0, 450.0)], [*FLOOR, (10.0, -3.0)], "reprojection error"),
])
def test_given_bad_points_when_fitted_then_refused(image: list[tuple[float, float]], floor: list[tuple[float, float]],
                                                   message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        FloorHomography.from_points(image, floor)


def test_given_a_singular_matrix_then_refused() -> None:
    with pytest.raises(CalibrationError, match="singular"):
        FloorHomography(np.zeros((3, 3)))
