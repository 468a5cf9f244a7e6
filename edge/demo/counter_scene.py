"""Counter scenes from real photos: whole people cut out of real portraits, moved along scripted paths.

Each person is the person box that the real person detector finds in a real photo (a clerk from
``obama3.jpg``, customers from ``biden.jpg`` and from the group photo ``t1.jpg``), scaled to a standing
height and pasted with the feet on one floor line of a drawn lobby. A script gives each person
waypoints ``(seconds, x)``, spells when they are off stage or hidden behind a pillar, and spells when
the face is turned away (the face region painted over like the back of a head).

The floor calibration :data:`FLOOR` maps the floor line to metres (200 px per metre), so the
interaction distance is exact in these scenes; the truth boxes let a test run the same interaction
logic on the true positions and compare.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from edge.demo.scene import lobby_background
from vision.engines.base import FaceEngine
from vision.imageio import decode_image
from vision.types import Detections, Frame, Image

Box = tuple[float, float, float, float]
W, H = 1280, 720
FLOOR_Y = 700.0
PX_PER_M = 200.0
# Image points on two floor lines and their floor coordinates in metres (for counter.floor in the config).
FLOOR_IMAGE_POINTS = [(0.0, FLOOR_Y), (float(W), FLOOR_Y), (0.0, 400.0), (float(W), 400.0)]
FLOOR_POINTS = [(0.0, 0.0), (W / PX_PER_M, 0.0), (0.0, 4.0), (W / PX_PER_M, 4.0)]
STAFF_ZONE = [(0.0, 600.0), (360.0, 600.0), (360.0, 720.0), (0.0, 720.0)]  # behind the counter
COUNTER_ZONE = STAFF_ZONE
WAITING_ZONE = [(760.0, 600.0), (1280.0, 600.0), (1280.0, 720.0), (760.0, 720.0)]



def scene_camera(url: str, *, fps: float | None = None, camera_id: str = "counter-1", name: str = "1号柜台",
                 waiting: str = "等候区", counter: str = "1号柜台") -> dict[str, object]:
    """The ``cameras[]`` entry of a counter camera that sees these scenes: its zones and floor calibration."""
    source: dict[str, object] = {"url": url} if fps is None else {"url": url, "fps": fps}
    return {"id": camera_id, "name": name, "role": "counter", "source": source,
            "counter": {"staff_zone": STAFF_ZONE, "waiting_zones": [{"name": waiting, "points": WAITING_ZONE}],
                        "counter_zones": [{"name": counter, "points": COUNTER_ZONE}],
                        "floor": {"image_points": FLOOR_IMAGE_POINTS, "floor_points": FLOOR_POINTS}}}


# (photo, index of the detected person, left to right), as cut for the scenes
CAST = {"clerk": ("obama3.jpg", 0), "customer": ("biden.jpg", 0), "customer2": ("t1.jpg", -1),
        "customer3": ("t1.jpg", 0)}


@dataclass(frozen=True, slots=True)
class Cutout:
    name: str
    image: Image
    face: Box | None  # face box inside the cut-out, when the face engine finds one


def cut_person(photo: Image, detector_boxes: np.ndarray, index: int, height: int) -> Image:
    """The ``index``-th detected person (left to right) of ``photo``, scaled to ``height`` pixels."""
    order = np.argsort(detector_boxes[:, 0])
    x1, y1, x2, y2 = (int(v) for v in detector_boxes[order[index]])
    crop = photo[max(0, y1):y2, max(0, x1):x2]
    scale = height / crop.shape[0]
    return np.ascontiguousarray(cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), height),
                                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC))


def load_cast(photos_dir: Path, detect_persons: object, engine: FaceEngine, height: int = 600) -> dict[str, Cutout]:
    """Cut the cast out of the real photos; ``detect_persons`` is a person detector (``.detect(image)``)."""
    cast: dict[str, Cutout] = {}
    for name, (file, index) in CAST.items():
        photo = decode_image((photos_dir / file).read_bytes())
        boxes: Detections = detect_persons.detect(photo)  # type: ignore[attr-defined]
        if len(boxes) == 0:
            raise ValueError(f"no person found in {file}")
        image = cut_person(photo, boxes.xyxy, index, height)
        faces = engine.detect(image)
        face = None
        if len(faces):
            best = int(np.argmax((faces.xyxy[:, 2] - faces.xyxy[:, 0]) * (faces.xyxy[:, 3] - faces.xyxy[:, 1])))
            face = tuple(float(v) for v in faces.xyxy[best])
        cast[name] = Cutout(name, image, face)  # type: ignore[arg-type]
    return cast


def turned_away(image: Image, face: Box | None) -> Image:
    """The cut-out with its face painted over like the back of a head (hair), so no face is found."""
    out = image.copy()
    if face is None:
        return out
    x1, y1, x2, y2 = face
    cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
    axes = (int((x2 - x1) * 0.75), int((y2 - y1) * 0.95))
    cv2.ellipse(out, (cx, cy), axes, 0, 0, 360, (28, 30, 34), -1)
    return out


@dataclass(frozen=True, slots=True)
class Role:
    """One person's script: x of the box centre over time, and spells off stage or with the face turned."""

    cutout: Cutout
    waypoints: tuple[tuple[float, float], ...]
    hidden: tuple[tuple[float, float], ...] = ()  # off stage or occluded: not drawn
    face_turned: tuple[tuple[float, float], ...] = ()
    always_turned: bool = False

    def x_at(self, t: float) -> float:
        ts = [p[0] for p in self.waypoints]
        xs = [p[1] for p in self.waypoints]
        return float(np.interp(t, ts, xs))

    def visible(self, t: float) -> bool:
        return not any(a <= t < b for a, b in self.hidden)

    def turned(self, t: float) -> bool:
        return self.always_turned or any(a <= t < b for a, b in self.face_turned)


@dataclass
class CounterScene:
    """Renders a scripted scene at ``fps``; frames carry capture times from ``t0``."""

    roles: list[Role]
    duration_s: float
    fps: float = 5.0
    t0: datetime = field(default_factory=lambda: datetime(2026, 11, 2, 1, 0, tzinfo=UTC))  # 09:00 in Shanghai
    camera_id: str = "counter-1"

    def __post_init__(self) -> None:
        self._background = lobby_background(W, H)
        self._turned = {id(r): turned_away(r.cutout.image, r.cutout.face) for r in self.roles}

    @property
    def n_frames(self) -> int:
        return round(self.duration_s * self.fps)

    def render(self, t: float) -> tuple[Image, list[Box | None]]:
        """The frame at ``t`` and each role's true box (None when not drawn)."""
        frame = self._background.copy()
        boxes: list[Box | None] = []
        for role in self.roles:
            if not role.visible(t):
                boxes.append(None)
                continue
            sprite = self._turned[id(role)] if role.turned(t) else role.cutout.image
            h, w = sprite.shape[:2]
            x0 = round(role.x_at(t) - w / 2)
            y0 = int(FLOOR_Y) - h
            xs, xe = max(0, x0), min(W, x0 + w)
            ys = max(0, y0)
            if xe <= xs:
                boxes.append(None)
                continue
            frame[ys:int(FLOOR_Y), xs:xe] = sprite[ys - y0:, xs - x0:xe - x0]
            boxes.append((float(xs), float(ys), float(xe), FLOOR_Y))
        return frame, boxes

    def frames(self) -> Iterator[tuple[Frame, list[Box | None]]]:
        for i in range(self.n_frames):
            t = i / self.fps
            image, boxes = self.render(t)
            yield Frame(self.camera_id, i + 1, self.t0 + timedelta(seconds=t), 1000.0 + t, image), boxes
