"""ROC (verification) and DET (open-set identification) curves drawn with OpenCV into one image.

Left: TAR against FAR, FAR on a log axis. Right: FNIR against FPIR, both on log axes. One colour per
set or group; dashed lines mark the 1e-2 and 1e-3 operating targets. Labels are ASCII (OpenCV's
Hershey fonts have no CJK glyphs).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import EvalDataError

logger = logging.getLogger(__name__)

WIDTH, HEIGHT = 1400, 660
PANEL_W, PANEL_H = 560, 480
LEFT_X0, RIGHT_X0, Y0 = 100, 790, 90
X_DECADES = (-4, 0)  # 1e-4 .. 1
DET_Y_DECADES = (-3, 0)  # 1e-3 .. 1
COLOURS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140),
           (194, 119, 227), (127, 127, 127)]
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True, slots=True)
class Curve:
    name: str
    far: Sequence[float]
    tar: Sequence[float]
    fpir: Sequence[float]
    fnir: Sequence[float]


def _log_x(value: float, x0: int) -> int:
    lo, hi = X_DECADES
    v = min(max(math.log10(max(value, 10.0**lo)), lo), hi)
    return round(x0 + (v - lo) / (hi - lo) * PANEL_W)


def _lin_y(value: float) -> int:
    return round(Y0 + PANEL_H - min(max(value, 0.0), 1.0) * PANEL_H)


def _log_y(value: float) -> int:
    lo, hi = DET_Y_DECADES
    v = min(max(math.log10(max(value, 10.0**lo)), lo), hi)
    return round(Y0 + PANEL_H - (v - lo) / (hi - lo) * PANEL_H)


def _text(image: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5,
          colour: tuple[int, int, int] = (0, 0, 0), thickness: int = 1) -> None:
    safe = text.encode("ascii", "replace").decode("ascii")
    cv2.putText(image, safe, org, FONT, scale, colour, thickness, cv2.LINE_AA)


def _dashed_vline(image: np.ndarray, x: int, colour: tuple[int, int, int]) -> None:
    for y in range(Y0, Y0 + PANEL_H, 12):
        cv2.line(image, (x, y), (x, min(y + 6, Y0 + PANEL_H)), colour, 1, cv2.LINE_AA)


def _axes(image: np.ndarray, x0: int, title: str, xlabel: str, ylabel: str, log_y: bool) -> None:
    cv2.rectangle(image, (x0, Y0), (x0 + PANEL_W, Y0 + PANEL_H), (0, 0, 0), 1)
    for d in range(X_DECADES[0], X_DECADES[1] + 1):
        x = _log_x(10.0**d, x0)
        cv2.line(image, (x, Y0), (x, Y0 + PANEL_H), (225, 225, 225), 1)
        _text(image, f"1e{d}" if d else "1", (x - 16, Y0 + PANEL_H + 20), 0.45)
    if log_y:
        ticks = [(10.0**d, f"1e{d}" if d else "1") for d in range(DET_Y_DECADES[0], DET_Y_DECADES[1] + 1)]
    else:
        ticks = [(v / 10, f"{v / 10:.1f}") for v in range(0, 11, 2)]
    for value, label in ticks:
        y = _log_y(value) if log_y else _lin_y(value)
        cv2.line(image, (x0, y), (x0 + PANEL_W, y), (225, 225, 225), 1)
        _text(image, label, (x0 - 48, y + 5), 0.45)
    for target in (1e-2, 1e-3):
        _dashed_vline(image, _log_x(target, x0), (150, 150, 150))
    cv2.rectangle(image, (x0, Y0), (x0 + PANEL_W, Y0 + PANEL_H), (0, 0, 0), 1)
    _text(image, title, (x0, Y0 - 20), 0.65, thickness=2)
    _text(image, xlabel, (x0 + PANEL_W // 2 - 40, Y0 + PANEL_H + 45), 0.55)
    _text(image, ylabel, (x0 - 90, Y0 - 5), 0.5)


def _polyline(image: np.ndarray, points: list[tuple[int, int]], colour: tuple[int, int, int]) -> None:
    if len(points) >= 2:
        cv2.polylines(image, [np.asarray(points, np.int32).reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)


def render(curves: Sequence[Curve], title: str) -> np.ndarray:
    image = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    _axes(image, LEFT_X0, "ROC (verification pairs)", "FAR", "TAR", log_y=False)
    _axes(image, RIGHT_X0, "DET (open-set identification)", "FPIR", "FNIR", log_y=True)
    _text(image, title, (LEFT_X0, 30), 0.6)
    for i, curve in enumerate(curves):
        colour = COLOURS[i % len(COLOURS)]
        roc = [(_log_x(f, LEFT_X0), _lin_y(t)) for f, t in zip(curve.far, curve.tar, strict=False)
               if math.isfinite(f) and math.isfinite(t) and f > 0]
        det = [(_log_x(f, RIGHT_X0), _log_y(n)) for f, n in zip(curve.fpir, curve.fnir, strict=False)
               if math.isfinite(f) and math.isfinite(n) and f > 0]
        _polyline(image, roc, colour)
        _polyline(image, det, colour)
        y = Y0 + PANEL_H + 75 + 22 * (i // 5)
        x = LEFT_X0 + 260 * (i % 5)
        cv2.line(image, (x, y - 5), (x + 30, y - 5), colour, 3)
        _text(image, curve.name[:28], (x + 36, y), 0.5)
    return image


def write_plot(path: Path, curves: Sequence[Curve], title: str) -> None:
    """Render and write ``path`` (PNG, or any format OpenCV encodes by its extension)."""
    image = render(curves, title)
    try:
        ok, buffer = cv2.imencode(path.suffix or ".png", image)
    except cv2.error:
        ok = False
    if not ok:
        raise EvalDataError(f"{path}: cannot encode a plot with extension {path.suffix!r}; use .png")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.tobytes())
    except OSError as exc:
        raise EvalDataError(f"{path}: cannot write the plot: {exc}") from exc
    logger.info("wrote %s", path)
