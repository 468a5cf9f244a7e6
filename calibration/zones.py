"""Polygon zones with an anchor point, as in supervision's PolygonZone."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationError
from calibration.polygons import crossing_message


class Anchor(Enum):
    CENTER = "center"
    BOTTOM_CENTER = "bottom_center"


@dataclass(frozen=True, slots=True)
class PolygonZone:
    """A simple polygon in image pixels: at least three vertices, non-zero area, edges that do not cross."""

    name: str
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.points) < 3:
            raise CalibrationError(f"zone '{self.name}' needs at least 3 points, got {len(self.points)}")
        arr = np.asarray(self.points, np.float32)
        if not np.isfinite(arr).all():
            raise CalibrationError(f"zone '{self.name}' has a non-finite coordinate")
        crossing = crossing_message(self.name, self.points)
        if crossing is not None:
            raise CalibrationError(crossing)
        if abs(cv2.contourArea(arr)) < 1.0:
            raise CalibrationError(f"zone '{self.name}' has zero area")

    def contains(self, xyxy: npt.NDArray[np.float32], anchor: Anchor = Anchor.CENTER) -> npt.NDArray[np.bool_]:
        """Whether each box's anchor point lies inside or on the polygon."""
        if xyxy.shape[0] == 0:
            return np.zeros((0,), bool)
        xs = (xyxy[:, 0] + xyxy[:, 2]) / 2
        ys = (xyxy[:, 1] + xyxy[:, 3]) / 2 if anchor is Anchor.CENTER else xyxy[:, 3]
        contour = np.asarray(self.points, np.float32).reshape(-1, 1, 2)
        return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0
                         for x, y in zip(xs, ys, strict=True)], bool)
