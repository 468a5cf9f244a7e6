"""Lens model: checkerboard calibration, undistortion maps, and a renderer for synthetic ground truth.

The rule: a lens is the pinhole intrinsics (fx, fy, cx, cy) plus OpenCV's five distortion
coefficients (k1, k2, p1, p2, k3), valid for one image size. It is found from at least three
views of a flat checkerboard tilted in different directions; views that cannot pin the focal
length down (all alike, or all facing the camera square on) are refused rather than fitted.
Undistortion maps are computed once per model and image size, then each frame costs one remap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationError

Array = npt.NDArray[Any]
Board = tuple[int, int]
Size = tuple[int, int]
Dist = tuple[float, float, float, float, float]

MIN_VIEWS = 3
# Boards whose planes all lie within this angle of each other cannot separate focal length from distance.
MIN_PLANE_SPREAD_DEG = 10.0
_SUBPIX = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 1e-3)


@dataclass(frozen=True, slots=True)
class LensModel:
    """Intrinsics and distortion of one camera at one image size (width, height)."""

    fx: float
    fy: float
    cx: float
    cy: float
    dist: Dist
    image_size: Size
    rms: float = 0.0
    per_image_rms: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        w, h = self.image_size
        if w <= 0 or h <= 0:
            raise CalibrationError(f"lens image size must be positive, got {w}x{h}")
        values = (self.fx, self.fy, self.cx, self.cy, *self.dist)
        if not np.isfinite(np.asarray(values, np.float64)).all():
            raise CalibrationError("a lens parameter is not finite")
        if self.fx <= 0 or self.fy <= 0:
            raise CalibrationError(f"focal lengths must be positive, got fx={self.fx} fy={self.fy}")
        if len(self.dist) != 5:
            raise CalibrationError(f"a lens has 5 distortion coefficients (k1 k2 p1 p2 k3), got {len(self.dist)}")
        if not (0 <= self.cx <= w and 0 <= self.cy <= h):
            raise CalibrationError(f"principal point ({self.cx:.1f}, {self.cy:.1f}) lies outside the {w}x{h} image")

    @property
    def camera_matrix(self) -> Array:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], np.float64)

    @property
    def dist_coeffs(self) -> Array:
        return np.asarray(self.dist, np.float64)

    def scaled(self, image_size: Size) -> LensModel:
        """The same lens at another resolution of the same aspect ratio (a sub-stream, say)."""
        w, h = self.image_size
        nw, nh = image_size
        if abs(nw / w - nh / h) > 0.01 * (nw / w):
            raise CalibrationError(f"cannot scale a {w}x{h} lens to {nw}x{nh}: the aspect ratio differs")
        sx, sy = nw / w, nh / h
        return replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
                       image_size=(int(nw), int(nh)))

    def to_config(self) -> dict[str, Any]:
        """The camera config's ``lens:`` section."""
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "dist": list(self.dist),
                "image_size": list(self.image_size), "rms": self.rms}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LensModel:
        """Read a ``lens:`` section (a dict, or anything with the same keys); a missing key is named."""
        missing = [k for k in ("fx", "fy", "cx", "cy", "dist", "image_size") if k not in config]
        if missing:
            raise CalibrationError(f"lens config lacks {', '.join(missing)}")
        try:
            dist = tuple(float(v) for v in config["dist"])
            w, h = (int(v) for v in config["image_size"])
            fx, fy, cx, cy = (float(config[k]) for k in ("fx", "fy", "cx", "cy"))
            rms = float(config.get("rms", 0.0) or 0.0)
        except (TypeError, ValueError) as exc:
            raise CalibrationError(f"lens config has a value that is not a number: {exc}") from exc
        if len(dist) != 5:
            raise CalibrationError(f"a lens has 5 distortion coefficients (k1 k2 p1 p2 k3), got {len(dist)}")
        return cls(fx=fx, fy=fy, cx=cx, cy=cy, dist=(dist[0], dist[1], dist[2], dist[3], dist[4]),
                   image_size=(w, h), rms=rms)


def board_points(board: Board = (9, 6), square_mm: float = 25.0) -> Array:
    """The inner corners on the board plane (z = 0) in millimetres, in findChessboardCorners' order."""
    cols, rows = board
    grid = np.mgrid[1:cols + 1, 1:rows + 1].T.reshape(-1, 2).astype(np.float32)
    points: Array = np.c_[grid * np.float32(square_mm), np.zeros(len(grid), np.float32)].astype(np.float32)
    return points


def _check_board(board: Board) -> None:
    cols, rows = board
    if cols < 3 or rows < 3 or cols == rows:
        raise CalibrationError(f"board {cols}x{rows}: give the inner corners per row and per column, at least 3 "
                               "each and different (9x6, say), so that the board's orientation is unambiguous")


def find_board(image_bgr: Array, board: Board = (9, 6)) -> npt.NDArray[np.float32] | None:
    """The board's inner corners refined to sub-pixel, (N, 2) float32 row by row; None when not found."""
    _check_board(board)
    gray = image_bgr if image_bgr.ndim == 2 else cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    # FAST_CHECK rejects a picture without a board in milliseconds instead of searching it for seconds
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
    found, corners = cv2.findChessboardCorners(gray, board, None, flags)
    if not found or corners is None:
        return None
    refined = cv2.cornerSubPix(gray, corners.astype(np.float32), (5, 5), (-1, -1), _SUBPIX)
    return np.asarray(refined, np.float32).reshape(-1, 2)


def _check_views(corners_per_image: list[Array], board: Board, image_size: Size) -> list[Array]:
    need = board[0] * board[1]
    w, h = image_size
    views: list[Array] = []
    for i, corners in enumerate(corners_per_image, start=1):
        pts = np.asarray(corners, np.float32).reshape(-1, 2)
        if len(pts) != need:
            raise CalibrationError(f"image {i} has {len(pts)} corners; a {board[0]}x{board[1]} board has {need}")
        if not np.isfinite(pts).all():
            raise CalibrationError(f"image {i} has a corner that is not finite")
        if (pts < 0).any() or (pts[:, 0] > w).any() or (pts[:, 1] > h).any():
            raise CalibrationError(f"image {i} has corners outside the {w}x{h} image: the snapshots' sizes do not "
                                   "match")
        views.append(pts)
    if len(views) < MIN_VIEWS:
        raise CalibrationError(f"lens calibration needs at least {MIN_VIEWS} images with the whole board found, "
                               f"got {len(views)}")
    return views


def _refuse_alike(views: list[Array], image_size: Size) -> None:
    """Views that are (nearly) the same pose say nothing about the focal length."""
    span = 0.01 * max(image_size)
    distinct = [views[0]]
    for pts in views[1:]:
        if all(float(np.abs(pts - d).max()) > span for d in distinct):
            distinct.append(pts)
    if len(distinct) < MIN_VIEWS:
        raise CalibrationError(f"degenerate views: only {len(distinct)} of {len(views)} images show the board in a "
                               "different place; move and tilt the board between snapshots")


def _plane_spread_deg(rvecs: Any) -> float:
    """The largest angle between the board planes of any two views (planes, so 0..90 degrees)."""
    normals = np.array([cv2.Rodrigues(np.asarray(r, np.float64))[0][:, 2] for r in rvecs])
    cos = np.clip(np.abs(normals @ normals.T), 0.0, 1.0)
    return float(np.degrees(np.arccos(cos.min())))


def calibrate_lens(corners_per_image: list[Array], board: Board = (9, 6), square_mm: float = 25.0,
                   image_size: Size | None = None, fix_k3: bool = True) -> LensModel:
    """Fit intrinsics and distortion to the corners of at least three views (OpenCV's calibrateCamera).

    ``fix_k3`` keeps k3 at zero, which is steadier for ordinary lenses; wide-angle lenses may free it.
    """
    _check_board(board)
    if image_size is None:
        raise CalibrationError("lens calibration needs the snapshots' image size (width, height)")
    if square_mm <= 0 or not np.isfinite(square_mm):
        raise CalibrationError(f"the square size must be a positive number of millimetres, got {square_mm}")
    size = (int(image_size[0]), int(image_size[1]))
    views = _check_views(corners_per_image, board, size)
    _refuse_alike(views, size)
    objp = board_points(board, square_mm)
    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    try:
        rms, k, dist, rvecs, _, _, _, per_view = cv2.calibrateCameraExtended(
            [objp] * len(views), [v.reshape(-1, 1, 2) for v in views], size,
            np.eye(3), np.zeros(5), flags=flags)
    except cv2.error as exc:
        raise CalibrationError(f"degenerate views: OpenCV could not calibrate ({exc.err})") from exc
    spread = _plane_spread_deg(rvecs)
    if spread < MIN_PLANE_SPREAD_DEG:
        raise CalibrationError(f"degenerate views: the board's plane turns by only {spread:.1f} degrees across the "
                               f"images (at least {MIN_PLANE_SPREAD_DEG:.0f} needed); tilt it towards different sides")
    fx, fy = float(k[0, 0]), float(k[1, 1])
    d = np.asarray(dist, np.float64).ravel()[:5]
    try:
        return LensModel(fx=fx, fy=fy, cx=float(k[0, 2]), cy=float(k[1, 2]),
                         dist=(float(d[0]), float(d[1]), float(d[2]), float(d[3]), float(d[4])),
                         image_size=size, rms=float(rms),
                         per_image_rms=tuple(float(v) for v in np.asarray(per_view).ravel()))
    except CalibrationError as exc:
        raise CalibrationError(f"degenerate views: the fit is not a usable lens ({exc})") from exc


@dataclass(frozen=True, slots=True, eq=False)
class UndistortMaps:
    """Precomputed remap tables for one lens at one image size; ``apply`` costs one remap per frame."""

    model: LensModel
    new_camera_matrix: Array
    map1: Array
    map2: Array

    @property
    def image_size(self) -> Size:
        return self.model.image_size

    def apply(self, image: Array, nearest: bool = False) -> Array:
        """The undistorted image, same size; a frame of another size is refused, never stretched.

        ``nearest`` takes the nearest source pixel instead of blending four: about half the cost, with
        up to half a pixel of jitter along edges."""
        h, w = image.shape[:2]
        if (w, h) != self.image_size:
            raise CalibrationError(f"frame is {w}x{h} but the undistortion maps are for "
                                   f"{self.image_size[0]}x{self.image_size[1]}")
        if nearest:
            no_fraction = np.empty((0, 0), np.uint16)  # the whole-pixel table alone
            return np.asarray(cv2.remap(image, self.map1, no_fraction, cv2.INTER_NEAREST,
                                        borderMode=cv2.BORDER_CONSTANT))
        return np.asarray(cv2.remap(image, self.map1, self.map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))

    def undistort_points(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(N, 2) pixels of the raw image to where they land in the undistorted image."""
        pts = np.asarray(points, np.float64).reshape(-1, 1, 2)
        if len(pts) == 0:
            return np.zeros((0, 2), np.float64)
        out = cv2.undistortPointsIter(pts, self.model.camera_matrix, self.model.dist_coeffs, np.eye(3),
                                      self.new_camera_matrix,
                                      (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-9))
        return np.asarray(out, np.float64).reshape(-1, 2)


def undistort_maps(model: LensModel, alpha: float = 0.0) -> UndistortMaps:
    """Remap tables for ``model``; ``alpha`` 0 crops to valid pixels only, 1 keeps every source pixel."""
    if not 0.0 <= alpha <= 1.0:
        raise CalibrationError(f"alpha must lie in [0, 1], got {alpha}")
    k, d, size = model.camera_matrix, model.dist_coeffs, model.image_size
    new_k, _ = cv2.getOptimalNewCameraMatrix(k, d, size, alpha, size)
    map1, map2 = cv2.initUndistortRectifyMap(k, d, None, new_k, size, cv2.CV_16SC2)
    return UndistortMaps(model=model, new_camera_matrix=np.asarray(new_k, np.float64), map1=map1, map2=map2)


def synthetic_poses(model: LensModel, count: int, board: Board = (9, 6), square_mm: float = 25.0,
                    seed: int = 0) -> list[tuple[Array, Array]]:
    """``count`` board poses (rvec, tvec in mm) tilted in varied directions, the whole board inside the image."""
    rng = np.random.default_rng(seed)
    objp = board_points(board, square_mm)
    centre = objp.mean(axis=0)
    width_mm = (board[0] + 1) * square_mm
    w, h = model.image_size
    poses: list[tuple[Array, Array]] = []
    while len(poses) < count:
        angles = np.radians(rng.uniform(-35, 35, 3) * np.array([1.0, 1.0, 0.4]))
        rvec = angles.reshape(3, 1)
        rot, _ = cv2.Rodrigues(rvec)
        depth = model.fx * width_mm / (w * rng.uniform(0.45, 0.75))  # the board spans 45-75 % of the width
        target = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h])
        ray = np.array([(target[0] - model.cx) / model.fx, (target[1] - model.cy) / model.fy, 1.0])
        tvec = (ray * depth - rot @ centre).reshape(3, 1)
        pts, _ = cv2.projectPoints(objp, rvec, tvec, model.camera_matrix, model.dist_coeffs)
        pts = pts.reshape(-1, 2)
        margin = 0.04 * w
        if (pts.min(axis=0) > margin).all() and (pts[:, 0] < w - margin).all() and (pts[:, 1] < h - margin).all():
            poses.append((rvec, tvec))
    return poses


def render_checkerboard(model: LensModel, rvec: Array, tvec: Array, board: Board = (9, 6),
                        square_mm: float = 25.0, seed: int = 0,
                        noise: float = 2.0) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """A BGR image of the board seen through ``model`` at pose (rvec, tvec), and its true inner corners (N, 2).

    Every pixel is traced back through the distortion to the board plane (anti-aliased edges, a white
    border one square wide, grey surroundings), then blurred slightly and given sensor noise.
    """
    _check_board(board)
    w, h = model.image_size
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pix = np.stack([xs.ravel(), ys.ravel()], axis=1).reshape(-1, 1, 2)
    norm = np.asarray(cv2.undistortPointsIter(pix, model.camera_matrix, model.dist_coeffs, np.eye(3), np.eye(3),
                                              (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 1e-10)))
    norm = norm.reshape(-1, 2)
    rot, _ = cv2.Rodrigues(np.asarray(rvec, np.float64))
    plane = np.c_[rot[:, 0], rot[:, 1], np.asarray(tvec, np.float64).ravel()]  # board (u, v, 1) -> camera ray
    ray = np.linalg.solve(plane, np.c_[norm, np.ones(len(norm))].T).T
    front = ray[:, 2] > 1e-12
    u = np.where(front, ray[:, 0] / np.where(front, ray[:, 2], 1.0), -1e9).reshape(h, w)
    v = np.where(front, ray[:, 1] / np.where(front, ray[:, 2], 1.0), -1e9).reshape(h, w)
    # Soft square waves: each crosses zero on a grid line, saturating within about half a pixel.
    foot_u = np.hypot(*np.gradient(u)) + 1e-9
    foot_v = np.hypot(*np.gradient(v)) + 1e-9
    su = np.clip(np.sin(np.pi * u / square_mm) * square_mm / np.pi / foot_u, -1.0, 1.0)
    sv = np.clip(np.sin(np.pi * v / square_mm) * square_mm / np.pi / foot_v, -1.0, 1.0)
    checker = 0.5 + 0.5 * su * sv
    cols, rows = board
    inside = (u >= 0) & (u <= (cols + 1) * square_mm) & (v >= 0) & (v <= (rows + 1) * square_mm)
    on_card = (u >= -square_mm) & (u <= (cols + 2) * square_mm) & (v >= -square_mm) & (v <= (rows + 2) * square_mm)
    level = np.where(inside, 25.0 + 205.0 * checker, np.where(on_card, 230.0, 110.0))
    level = cv2.GaussianBlur(level.astype(np.float32), (0, 0), 0.7)
    rng = np.random.default_rng(seed)
    level = level + rng.normal(0.0, noise, level.shape).astype(np.float32)
    gray = np.clip(np.rint(level), 0, 255).astype(np.uint8)
    corners, _ = cv2.projectPoints(board_points(board, square_mm), np.asarray(rvec, np.float64),
                                   np.asarray(tvec, np.float64), model.camera_matrix, model.dist_coeffs)
    return np.asarray(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), np.uint8), corners.reshape(-1, 2).astype(np.float32)
