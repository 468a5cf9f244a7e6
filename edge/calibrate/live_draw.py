"""Drawing the live preview: a camera's zones, what its pipeline found, and the faces with their sizes.

Everything here draws on a copy of the frame, never on the frame the pipeline holds, and runs in the
thread of the request that asked (never in the camera's worker). Colours are fixed per role so that a
branch IT engineer reads the picture the same way on every camera: staff blue, customer green, VIP
gold, zones by kind (waiting orange, counter magenta, staff area blue, face/entry ROI white).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.cameras.config import CameraConfig
from edge.cameras.tap import Overlay, OverlayBox
from vision.types import Image

BGR = tuple[int, int, int]
ROLE_COLOURS: dict[str, BGR] = {"staff": (255, 120, 0), "customer": (0, 200, 0), "vip": (0, 200, 255),
                                "identified": (0, 200, 255), "face": (255, 255, 255)}
ZONE_COLOURS: dict[str, BGR] = {"roi": (230, 230, 230), "staff": (255, 120, 0), "waiting": (0, 140, 255),
                                "counter": (200, 0, 200)}
LINK_COLOUR: BGR = (0, 0, 255)
SMALL_FACE_COLOUR: BGR = (0, 0, 255)
JPEG_QUALITY = 80


@dataclass(frozen=True, slots=True)
class DrawnZone:
    """One polygon of a camera's config: its kind (roi, staff, waiting, counter) and name."""

    kind: str
    name: str
    points: tuple[tuple[float, float], ...]


def camera_zones(camera: CameraConfig) -> list[DrawnZone]:
    """Every zone a camera's config holds, in drawing order."""
    zones: list[DrawnZone] = []
    if camera.zone:
        zones.append(DrawnZone("roi", "entry" if camera.role == "parking" else "ROI", tuple(camera.zone)))
    counter = camera.counter
    if counter is not None:
        if counter.staff_zone:
            zones.append(DrawnZone("staff", "staff", tuple(counter.staff_zone)))
        zones.extend(DrawnZone("waiting", z.name, tuple(z.points)) for z in counter.waiting_zones)
        zones.extend(DrawnZone("counter", z.name, tuple(z.points)) for z in counter.counter_zones)
    return zones


def _label(image: Image, text: str, at: tuple[int, int], colour: BGR) -> None:
    """ASCII text on a dark band (OpenCV's fonts have no CJK glyphs: names are drawn by the page, not here)."""
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    x, y = max(0, at[0]), max(h + base, at[1])
    cv2.rectangle(image, (x, y - h - base), (x + w + 4, y + 2), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 2, y - base + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)


def draw_zones(image: Image, zones: Sequence[DrawnZone]) -> None:
    for zone in zones:
        colour = ZONE_COLOURS.get(zone.kind, (200, 200, 200))
        pts = np.round(np.asarray(zone.points, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [pts], isClosed=True, color=colour, thickness=2, lineType=cv2.LINE_AA)
        x, y = (int(v) for v in pts[:, 0, :].min(axis=0))
        _label(image, f"{zone.kind}", (x + 2, y + 16), colour)


def _box_text(box: OverlayBox) -> str:
    track = f"#{box.track_id} " if box.track_id is not None else ""
    return f"{track}{box.label}"


def draw_overlay(image: Image, overlay: Overlay) -> None:
    for box in overlay.boxes:
        colour = ROLE_COLOURS.get(box.label, (255, 255, 255))
        x1, y1, x2, y2 = (round(v) for v in box.xyxy)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 3)
        _label(image, _box_text(box), (x1, y1 - 2), colour)
    for link in overlay.links:
        a = (round(link.staff[0]), round(link.staff[1]))
        b = (round(link.customer[0]), round(link.customer[1]))
        cv2.line(image, a, b, LINK_COLOUR, 3, cv2.LINE_AA)
        cv2.circle(image, a, 6, LINK_COLOUR, -1)
        cv2.circle(image, b, 6, LINK_COLOUR, -1)


def draw_faces(image: Image, faces: Sequence[tuple[tuple[float, float, float, float], int]], min_face_px: int) -> None:
    """Each face with its size in pixels: white when the engine's minimum is met, red when it is too small."""
    for (x1, y1, x2, y2), side in faces:
        colour = ROLE_COLOURS["face"] if side >= min_face_px else SMALL_FACE_COLOUR
        cv2.rectangle(image, (round(x1), round(y1)), (round(x2), round(y2)), colour, 2)
        _label(image, f"{side}px / min {min_face_px}", (round(x1), round(y1) - 2), colour)


def render(image: Image, zones: Sequence[DrawnZone], overlay: Overlay | None) -> Image:
    """A copy of ``image`` with the zones and the overlay drawn on it."""
    out = image.copy()
    draw_zones(out, zones)
    if overlay is not None:
        draw_overlay(out, overlay)
    return out


def encode_jpeg(image: Image, max_width: int | None = None, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of ``image``, scaled down to ``max_width`` when it is wider."""
    if max_width is not None and image.shape[1] > max_width:
        scale = max_width / image.shape[1]
        image = np.asarray(cv2.resize(image, (max_width, max(1, round(image.shape[0] * scale))),
                                      interpolation=cv2.INTER_AREA), np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the frame could not be encoded as JPEG")
    return bytes(buf.tobytes())
