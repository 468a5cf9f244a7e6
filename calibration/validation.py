"""Validation of a camera's geometry against the picture it belongs to.

The rule: every zone vertex and every floor mark lies inside the image it was drawn on (borders
included), and every zone is a simple polygon with an area. Each refusal names the zone or mark, the
point by its 1-based number, its coordinates and the image size.
"""

from __future__ import annotations

from collections.abc import Sequence

from calibration.errors import CalibrationError
from calibration.polygons import Point
from calibration.zones import PolygonZone


def check_inside_image(what: str, points: Sequence[Point], image_size: tuple[int, int]) -> None:
    """Refuse the first point outside the ``image_size`` (width, height) picture."""
    w, h = image_size
    for i, (x, y) in enumerate(points, start=1):
        if not (0 <= x <= w and 0 <= y <= h):
            raise CalibrationError(f"{what} {i} ({x:g}, {y:g}) lies outside the {w}x{h} image")


def check_zone(name: str, points: Sequence[Point], image_size: tuple[int, int]) -> PolygonZone:
    """The zone as a PolygonZone, once it is a simple polygon inside the picture."""
    zone = PolygonZone(name, tuple((float(x), float(y)) for x, y in points))
    check_inside_image(f"zone '{name}' point", points, image_size)
    return zone
