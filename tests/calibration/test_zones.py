"""PolygonZone: validation of malformed polygons and anchor-point membership of boxes."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.zones import Anchor, PolygonZone
from vision.engines.base import FaceEngine
from vision.types import Image

SQUARE = ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0))


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ((), "at least 3 points"),
        (((0, 0),), "at least 3 points"),
        (((0, 0), (10, 10)), "at least 3 points"),
        (((0, 0), (10, 10), (20, 20)), "zero area"),  # collinear
        (((5, 5), (5, 5), (5, 5), (5, 5)), "zero area"),  # one point repeated
        (((0, 0), (0.5, 0), (0.5, 0.5)), "zero area"),  # under one square pixel
        (((0, 0), (10, 0), (math.nan, 10)), "non-finite"),
        (((0, 0), (math.inf, 0), (10, 10)), "non-finite"),
        (((0, 0), (10, 0), (10, -math.inf)), "non-finite"),
    ],
    ids=["empty", "one-point", "two-points", "collinear", "repeated", "sub-pixel", "nan", "inf", "minus-inf"],
)
def test_malformed_zones_are_refused(points: tuple[tuple[float, float], ...], message: str) -> None:
    # given malformed points, when a zone is built, then CalibrationError names the zone and the problem
    with pytest.raises(CalibrationError, match=message) as info:
        PolygonZone("door", points)
    assert "door" in str(info.value)


def test_calibration_error_is_a_value_error() -> None:
    # given the domain error, then callers catching ValueError also catch it
    assert issubclass(CalibrationError, ValueError)


@pytest.mark.parametrize(
    "points",
    [SQUARE, ((0, 0), (10, 0), (0, 10)), tuple(reversed(SQUARE))],
    ids=["square", "triangle", "clockwise"],
)
def test_valid_zones_are_accepted_in_either_winding(points: tuple[tuple[float, float], ...]) -> None:
    # given a valid polygon in either winding, when built, then it keeps its points
    assert PolygonZone("z", points).points == points


# boxes (x1, y1, x2, y2) against SQUARE; CENTER is the box centre, BOTTOM_CENTER the middle of its bottom edge
BOXES = [
    ((10, 10, 30, 30), True, True),  # wholly inside
    ((80, 80, 120, 120), True, False),  # centre (100,100) on the corner: inside; bottom (100,120) outside
    ((40, 60, 60, 140), True, False),  # centre (50,100) on the edge; bottom (50,140) outside
    ((40, -50, 60, 90), True, True),  # sticking out above: centre (50,20), bottom (50,90)
    ((40, 70, 60, 150), False, False),  # centre (50,110) outside
    ((40, 40, 60, 100), True, True),  # bottom (50,100) exactly on the edge
    ((200, 200, 300, 300), False, False),  # far away
    ((-60, 10, -40, 30), False, False),  # left of the zone
]


@pytest.mark.parametrize("anchor", [Anchor.CENTER, Anchor.BOTTOM_CENTER])
def test_contains_by_anchor(anchor: Anchor) -> None:
    # given the 100x100 square zone and a table of boxes
    zone = PolygonZone("counter", SQUARE)
    xyxy = np.array([b for b, _, _ in BOXES], np.float32)
    # when membership is tested with an anchor
    inside = zone.contains(xyxy, anchor)
    # then each box's anchor point decides (points on the border count as inside)
    expected = [c if anchor is Anchor.CENTER else b for _, c, b in BOXES]
    assert inside.dtype == bool
    assert inside.tolist() == expected


def test_center_is_the_default_anchor() -> None:
    # given a box whose centre is inside but whose bottom is not, when tested with no anchor, then inside
    zone = PolygonZone("z", SQUARE)
    assert zone.contains(np.array([[40, 60, 60, 140]], np.float32)).tolist() == [True]


def test_concave_zone() -> None:
    # given an L-shaped zone (the notch at top right is outside)
    zone = PolygonZone("L", ((0, 0), (50, 0), (50, 50), (100, 50), (100, 100), (0, 100)))
    boxes = np.array([[20, 20, 30, 30], [70, 20, 80, 30], [70, 70, 80, 80]], np.float32)
    # when tested, then the notch is excluded
    assert zone.contains(boxes).tolist() == [True, False, True]


@pytest.mark.parametrize("anchor", [Anchor.CENTER, Anchor.BOTTOM_CENTER])
def test_empty_boxes_give_an_empty_result(anchor: Anchor) -> None:
    # given no boxes, when tested, then the result is an empty bool array
    out = PolygonZone("z", SQUARE).contains(np.zeros((0, 4), np.float32), anchor)
    assert out.shape == (0,) and out.dtype == bool


def test_contains_does_not_modify_the_boxes() -> None:
    # given boxes, when tested, then they are unchanged
    xyxy = np.array([[10, 10, 30, 30]], np.float32)
    PolygonZone("z", SQUARE).contains(xyxy, Anchor.BOTTOM_CENTER)
    np.testing.assert_array_equal(xyxy, [[10, 10, 30, 30]])


def test_real_faces_in_a_left_half_zone(photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given the six real faces of t1.jpg and a zone covering the left half of the frame
    image = photo("t1.jpg")
    height, width = image.shape[:2]
    dets = engine.detect(image)
    zone = PolygonZone("left", ((0, 0), (width / 2, 0), (width / 2, height), (0, height)))
    # when membership is tested by face centre
    inside = zone.contains(dets.xyxy)
    # then exactly the faces whose centre is left of the middle are inside
    assert len(dets) == 6
    assert inside.tolist() == (dets.centers[:, 0] <= width / 2).tolist()
    assert 0 < inside.sum() < 6
