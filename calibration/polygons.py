"""Polygon operations for drawing zones: area, self-crossing, snapping, clipping to the image, floor projection.

The rule: a zone is a simple polygon in image pixels - its edges meet only at shared vertices, so
"inside" means one thing. Edges are numbered from 1 in messages: edge k runs from point k to point
k + 1 (the last one closes back to point 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

Point = tuple[float, float]


def polygon_area(points: Sequence[Point]) -> float:
    """Signed area (shoelace): positive when the vertices run clockwise on screen (y down), negative otherwise."""
    n = len(points)
    return 0.5 * sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
                     for i in range(n))


def _orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether segment ab meets segment cd (touching counts)."""
    d1, d2, d3, d4 = _orient(c, d, a), _orient(c, d, b), _orient(a, b, c), _orient(a, b, d)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4):
        return True
    return ((d1 == 0 and _on_segment(c, d, a)) or (d2 == 0 and _on_segment(c, d, b))
            or (d3 == 0 and _on_segment(a, b, c)) or (d4 == 0 and _on_segment(a, b, d)))


def crossing_edges(points: Sequence[Point]) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges (0-based) that meet, or None for a simple polygon.

    Zero-length edges (a point repeated) are left to the area check."""
    n = len(points)
    if n < 4:
        return None
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:  # the closing edge is adjacent to the first
                continue
            if points[i] == points[(i + 1) % n] or points[j] == points[(j + 1) % n]:
                continue
            if segments_cross(points[i], points[(i + 1) % n], points[j], points[(j + 1) % n]):
                return i, j
    return None


def crossing_message(name: str, points: Sequence[Point]) -> str | None:
    """The reason a polygon is not simple, or None when it is."""
    pair = crossing_edges(points)
    if pair is None:
        return None
    n = len(points)
    i, j = pair
    return (f"zone '{name}' crosses itself: edge {i + 1} (point {i + 1} to {(i + 1) % n + 1}) meets edge {j + 1} "
            f"(point {j + 1} to {(j + 1) % n + 1}); move the points so the outline does not cross")


def snap_point(point: Point, targets: Sequence[Point], radius: float, grid: float | None = None) -> Point:
    """The nearest target within ``radius`` (another zone's vertex, say); else the point on a ``grid``, if given."""
    best: Point | None = None
    best_d = radius
    for t in targets:
        d = math.hypot(t[0] - point[0], t[1] - point[1])
        if d <= best_d:
            best, best_d = (float(t[0]), float(t[1])), d
    if best is not None:
        return best
    if grid:
        return (round(point[0] / grid) * grid, round(point[1] / grid) * grid)
    return (float(point[0]), float(point[1]))


def clip_to_image(points: Sequence[Point], image_size: tuple[int, int]) -> list[Point]:
    """The part of a polygon inside the image (Sutherland-Hodgman against the four borders); [] when none is."""
    w, h = image_size
    out = [(float(x), float(y)) for x, y in points]
    borders = ((0, 0.0, True), (0, float(w), False), (1, 0.0, True), (1, float(h), False))
    for axis, limit, keep_above in borders:
        if not out:
            break
        src, out = out, []
        for k, cur in enumerate(src):
            prev = src[k - 1]
            cur_in = cur[axis] >= limit if keep_above else cur[axis] <= limit
            prev_in = prev[axis] >= limit if keep_above else prev[axis] <= limit
            if cur_in != prev_in:
                s = (limit - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + s * (cur[0] - prev[0]), prev[1] + s * (cur[1] - prev[1])))
            if cur_in:
                out.append(cur)
    return out if len(out) >= 3 and abs(polygon_area(out)) > 0 else []


def project_polygon(points: Sequence[Point], image_to_floor: npt.ArrayLike) -> list[Point]:
    """Image-pixel vertices to floor metres through a 3x3 homography (for the top-down preview)."""
    if not points:
        return []
    pts = np.asarray(points, np.float64).reshape(-1, 1, 2)
    out = cv2.perspectiveTransform(pts, np.asarray(image_to_floor, np.float64)).reshape(-1, 2)
    return [(float(x), float(y)) for x, y in out]
