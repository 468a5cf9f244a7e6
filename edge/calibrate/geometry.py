"""What the floor and lens tabs compute on request: a floor fit with each point's error and the camera's zones
projected onto the floor (for the top-down preview), and a lens calibration from uploaded checkerboard
snapshots with an undistorted preview. Bad input raises :class:`CalibrationError` with the reason."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from calibration.errors import CalibrationError
from calibration.homography import fit_floor_homography
from calibration.lens import LensModel, calibrate_lens, find_board, undistort_maps
from edge.cameras.config import CameraConfig
from vision.errors import BadImageError
from vision.imageio import decode_image

Point = tuple[float, float]
PREVIEW_WIDTH = 640


@dataclass(frozen=True, slots=True)
class FloorZone:
    kind: str  # face_zone | staff_zone | waiting | counter | plate_entry
    name: str
    points_m: list[Point]


def camera_zones(camera: CameraConfig) -> list[tuple[str, str, list[Point]]]:
    """Every zone of ``camera`` as (kind, name, image points)."""
    zones: list[tuple[str, str, list[Point]]] = []
    if camera.zone:
        zones.append(("plate_entry" if camera.role == "parking" else "face_zone", "zone", list(camera.zone)))
    counter = camera.counter
    if counter is not None:
        if counter.staff_zone:
            zones.append(("staff_zone", "staff_zone", list(counter.staff_zone)))
        zones += [("waiting", z.name, list(z.points)) for z in counter.waiting_zones]
        zones += [("counter", z.name, list(z.points)) for z in counter.counter_zones]
    return zones


def fit_floor(image_points: list[Point], floor_points: list[Point], camera: CameraConfig | None) -> dict[str, Any]:
    """The fit (matrix, per-point errors in metres and pixels, RANSAC inliers, RMS) and the zones on the floor."""
    fit = fit_floor_homography(image_points, floor_points)
    homography = fit.homography
    zones = [FloorZone(kind, name, [(float(x), float(y)) for x, y in homography.to_floor(points)])
             for kind, name, points in (camera_zones(camera) if camera is not None else [])]
    return {**fit.as_dict(), "zones": [{"kind": z.kind, "name": z.name, "points_m": z.points_m} for z in zones]}


def parse_board(text: str) -> tuple[int, int]:
    """``9x6`` (inner corners across x down) as a tuple; anything else is refused with the reason."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        cols, rows = (int(p) for p in parts)
    except ValueError:
        raise CalibrationError(f"the board size must look like 9x6 (inner corners), got {text!r}") from None
    if not (2 <= cols <= 40 and 2 <= rows <= 40):
        raise CalibrationError(f"the board size must be between 2x2 and 40x40 inner corners, got {text!r}")
    return cols, rows


def jpeg_b64(image: np.ndarray[Any, Any], width: int = PREVIEW_WIDTH) -> str:
    if image.shape[1] > width:
        image = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])),
                           interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise CalibrationError("the preview could not be encoded")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def calibrate_from_snapshots(snapshots: list[bytes], board: tuple[int, int], square_mm: float) -> dict[str, Any]:
    """Find the board in each snapshot, calibrate, and undistort the first usable one for the preview."""
    if not snapshots:
        raise CalibrationError("no snapshots were sent")
    images = []
    for n, data in enumerate(snapshots, 1):
        try:
            images.append(decode_image(data))
        except BadImageError as exc:
            raise CalibrationError(f"snapshot {n} is not an image: {exc}") from exc
    sizes = {(img.shape[1], img.shape[0]) for img in images}
    if len(sizes) > 1:
        raise CalibrationError(f"the snapshots have different sizes: {sorted(sizes)}; take them from one camera")
    size = sizes.pop()
    corners = [find_board(img, board) for img in images]
    found = [c is not None for c in corners]
    usable = [c for c in corners if c is not None]
    if len(usable) < 3:
        raise CalibrationError(f"the {board[0]}x{board[1]} board was found in {len(usable)} of {len(images)} "
                               "snapshots; at least 3 are needed (hold it flat, whole and tilted differently)")
    model: LensModel = calibrate_lens(usable, board=board, square_mm=square_mm, image_size=size)
    first = images[found.index(True)]
    preview = undistort_maps(model).apply(first)
    return {"found": found, "lens": model.to_config(), "rms": model.rms,
            "per_image_rms": list(model.per_image_rms), "image_size": list(size),
            "original_jpeg": jpeg_b64(first), "undistorted_jpeg": jpeg_b64(preview)}
