"""Polygon operations for the zone editor: self-intersection, snapping, clipping to the image, floor projection;
and the validation of a camera's geometry against its image size."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.homography import fit_floor_homography
from calibration.polygons import (
    clip_to_image,
    crossing_edges,
    polygon_area,
    project_polygon,
    snap_point,
)
from calibration.validation import check_inside_image, check_zone
from calibration.zones import PolygonZone

SQUARE = [(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)]
BOW_TIE = [(0.0, 0.0), (100.0, 100.0), (100.0, 0.0), (0.0, 100.0)]


def test_area_is_signed_by_winding_and_crossing_edges_are_found() -> None:
    assert polygon_area(SQUARE) == pytest.approx(10000.0)
    assert polygon_area(SQUARE[::-1]) == pytest.approx(-10000.0)
    assert crossing_edges(SQUARE) is None
    assert crossing_edges(BOW_TIE) == (0, 2)  # edge 1 (p1-p2) crosses edge 3 (p3-p4)
    # a concave but simple polygon has no crossing
    assert crossing_edges([(0.0, 0.0), (100.0, 0.0), (50.0, 40.0), (100.0, 100.0), (0.0, 100.0)]) is None


def test_a_self_intersecting_zone_is_refused_naming_its_edges() -> None:
    with pytest.raises(CalibrationError, match=r"zone 'waiting' crosses itself: edge 1 .* edge 3"):
        PolygonZone("waiting", tuple(BOW_TIE))
    with pytest.raises(CalibrationError, match=r"crosses itself"):
        check_zone("waiting", BOW_TIE, (640, 480))


def test_snapping_takes_the_nearest_target_within_the_radius() -> None:
    targets = [(10.0, 10.0), (50.0, 50.0)]
    assert snap_point((12.0, 9.0), targets, radius=5.0) == (10.0, 10.0)
    assert snap_point((30.0, 30.0), targets, radius=5.0) == (30.0, 30.0)
    assert snap_point((47.0, 52.0), targets, radius=5.0, grid=None) == (50.0, 50.0)
    assert snap_point((31.0, 29.0), [], radius=5.0, grid=10.0) == (30.0, 30.0)


def test_clipping_to_the_image_keeps_the_part_inside() -> None:
    clipped = clip_to_image([(-50.0, -50.0), (50.0, -50.0), (50.0, 50.0), (-50.0, 50.0)], (640, 480))
    assert polygon_area(clipped) == pytest.approx(2500.0)
    assert clip_to_image([(700.0, 10.0), (800.0, 10.0), (800.0, 90.0)], (640, 480)) == []


def test_a_zone_is_projected_onto_the_floor() -> None:
    image = [(100.0, 400.0), (500.0, 400.0), (450.0, 200.0), (150.0, 200.0)]
    floor = [(0.0, 0.0), (4.0, 0.0), (4.0, 6.0), (0.0, 6.0)]
    fit = fit_floor_homography(image, floor)
    np.testing.assert_allclose(project_polygon(image, fit.matrix), floor, atol=1e-6)


@pytest.mark.parametrize(("points", "message"), [
    ([(10.0, 10.0), (700.0, 10.0), (600.0, 400.0)], r"zone 'counter 1' point 2 \(700, 10\) lies outside the 640x480"),
    ([(10.0, 10.0), (20.0, 10.0)], "at least 3"),
])
def test_a_zone_outside_the_picture_or_too_small_is_refused(points: list[tuple[float, float]], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        check_zone("counter 1", points, (640, 480))


def test_floor_marks_outside_the_picture_are_refused() -> None:
    check_inside_image("floor mark", [(0.0, 0.0), (640.0, 480.0)], (640, 480))
    with pytest.raises(CalibrationError, match=r"floor mark 2 \(-3, 5\) lies outside the 640x480 image"):
        check_inside_image("floor mark", [(1.0, 1.0), (-3.0, 5.0)], (640, 480))
