"""The calibration page's live endpoints (branch_it or admin): snapshot, MJPEG preview, face sizes, test connection.

All of them only read. The preview never slows a camera: the worker's tap hands over a reference to
the newest processed frame (and its overlay while someone watches); copying, drawing and JPEG
encoding run in this request's thread, at most ``preview.max_fps`` times a second, for at most
``preview.max_viewers`` streams on the box. A stream stops when its viewer goes away.

No ``from __future__ import annotations``: FastAPI resolves the ``BranchIt`` dependency alias at runtime.
"""

import asyncio
import base64
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from calibration.errors import CalibrationError
from calibration.lens import UndistortMaps, undistort_maps
from edge.api.auth import Gate, Principal
from edge.calibrate.connection import check_connection
from edge.calibrate.live import (
    CameraUnavailable,
    LiveRuntime,
    LiveWorker,
    face_sizes,
    find_worker,
    newest_frame,
    suggestion,
)
from edge.calibrate.live_draw import camera_zones, draw_faces, encode_jpeg, render
from edge.cameras.config import CameraConfig
from edge.cameras.preview_config import LivePreviewConfig
from edge.cameras.tap import Tapped
from edge.cameras.undistort import LensConfig
from vision.types import Image

logger = logging.getLogger(__name__)

BOUNDARY = "smartbranchframe"
SNAPSHOT_WAIT_S = 2.0
KEEPALIVE_S = 2.0  # a camera with no new frame (a file that ended) re-sends its last one this often


class FacePublic(BaseModel):
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in the frame's pixels.")
    side_px: int = Field(description="The face's side in pixels.")
    ok: bool = Field(description="At least min_face_px: the engine finds and recognises it.")


class FacesPublic(BaseModel):
    camera_id: str
    frame_index: int = Field(description="Which frame of the camera was checked.")
    width: int
    height: int
    min_face_px: int = Field(description="The engine's minimum face size now (face.engine.min_face_px).")
    faces: list[FacePublic]
    too_small: int = Field(description="How many faces are smaller than min_face_px.")
    suggestion: dict[str, str] | None = Field(description="What to change, in zh and en; None when nothing.")


class ConnectionTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, description="A camera source URL, as in cameras[].source.url.")
    timeout_s: float = Field(default=8.0, gt=0, le=20, description="Give up after this many seconds.")


class ConnectionPublic(BaseModel):
    ok: bool
    source: str = Field(description="The URL with its credentials redacted.")
    code: str | None = Field(description="bad_url, not_found, refused, timeout, unreachable, not_a_video, "
                                         "no_frame or cannot_open; None when it worked.")
    reason: str | None = Field(description="Why it failed, for people (credentials redacted).")
    width: int | None = None
    height: int | None = None
    jpeg_base64: str | None = Field(default=None, description="The first frame, JPEG, base64.")


class _Viewers:
    """The preview streams open on the box; one past the limit is refused. A stream counts for as long as its
    generator lives, so one whose viewer left before it even started frees its slot as well."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: weakref.WeakSet[AsyncIterator[bytes]] = weakref.WeakSet()

    def admit(self, stream: AsyncIterator[bytes], limit: int) -> bool:
        with self._lock:
            if len(self._open) >= limit:
                return False
            self._open.add(stream)
            return True


class _LensCache:
    """Undistortion maps per camera lens and frame size, computed once (a remap table is ~7 MB at 720p)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._maps: dict[tuple[str, LensConfig, tuple[int, int]], UndistortMaps] = {}

    def undistort(self, camera: CameraConfig, image: Image) -> Image:
        """``image`` as the camera's pipeline sees it: through the lens of its config (the same maps)."""
        lens = camera.lens
        if lens is None:
            raise HTTPException(409, {"code": "no_lens", "message": f"camera {camera.id} has no lens calibration "
                                                                    "yet (calibrate it on the lens tab)"})
        size = (image.shape[1], image.shape[0])
        key = (camera.id, lens, size)
        with self._lock:
            maps = self._maps.get(key)
        if maps is None:
            try:
                model = lens.model()
                maps = undistort_maps(model if model.image_size == size else model.scaled(size), lens.alpha)
            except CalibrationError as exc:
                raise HTTPException(409, {"code": "bad_lens", "message": str(exc)}) from exc
            with self._lock:
                self._maps = {k: v for k, v in self._maps.items() if k[0] != camera.id}
                self._maps[key] = maps
        return maps.apply(image, nearest=lens.interpolation == "nearest")


def _unavailable(exc: CameraUnavailable) -> HTTPException:
    return HTTPException(exc.status, {"code": exc.code, "message": str(exc)})


def live_router(runtime: LiveRuntime, gate: Gate, *, cameras: Callable[[], Sequence[CameraConfig]],
                preview: Callable[[], LivePreviewConfig]) -> APIRouter:
    """The live endpoints over ``runtime``; ``cameras()`` and ``preview()`` give the config in force now."""
    router = APIRouter(prefix="/api/calibrate", tags=["calibrate"])
    BranchIt = Annotated[Principal, Depends(gate.require("branch_it"))]
    viewers = _Viewers()
    lenses = _LensCache()

    def worker_of(camera_id: str) -> LiveWorker:
        try:
            return find_worker(runtime, cameras(), camera_id)
        except CameraUnavailable as exc:
            raise _unavailable(exc) from exc

    def snapshot_jpeg(camera_id: str, undistort: bool) -> bytes:
        worker = worker_of(camera_id)
        try:
            frame = newest_frame(worker, SNAPSHOT_WAIT_S)
        except CameraUnavailable as exc:
            raise _unavailable(exc) from exc
        image = lenses.undistort(worker.pipeline.camera, frame.image) if undistort else frame.image
        return encode_jpeg(image, quality=90)

    @router.get("/cameras/{camera_id}/snapshot.jpg", response_class=Response,
                responses={200: {"content": {"image/jpeg": {}}}})
    async def snapshot(camera_id: str, _: BranchIt,
                       undistort: Annotated[bool, Query(description="Undistort with the camera's lens.")] = False
                       ) -> Response:
        """The newest frame the camera read, full size."""
        data = await asyncio.to_thread(snapshot_jpeg, camera_id, undistort)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    def next_part(worker: LiveWorker, after: int, settings: LivePreviewConfig
                  ) -> tuple[int, bytes | None]:
        """Wait for a newer processed frame (up to the keep-alive), draw it and encode it."""
        tapped: Tapped | None = worker.tap.newest(after, timeout=KEEPALIVE_S)
        if tapped is None:
            tapped = worker.tap.newest()  # nothing new: the last one again, so the viewer's picture stays
            if tapped is None:
                return after, None
        drawn = render(tapped.frame.image, camera_zones(worker.pipeline.camera), tapped.overlay)
        return tapped.frame.index, encode_jpeg(drawn, settings.max_width, settings.jpeg_quality)

    async def stream(camera_id: str, fps: float) -> AsyncIterator[bytes]:
        settings = preview()
        period = 1.0 / min(fps, settings.max_fps)
        last, sent_at = -1, 0.0
        while True:
            try:
                worker = find_worker(runtime, cameras(), camera_id)  # a saved camera is rebuilt: follow it
            except CameraUnavailable:
                return
            wait = sent_at + period - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            index, jpeg = await asyncio.to_thread(next_part, worker, last, settings)
            if jpeg is None:
                continue
            last, sent_at = index, time.monotonic()
            yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                   f"X-Frame-Index: {index}\r\n\r\n").encode("ascii") + jpeg + b"\r\n"

    @router.get("/cameras/{camera_id}/preview.mjpg", response_class=StreamingResponse,
                responses={200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}}}})
    def preview_stream(camera_id: str, _: BranchIt,
                       fps: Annotated[float, Query(gt=0, le=30, description="Frames per second wanted; capped by "
                                                                           "preview.max_fps.")] = 5.0
                       ) -> StreamingResponse:
        """MJPEG of the camera as its pipeline sees it: zones, people with track ids and roles, faces, links."""
        worker_of(camera_id)
        settings = preview()
        frames = stream(camera_id, fps)
        if not viewers.admit(frames, settings.max_viewers):
            raise HTTPException(503, {"code": "busy", "message": f"{settings.max_viewers} previews are open "
                                                                 "already; close one and retry"},
                                headers={"Retry-After": "5"})
        return StreamingResponse(frames, media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    def check_faces(camera_id: str) -> tuple[FacesPublic, Image]:
        worker = worker_of(camera_id)
        try:
            frame = newest_frame(worker, SNAPSHOT_WAIT_S)
        except CameraUnavailable as exc:
            raise _unavailable(exc) from exc
        min_px = runtime.engine.min_face_px
        found = face_sizes(runtime.engine, frame.image)
        h, w = frame.image.shape[:2]
        public = FacesPublic(camera_id=camera_id, frame_index=frame.index, width=w, height=h, min_face_px=min_px,
                             faces=[FacePublic(box=f.box, side_px=f.side_px, ok=f.fits(min_px)) for f in found],
                             too_small=sum(not f.fits(min_px) for f in found), suggestion=suggestion(found, min_px))
        drawn = frame.image.copy()
        draw_faces(drawn, [(f.box, f.side_px) for f in found], min_px)
        return public, drawn

    @router.get("/cameras/{camera_id}/faces", response_model=FacesPublic)
    async def faces(camera_id: str, _: BranchIt) -> FacesPublic:
        """Faces on the newest frame with their pixel sizes against min_face_px, and what to change."""
        public, _drawn = await asyncio.to_thread(check_faces, camera_id)
        return public

    @router.get("/cameras/{camera_id}/faces.jpg", response_class=Response,
                responses={200: {"content": {"image/jpeg": {}}}})
    async def faces_image(camera_id: str, _: BranchIt) -> Response:
        """The same check drawn on the frame: each face with its size, red when below min_face_px."""
        _public, drawn = await asyncio.to_thread(check_faces, camera_id)
        return Response(encode_jpeg(drawn, quality=85), media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @router.post("/test-connection", response_model=ConnectionPublic)
    async def test_connection(body: ConnectionTest, _: BranchIt) -> ConnectionPublic:
        """Open a source once and show its first frame, or the reason it failed."""
        result = await asyncio.to_thread(check_connection, body.url, body.timeout_s)
        if result.image is None:
            return ConnectionPublic(ok=False, source=result.source, code=result.code, reason=result.reason)
        h, w = result.image.shape[:2]
        data = encode_jpeg(result.image, 1280, 85)
        return ConnectionPublic(ok=True, source=result.source, code=None, reason=None, width=w, height=h,
                                jpeg_base64=base64.b64encode(data).decode("ascii"))

    return router
