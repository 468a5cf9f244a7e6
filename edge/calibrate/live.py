"""What the live endpoints read of a running box: its cameras' frames, taps and configs, and face sizes.

Every answer is taken from the runtime at the moment it is asked, so a camera that the calibration
page has just saved (and the runtime rebuilt) is seen as it is now. Nothing here writes to a camera:
frames are read from the source's newest-frame slot or the worker's tap, and a face-size check runs
on the face engine's owner threads like any other request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from edge.cameras.config import CameraConfig
from edge.cameras.sources import FrameSource
from edge.cameras.tap import FrameTap
from vision.engines.base import FaceEngine
from vision.types import Frame, Image

PROBE_MIN_PX = 24  # the face-size check looks for faces down to this size, well below any min_face_px
PROBE_MAX_SIDE = 2560  # and never upscales a frame beyond this long side for it


class LiveWorker(Protocol):
    @property
    def source(self) -> FrameSource: ...

    @property
    def tap(self) -> FrameTap: ...

    @property
    def pipeline(self) -> Any: ...  # a FramePipeline: its ``camera`` is the config it runs with


class LiveRuntime(Protocol):
    """The parts of the edge runtime the live endpoints read."""

    @property
    def workers(self) -> Sequence[LiveWorker]: ...

    @property
    def not_opened(self) -> Mapping[str, str]: ...

    @property
    def engine(self) -> FaceEngine: ...


class CameraUnavailable(Exception):
    """A camera that cannot be shown now: ``status`` 404 (unknown) or 503 (disabled, not opened, no frame)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class FaceSize:
    box: tuple[float, float, float, float]
    side_px: int

    def fits(self, min_face_px: int) -> bool:
        return self.side_px >= min_face_px


def find_worker(runtime: LiveRuntime, cameras: Sequence[CameraConfig], camera_id: str) -> LiveWorker:
    """The running worker of ``camera_id``, or :class:`CameraUnavailable` saying why there is none."""
    for worker in runtime.workers:
        if worker.pipeline.camera.id == camera_id:
            return worker
    reason = runtime.not_opened.get(camera_id)
    if reason is not None:
        raise CameraUnavailable(503, "not_opened", f"camera {camera_id} is not running: {reason}")
    configured = next((c for c in cameras if c.id == camera_id), None)
    if configured is None:
        raise CameraUnavailable(404, "not_found", f"no camera {camera_id}")
    if not configured.enabled:
        raise CameraUnavailable(503, "disabled", f"camera {camera_id} is disabled")
    raise CameraUnavailable(503, "not_running", f"camera {camera_id} is not running")


def newest_frame(worker: LiveWorker, wait_s: float) -> Frame:
    """The newest frame the camera read (processed or not); 503 with the source's health when it has none."""
    frame = worker.source.wait_newer(-1, timeout=wait_s)
    if frame is None:
        tapped = worker.tap.newest()
        if tapped is not None:
            return tapped.frame
        health = worker.source.health()
        why = health.error or f"state {health.state}"
        raise CameraUnavailable(503, "no_frame", f"camera {worker.pipeline.camera.id} has no frame yet ({why})")
    return frame


def probe_scale(image: Image, min_face_px: int) -> float:
    """How much to enlarge ``image`` so that the engine, which finds faces of ``min_face_px`` and more, finds
    faces down to :data:`PROBE_MIN_PX` too (never past :data:`PROBE_MAX_SIDE`)."""
    wanted = max(1.0, min_face_px / PROBE_MIN_PX)
    return float(max(1.0, min(wanted, PROBE_MAX_SIDE / max(image.shape[:2]))))


def face_sizes(engine: FaceEngine, image: Image) -> list[FaceSize]:
    """Every face the engine finds on ``image`` with its side in pixels (of ``image``), smaller ones included."""
    scale = probe_scale(image, engine.min_face_px)
    probe = image if scale == 1.0 else np.asarray(
        cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR), np.uint8)
    dets = engine.detect(probe)
    out = []
    for x1, y1, x2, y2 in (dets.xyxy / scale).tolist():
        side = round(min(x2 - x1, y2 - y1))
        out.append(FaceSize((x1, y1, x2, y2), side))
    return out


def suggestion(faces: Sequence[FaceSize], min_face_px: int) -> dict[str, str] | None:
    """What to change when faces are smaller than the engine's minimum; None when nothing needs changing."""
    if not faces:
        return {"zh": "画面中未找到人脸：请让一人站在通常的位置再检查，或检查摄像头的角度与对焦。",
                "en": "No face found in the picture: have someone stand where customers stand and check again, "
                      "or check the camera's angle and focus."}
    small = [f for f in faces if not f.fits(min_face_px)]
    if not small:
        return None
    smallest = min(f.side_px for f in small)
    target = max(PROBE_MIN_PX, smallest - smallest % 4)
    return {"zh": f"{len(small)} 张人脸小于当前最小人脸尺寸 min_face_px={min_face_px}（最小 {smallest} px），"
                  f"这些人脸不会被识别。建议：将 face.engine.min_face_px 调低到 {target}（检测更慢），"
                  "或把摄像头拉近、调大焦距，使人脸至少有 "
                  f"{min_face_px} px。",
            "en": f"{len(small)} face(s) are smaller than min_face_px={min_face_px} (smallest {smallest} px) and "
                  f"will not be recognised. Lower face.engine.min_face_px to {target} (slower detection), or "
                  f"move or zoom the camera so that faces are at least {min_face_px} px."}
