"""Image-to-floor homography: a 3x3 matrix from at least four image/floor point pairs, validated."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationError

Points = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FloorHomography:
    """Maps image pixels (the floor contact point of a person) to floor metres."""

    matrix: Points

    def __post_init__(self) -> None:
        if self.matrix.shape != (3, 3) or not np.isfinite(self.matrix).all():
            raise CalibrationError(f"a homography is a finite 3x3 matrix, got shape {self.matrix.shape}")
        if abs(float(np.linalg.det(self.matrix))) < 1e-12:
            raise CalibrationError("the homography is singular")

    @classmethod
    def from_points(cls, image_points: list[tuple[float, float]], floor_points: list[tuple[float, float]],
                    max_error_m: float = 0.25) -> FloorHomography:
        """Fit on the pairs; refuse < 4 pairs, non-finite or collinear points, or a fit worse than ``max_error_m``."""
        if len(image_points) != len(floor_points):
            raise CalibrationError(f"{len(image_points)} image points but {len(floor_points)} floor points")
        if len(image_points) < 4:
            raise CalibrationError(f"a floor homography needs at least 4 point pairs, got {len(image_points)}")
        src = np.asarray(image_points, np.float64).reshape(-1, 2)
        dst = np.asarray(floor_points, np.float64).reshape(-1, 2)
        if not (np.isfinite(src).all() and np.isfinite(dst).all()):
            raise CalibrationError("a calibration point is not finite")
        for name, pts in (("image", src), ("floor", dst)):
            if np.linalg.matrix_rank(np.c_[pts, np.ones(len(pts))], tol=1e-6 * max(1.0, float(np.abs(pts).max()))) < 3:
                raise CalibrationError(f"the {name} points are collinear or repeated")
        matrix, _ = cv2.findHomography(src, dst, 0)
        if matrix is None:
            raise CalibrationError("no homography fits these points")
        homography = cls(np.asarray(matrix, np.float64))
        error = float(np.linalg.norm(homography.to_floor(src) - dst, axis=1).max())
        if error > max_error_m:
            raise CalibrationError(f"the points do not fit one plane: worst reprojection error {error:.2f} m "
                                   f"exceeds {max_error_m} m")
        return homography

    def to_floor(self, points: npt.ArrayLike) -> Points:
        """(N, 2) image pixels to (N, 2) floor metres."""
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        if pts.shape[0] == 0:
            return np.zeros((0, 2), np.float64)
        out = cv2.perspectiveTransform(pts.reshape(-1, 1, 2), self.matrix).reshape(-1, 2)
        return np.asarray(out, np.float64)
