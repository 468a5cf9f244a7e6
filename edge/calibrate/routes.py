"""The branch-IT calibration API and page (``GET /calibrate``): cameras, zones, floor, lens, versions.

Every API route needs the ``branch_it`` role (``admin`` passes too) and checks the token before it reads a
body. The page itself holds no data and no token: it reads the token from its own ``?token=`` and sends it
with each call, like the review page. Saves go through :class:`edge.calibrate.service.CalibrationService`:
validated by the config models, written atomically as a new version, applied to the running camera, audited.
A refused save answers 422 with the reason and writes nothing.

No ``from __future__ import annotations`` here: FastAPI resolves the ``BranchIt`` alias at runtime.
"""

import asyncio
import logging
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from calibration.errors import CalibrationError
from edge.api.auth import Gate, GuardFirstRoute, Principal
from edge.calibrate.geometry import calibrate_from_snapshots, fit_floor, parse_board
from edge.calibrate.schemas import (
    CameraPublic,
    CameraSave,
    FloorFitCreate,
    HealthPublic,
    SavedPublic,
    VersionPublic,
)
from edge.calibrate.service import CalibrationService, Saved, check_zones
from edge.cameras.config import CameraConfig
from edge.config import EdgeConfig
from edge.errors import ConfigError
from edge.redact import redact_text, redact_url
from edge.runtime import EdgeRuntime

logger = logging.getLogger(__name__)

STATIC_FILES = {"calibrate.js": "application/javascript", "calibrate.css": "text/css",
                "calibrate_live.js": "application/javascript"}
MAX_SNAPSHOTS = 30


def _error(status: int, code: str, message: str) -> HTTPException:
    return HTTPException(status, {"code": code, "message": message})


def _static(name: str) -> str:
    return resources.files("edge.api").joinpath(f"static/{name}").read_text(encoding="utf-8")


def _invalid(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'camera'}: {e['msg']}" for e in exc.errors())


def camera_health(runtime: EdgeRuntime) -> dict[str, HealthPublic]:
    """Each running camera's reader health, and each camera the box could not open with the reason."""
    out = {s.camera_id: HealthPublic(state=s.health.state, healthy=s.health.healthy,
                                     error=redact_text(s.health.error) if s.health.error else None,
                                     frames=s.health.frames, processed=s.processed)
           for s in runtime.camera_status()}
    out.update({k: HealthPublic(state="not_opened", healthy=False, error=redact_text(v))
                for k, v in runtime.not_opened.items()})
    return out


def shown(camera: CameraConfig) -> dict[str, object]:
    """A camera's config entry as the page sees it: the source URL without its credentials."""
    out: dict[str, Any] = camera.model_dump(mode="json")
    out["source"]["url"] = redact_url(camera.source.url)
    return out


def with_credentials(entry: dict[str, Any], existing: CameraConfig | None) -> dict[str, Any]:
    """``entry`` with the stored source URL when the page sent it back as it was shown (redacted)."""
    source = entry.get("source")
    if existing is None or not isinstance(source, dict):
        return entry
    if source.get("url") == redact_url(existing.source.url):
        return {**entry, "source": {**source, "url": existing.source.url}}
    return entry


def calibrate_router(gate: Gate, *, service: CalibrationService | None, config: Callable[[], EdgeConfig],
                     health: Callable[[], dict[str, HealthPublic]]) -> APIRouter:
    """``config()``: the config in force; ``health()``: each running or refused camera's health by id;
    ``service`` None: the box was started without a config file, so nothing can be saved."""
    router = APIRouter(route_class=GuardFirstRoute, tags=["calibrate"])
    BranchIt = Annotated[Principal, Depends(gate.require("branch_it"))]

    def saving() -> CalibrationService:
        if service is None:
            raise _error(409, "no_config_file", "this box was started without a config file; calibration cannot "
                                                "be saved here")
        return service

    def parse_camera(body: CameraSave) -> CameraConfig:
        camera_id = body.camera.get("id")
        existing = next((c for c in config().cameras if c.id == camera_id), None)
        try:
            camera = CameraConfig.model_validate(with_credentials(body.camera, existing))
            check_zones(camera)
        except ValidationError as exc:
            raise _error(422, "bad_camera", _invalid(exc)) from exc
        except ConfigError as exc:
            raise _error(422, "bad_camera", str(exc)) from exc
        return camera

    def public(saved: Saved, camera_id: str | None) -> SavedPublic:
        cam = next((c for c in saved.config.cameras if c.id == camera_id), None)
        return SavedPublic(version=saved.version, changed=saved.changed, diff=saved.diff,
                           camera=shown(cam) if cam is not None else None)

    @router.get("/calibrate", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        """The calibration page (public: it holds no data; the API it calls needs a branch_it token)."""
        return HTMLResponse(_static("calibrate.html"), headers={"Cache-Control": "no-cache",
                                                                 "Referrer-Policy": "no-referrer"})

    @router.get("/calibrate/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        media = STATIC_FILES.get(name)
        if media is None:
            raise _error(404, "not_found", f"no file {name}")
        try:
            body = _static(name)
        except FileNotFoundError as exc:
            raise _error(404, "not_found", f"no file {name}") from exc
        return Response(body, media_type=media, headers={"Cache-Control": "no-cache"})

    @router.get("/api/calibrate/cameras", response_model=list[CameraPublic])
    def list_cameras(_: BranchIt) -> list[CameraPublic]:
        now = health()
        off = HealthPublic(state="disabled", healthy=False)
        return [CameraPublic(id=c.id, config=shown(c),
                             health=now.get(c.id, off) if c.enabled else off) for c in config().cameras]

    @router.put("/api/calibrate/cameras/{camera_id}", response_model=SavedPublic)
    def save_camera(camera_id: str, body: CameraSave, principal: BranchIt) -> SavedPublic:
        """Replace one camera's settings (zones, floor, lens, source, enabled): a new version, applied now."""
        camera = parse_camera(body)
        if camera.id != camera_id:
            raise _error(422, "bad_camera", f"the body is camera {camera.id!r}, the path {camera_id!r}; "
                                            "a camera's id cannot change")
        try:
            saved = saving().save_camera(camera, user=principal.name, summary=body.summary or "settings")
        except ConfigError as exc:
            raise _error(422, "bad_config", redact_text(str(exc))) from exc
        return public(saved, camera_id)

    @router.post("/api/calibrate/cameras", response_model=SavedPublic, status_code=201)
    def add_camera(body: CameraSave, principal: BranchIt) -> SavedPublic:
        camera = parse_camera(body)
        try:
            saved = saving().save_camera(camera, user=principal.name, summary=body.summary or "added", new=True)
        except ConfigError as exc:
            status = 409 if "already exists" in str(exc) else 422
            raise _error(status, "exists" if status == 409 else "bad_config", redact_text(str(exc))) from exc
        return public(saved, camera.id)

    @router.post("/api/calibrate/floor/fit")
    def floor_fit(body: FloorFitCreate, _: BranchIt) -> dict[str, object]:
        """Fit the floor homography; each point's reprojection error, and the camera's zones on the floor."""
        camera = next((c for c in config().cameras if c.id == body.camera_id), None)
        if body.camera_id is not None and camera is None:
            raise _error(404, "not_found", f"no camera {body.camera_id}")
        try:
            return fit_floor(body.image_points, body.floor_points, camera)
        except CalibrationError as exc:
            raise _error(422, "bad_calibration", str(exc)) from exc

    @router.post("/api/calibrate/lens")
    async def calibrate_lens(
        _: BranchIt,
        images: Annotated[list[UploadFile], File(description="Checkerboard snapshots of one camera (JPEG/PNG).")],
        board: Annotated[str, Form(description="Inner corners, e.g. 9x6.")] = "9x6",
        square_mm: Annotated[float, Form(gt=0, le=1000, description="Side of one square in mm.")] = 25.0,
    ) -> dict[str, object]:
        """Lens calibration from snapshots: RMS error, the lens section, and an undistorted preview."""
        if len(images) > MAX_SNAPSHOTS:
            raise _error(422, "too_many", f"at most {MAX_SNAPSHOTS} snapshots at once, got {len(images)}")
        data = [await f.read() for f in images]
        try:
            return await asyncio.to_thread(calibrate_from_snapshots, data, parse_board(board), square_mm)
        except CalibrationError as exc:
            raise _error(422, "bad_calibration", str(exc)) from exc

    @router.get("/api/calibrate/versions", response_model=list[VersionPublic])
    def list_versions(_: BranchIt) -> list[VersionPublic]:
        svc = saving()
        kept = svc.versions.history()
        current = svc.versions.current_text()
        now = next((v.version for v in kept if svc.versions.text(v.version) == current), None)
        return [VersionPublic(version=v.version, at=v.at, user=v.user, summary=v.summary, current=v.version == now)
                for v in kept]

    @router.get("/api/calibrate/versions/{version}", response_model=VersionPublic)
    def get_version(version: int, _: BranchIt) -> VersionPublic:
        found = next((v for v in saving().versions.history() if v.version == version), None)
        if found is None:
            raise _error(404, "not_found", f"version {version} is not kept")
        return VersionPublic(version=found.version, at=found.at, user=found.user, summary=found.summary,
                             diff=redact_text(found.diff))

    @router.post("/api/calibrate/versions/{version}/rollback", response_model=SavedPublic)
    def rollback(version: int, principal: BranchIt) -> SavedPublic:
        """Make an older version the config again (a new version itself); its cameras are applied now."""
        try:
            saved = saving().rollback(version, user=principal.name)
        except ConfigError as exc:
            status = 404 if "not kept" in str(exc) else 422
            raise _error(status, "not_found" if status == 404 else "bad_config", redact_text(str(exc))) from exc
        return public(saved, None)

    return router
