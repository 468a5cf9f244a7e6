"""Image-to-floor homography: a 3x3 matrix from at least four image/floor point pairs, validated.

The rule: a floor calibration needs four points, no three of them on one line, on both the image
side and the floor side. Sets that cannot give one (fewer than four pairs, a point clicked twice,
points along one line) are refused with a reason that names the points by their 1-based number.
With more than four pairs, RANSAC sets a mis-clicked point aside; every point's error is reported
in floor metres and in image pixels so that the bad one can be found and fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationError

Points = npt.NDArray[np.float64]

# Two clicks closer than this are the same point.
DUPLICATE_PX = 1.0
DUPLICATE_M = 0.01
# A point nearer than this share of the set's extent to the line through two others is on that line.
COLLINEAR_SHARE = 0.01
RANSAC_THRESHOLD_M = 0.15


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
        """Fit on all the pairs; refuse what fit_floor_homography refuses, or a fit worse than ``max_error_m``."""
        fit = fit_floor_homography(image_points, floor_points, ransac=False)
        error = max(fit.per_point_error_m)
        if error > max_error_m:
            raise CalibrationError(f"the points do not fit one plane: worst reprojection error {error:.2f} m "
                                   f"(point {fit.per_point_error_m.index(error) + 1}) exceeds {max_error_m} m")
        return fit.homography

    def to_floor(self, points: npt.ArrayLike) -> Points:
        """(N, 2) image pixels to (N, 2) floor metres."""
        return _transform(self.matrix, points)

    def to_image(self, points: npt.ArrayLike) -> Points:
        """(N, 2) floor metres to (N, 2) image pixels."""
        return _transform(np.asarray(np.linalg.inv(self.matrix), np.float64), points)


@dataclass(frozen=True, slots=True, eq=False)
class FloorFit:
    """A fitted image-to-floor matrix with each point's error and whether RANSAC kept it."""

    matrix: Points
    per_point_error_m: tuple[float, ...]
    per_point_error_px: tuple[float, ...]
    inliers: tuple[bool, ...]
    rms_m: float
    rms_px: float

    @property
    def homography(self) -> FloorHomography:
        return FloorHomography(self.matrix)

    @property
    def outlier_numbers(self) -> tuple[int, ...]:
        """1-based numbers of the points RANSAC set aside."""
        return tuple(i + 1 for i, kept in enumerate(self.inliers) if not kept)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the matrix as nested lists and the per-point lists."""
        return {"matrix": self.matrix.tolist(), "per_point_error_m": list(self.per_point_error_m),
                "per_point_error_px": list(self.per_point_error_px), "inliers": list(self.inliers),
                "rms_m": self.rms_m, "rms_px": self.rms_px}


def _transform(matrix: Points, points: npt.ArrayLike) -> Points:
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if pts.shape[0] == 0:
        return np.zeros((0, 2), np.float64)
    out = cv2.perspectiveTransform(pts.reshape(-1, 1, 2), matrix).reshape(-1, 2)
    return np.asarray(out, np.float64)


def _numbers(indices: list[int] | tuple[int, ...]) -> str:
    return ", ".join(str(i + 1) for i in indices)


def _line_distance(pts: Points, i: int, j: int) -> npt.NDArray[np.float64]:
    """Distance of every point from the line through points i and j."""
    direction = pts[j] - pts[i]
    rel = pts - pts[i]
    cross = np.abs(direction[0] * rel[:, 1] - direction[1] * rel[:, 0])
    return np.asarray(cross / np.linalg.norm(direction), np.float64)


def _general_four_exists(pts: Points, tol: float) -> bool:
    n = len(pts)
    on_line = {(i, j): _line_distance(pts, i, j) <= tol for i, j in combinations(range(n), 2)}
    return any(not any(on_line[a, b][c] for a, b, c in combinations(quad, 3))
               for quad in combinations(range(n), 4))


def _refuse_degenerate(pts: Points, side: str, duplicate: float) -> None:
    n = len(pts)
    for i, j in combinations(range(n), 2):
        if float(np.linalg.norm(pts[i] - pts[j])) < duplicate:
            raise CalibrationError(f"points {i + 1} and {j + 1} are the same {side} point "
                                   f"({pts[i][0]:g}, {pts[i][1]:g}); each point must be a different place")
    extent = max(float(np.linalg.norm(pts[i] - pts[j])) for i, j in combinations(range(n), 2))
    tol = COLLINEAR_SHARE * extent
    if _general_four_exists(pts, tol):
        return
    best: list[int] = []
    for i, j in combinations(range(n), 2):
        group = [int(k) for k in np.flatnonzero(_line_distance(pts, i, j) <= tol)]
        if len(group) > len(best):
            best = group
    raise CalibrationError(f"{side} points {_numbers(best)} lie on one line (collinear): a floor calibration "
                           "needs at least 4 points with no three on one line; spread them over the floor")


def _as_points(points: list[tuple[float, float]] | npt.ArrayLike, side: str) -> Points:
    pts = np.asarray(points, np.float64)
    if pts.size == 0:
        return np.zeros((0, 2), np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise CalibrationError(f"{side} points must be (x, y) pairs, got an array of shape {pts.shape}")
    bad = np.flatnonzero(~np.isfinite(pts).all(axis=1))
    if len(bad):
        raise CalibrationError(f"{side} point {bad[0] + 1} is not finite")
    return pts


def fit_floor_homography(image_pts: list[tuple[float, float]] | npt.ArrayLike,
                         floor_pts: list[tuple[float, float]] | npt.ArrayLike, ransac: bool = True,
                         ransac_threshold_m: float = RANSAC_THRESHOLD_M) -> FloorFit:
    """Fit image pixels -> floor metres; RANSAC (with five or more pairs) sets mis-clicked points aside."""
    src = _as_points(image_pts, "image")
    dst = _as_points(floor_pts, "floor")
    if len(src) != len(dst):
        raise CalibrationError(f"{len(src)} image points but {len(dst)} floor points; give one floor point per "
                               "image point")
    if len(src) < 4:
        raise CalibrationError(f"a floor homography needs at least 4 point pairs, got {len(src)}")
    _refuse_degenerate(src, "image", DUPLICATE_PX)
    _refuse_degenerate(dst, "floor", DUPLICATE_M)
    use_ransac = ransac and len(src) > 4
    matrix, mask = cv2.findHomography(src, dst, cv2.RANSAC if use_ransac else 0, ransac_threshold_m)
    if matrix is None:
        raise CalibrationError("no homography fits these points")
    kept = np.ones(len(src), bool) if mask is None or not use_ransac else mask.ravel().astype(bool)
    if kept.sum() < 4:
        raise CalibrationError(f"only {int(kept.sum())} points agree on one floor plane; at least 4 are needed")
    if use_ransac and not kept.all():  # refit on the agreeing points alone
        matrix, _ = cv2.findHomography(src[kept], dst[kept], 0)
        if matrix is None:
            raise CalibrationError("no homography fits the agreeing points")
    h = np.asarray(matrix, np.float64)
    if abs(float(np.linalg.det(h))) < 1e-12:
        raise CalibrationError("the points give a singular homography")
    err_m = np.linalg.norm(_transform(h, src) - dst, axis=1)
    err_px = np.linalg.norm(_transform(np.asarray(np.linalg.inv(h), np.float64), dst) - src, axis=1)
    return FloorFit(matrix=h, per_point_error_m=tuple(float(e) for e in err_m),
                    per_point_error_px=tuple(float(e) for e in err_px),
                    inliers=tuple(bool(k) for k in kept),
                    rms_m=float(np.sqrt((err_m[kept] ** 2).mean())),
                    rms_px=float(np.sqrt((err_px[kept] ** 2).mean())))
