"""The counter part of ``make demo``: a service counter scene from real photos, when the person detector is
installed. The enrolled VIP waits at the counter with nobody attending (a 「VIP 无人接待」 alert), then a
clerk, enrolled as staff, comes over and serves them (service start and end, and an H.264 clip)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2

from edge.demo.counter_scene import CounterScene, Role, load_cast, scene_camera
from models.errors import ModelPackError
from vision.engines.base import FaceEngine
from vision.engines.nanodet import NanoDetPersonDetector

logger = logging.getLogger(__name__)

STAFF_NAME = "拜登"
STAFF_TIER = "柜员"
STAFF_ENROL_PHOTO = "biden.jpg"
FPS = 5.0


def render_counter_frames(folder: Path, photos: Path, engine: FaceEngine) -> bool:
    """Write the counter scene's frames into ``folder``; False when the person detector is not installed."""
    try:
        detector = NanoDetPersonDetector()
    except ModelPackError as exc:
        logger.warning("counter demo skipped: %s", exc)
        return False
    cast = load_cast(photos, detector, engine)
    # The VIP (obama3.jpg cut-out) waits; the clerk (biden.jpg cut-out) stays behind the counter, then serves.
    scene = CounterScene([
        Role(cast["customer"], ((0, 180), (9, 180), (11, 720), (17, 720), (19, 180), (22, 180))),
        Role(cast["clerk"], ((0, 1000), (22, 1000))),
    ], 22.0, fps=FPS)
    folder.mkdir(parents=True, exist_ok=True)
    for frame, _ in scene.frames():
        cv2.imwrite(str(folder / f"frame_{frame.index:05d}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return True


def counter_camera(folder: Path) -> dict[str, object]:
    return scene_camera(f"dir:{folder}", fps=FPS)


COUNTER_SETTINGS = {"interaction": {"max_distance_m": 1.6, "start_after_s": 2.0, "end_after_s": 2.0},
                    "unattended_after_s": 6.0}
CLIP_SETTINGS = {"pre_roll_s": 2.0, "post_roll_s": 1.0}
