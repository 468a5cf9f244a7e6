"""Builds a lobby video from real face photos: people walk in from the side, stand, and leave.

Each person is a cut-out of a real photo (face plus head and shoulders), composited onto a drawn
lobby. The builder records, per appearance, the first frame in which the whole face is inside the
picture and the first in which at least half of it is: the ground truth for alert latency.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from vision.engines.base import FaceEngine
from vision.imageio import decode_image
from vision.types import Image


@dataclass(frozen=True, slots=True)
class Actor:
    label: str
    photo: str
    face_index: int = 0  # faces of the photo sorted left to right


@dataclass(frozen=True, slots=True)
class Appearance:
    actor: Actor
    enter_s: float
    dwell_s: float = 2.0
    walk_s: float = 0.8
    side: Literal["left", "right"] = "left"
    lane_x: float = 0.35
    face_px: int = 130


@dataclass(frozen=True, slots=True)
class Truth:
    label: str
    photo: str
    enter_s: float
    first_visible_frame: int  # first frame with at least half of the face inside the picture
    first_full_frame: int  # first frame with the whole face inside
    last_visible_frame: int


Box = tuple[float, float, float, float]
FaceAt = tuple[int, Box]  # (appearance number, face box in the frame)


@dataclass(frozen=True, slots=True)
class Sprite:
    image: Image
    alpha: np.ndarray
    face: tuple[float, float, float, float]


def lobby_background(width: int, height: int) -> Image:
    """A plain lobby: wall gradient, floor, a counter and a door frame."""
    wall = np.linspace(225, 190, height, dtype=np.float32)[:, None, None] * np.array([1.0, 0.97, 0.92])
    img = np.broadcast_to(wall, (height, width, 3)).astype(np.uint8).copy()
    floor_y = int(height * 0.72)
    img[floor_y:] = (150, 160, 170)
    for x in range(0, width, max(width // 12, 1)):
        cv2.line(img, (x, floor_y), (x + (x - width // 2) // 3, height), (135, 145, 155), 2)
    cv2.rectangle(img, (int(width * 0.70), int(height * 0.52)), (int(width * 0.97), floor_y + 40), (90, 70, 60), -1)
    cv2.rectangle(img, (int(width * 0.05), int(height * 0.12)), (int(width * 0.22), floor_y), (120, 110, 100), 6)
    return img


def make_sprite(photo: Image, box: np.ndarray, face_px: int) -> Sprite:
    """Head-and-shoulders cut-out around ``box``, scaled so the face is ``face_px`` wide."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    pad = int(max(photo.shape[:2]))
    padded = cv2.copyMakeBorder(photo, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    cx1, cy1 = int(x1 - 0.9 * w) + pad, int(y1 - 0.8 * h) + pad
    cx2, cy2 = int(x2 + 0.9 * w) + pad, int(y2 + 1.6 * h) + pad
    crop = padded[cy1:cy2, cx1:cx2]
    scale = face_px / w
    sprite = cv2.resize(crop, None, fx=scale, fy=scale,
                        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    sh, sw = sprite.shape[:2]
    alpha = np.zeros((sh, sw), np.float32)
    cv2.ellipse(alpha, (sw // 2, int(sh * 0.55)), (int(sw * 0.46), int(sh * 0.52)), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(sw / 40, 1.0))
    face = ((x1 + pad - cx1) * scale, (y1 + pad - cy1) * scale, (x2 + pad - cx1) * scale, (y2 + pad - cy1) * scale)
    return Sprite(np.ascontiguousarray(sprite), alpha, face)


def faces_of(engine: FaceEngine, photo: Image) -> np.ndarray:
    dets = engine.detect(photo)
    order = np.argsort(dets.xyxy[:, 0])
    return dets.xyxy[order]


def _placement(app: Appearance, t: float, width: int, height: int, sprite: Sprite) -> tuple[float, float, float] | None:
    """(scale, face centre x, face centre y) at time ``t``, or None when off stage."""
    local = t - app.enter_s
    total = 2 * app.walk_s + app.dwell_s
    if local < 0 or local > total:
        return None
    fw = sprite.face[2] - sprite.face[0]
    start_x = -fw * 1.6 if app.side == "left" else width + fw * 1.6
    stand_x = app.lane_x * width
    if local < app.walk_s:
        k = local / app.walk_s
    elif local < app.walk_s + app.dwell_s:
        k = 1.0
    else:
        k = max(0.0, 1.0 - (local - app.walk_s - app.dwell_s) / app.walk_s)
    scale = 0.8 + 0.2 * k
    sway = 0.01 * width * np.sin(local * 3.0) if k == 1.0 else 0.0
    return scale, start_x + (stand_x - start_x) * k + sway, height * 0.36


def _paste(canvas: Image, sprite: Sprite, scale: float, cx: float, cy: float) -> tuple[float, float, float, float]:
    img = cv2.resize(sprite.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(sprite.alpha, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    fx1, fy1, fx2, fy2 = (v * scale for v in sprite.face)
    ox, oy = round(cx - (fx1 + fx2) / 2), round(cy - (fy1 + fy2) / 2)
    h, w = canvas.shape[:2]
    x0, y0 = max(ox, 0), max(oy, 0)
    x1, y1 = min(ox + img.shape[1], w), min(oy + img.shape[0], h)
    if x1 > x0 and y1 > y0:
        src = img[y0 - oy:y1 - oy, x0 - ox:x1 - ox].astype(np.float32)
        a = alpha[y0 - oy:y1 - oy, x0 - ox:x1 - ox, None]
        dst = canvas[y0:y1, x0:x1].astype(np.float32)
        canvas[y0:y1, x0:x1] = (src * a + dst * (1 - a)).astype(np.uint8)
    return ox + fx1, oy + fy1, ox + fx2, oy + fy2


class SceneBuilder:
    def __init__(self, engine: FaceEngine, photos_dir: Path, *, width: int = 1280, height: int = 720,
                 fps: float = 10.0) -> None:
        self._engine = engine
        self._photos_dir = photos_dir
        self.width, self.height, self.fps = width, height, fps
        self._boxes: dict[str, np.ndarray] = {}
        self._photos: dict[str, Image] = {}

    def _sprite(self, app: Appearance) -> Sprite:
        name = app.actor.photo
        if name not in self._photos:
            self._photos[name] = decode_image((self._photos_dir / name).read_bytes())
            self._boxes[name] = faces_of(self._engine, self._photos[name])
        boxes = self._boxes[name]
        if app.actor.face_index >= len(boxes):
            raise ValueError(f"{name} has {len(boxes)} detectable faces; face {app.actor.face_index} requested")
        return make_sprite(self._photos[name], boxes[app.actor.face_index], app.face_px)

    def frames(self, appearances: list[Appearance], duration_s: float) -> Iterator[tuple[int, Image, list[FaceAt]]]:
        """(index, image, [(appearance number, face box)]) for every frame."""
        background = lobby_background(self.width, self.height)
        sprites = [self._sprite(a) for a in appearances]
        for index in range(round(duration_s * self.fps)):
            t = index / self.fps
            canvas = background.copy()
            faces: list[FaceAt] = []
            for n, (app, sprite) in enumerate(zip(appearances, sprites, strict=True)):
                place = _placement(app, t, self.width, self.height, sprite)
                if place is not None:
                    faces.append((n, _paste(canvas, sprite, *place)))
            yield index, canvas, faces

    def _inside_fraction(self, box: Box) -> float:
        x1, y1, x2, y2 = box
        area = max((x2 - x1) * (y2 - y1), 1e-6)
        ix = max(0.0, min(x2, self.width) - max(x1, 0.0))
        iy = max(0.0, min(y2, self.height) - max(y1, 0.0))
        return ix * iy / area

    def write(self, path: Path, appearances: list[Appearance], duration_s: float) -> list[Truth]:
        """Write an MP4 (mp4v) and ``<path>.truth.json``; return the per-appearance ground truth."""
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (self.width, self.height))
        if not writer.isOpened():
            raise RuntimeError(f"cannot write video {path}")
        first: dict[int, int] = {}
        full: dict[int, int] = {}
        last: dict[int, int] = {}
        try:
            for index, image, faces in self.frames(appearances, duration_s):
                writer.write(image)
                for n, box in faces:
                    inside = self._inside_fraction(box)
                    if inside >= 0.5:
                        first.setdefault(n, index)
                        last[n] = index
                    if inside >= 0.999:
                        full.setdefault(n, index)
        finally:
            writer.release()
        truth = [Truth(a.actor.label, a.actor.photo, a.enter_s, first.get(n, -1), full.get(n, -1), last.get(n, -1))
                 for n, a in enumerate(appearances)]
        path.with_suffix(".truth.json").write_text(json.dumps([asdict(t) for t in truth], indent=1))
        return truth
