"""The edge box's FastAPI app: health, metrics, alerts, acks, enrolment and the terminal.

No ``from __future__ import annotations`` here: FastAPI resolves the ``Annotated`` dependency
aliases defined inside :func:`create_app` at runtime.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alerts.cursor import EPOCH_PATTERN, SEQ_LIMIT
from alerts.envelope import Alert
from alerts.ws import Refusal, terminal_router
from edge.api.adaptation import adaptation_public
from edge.api.auth import Authenticator, Gate, GuardFirstRoute, Principal
from edge.api.errors import field_for_code, install_error_handlers
from edge.api.http import bearer_token
from edge.api.limits import FORM_OVERHEAD_BYTES, BodyLimitMiddleware, PhotoSlots, SlotsBusy
from edge.api.pairing import COOKIE as PAIR_COOKIE
from edge.api.pairing import Pairings
from edge.api.pairing_routes import paired_principal, pairing_router
from edge.api.refusals import RefusalLog, RefusalPolicy, flush_every
from edge.api.review import review_router
from edge.api.review_names import names_source
from edge.api.schemas import (
    CameraHealthPublic,
    CameraNotOpenedPublic,
    HealthLive,
    HealthPublic,
    PersonPublic,
    PlateCreate,
    PlatePublic,
    SyncHealthPublic,
    TerminalPeople,
)
from edge.api.visit_shots import visit_shots_router
from edge.calibrate.live_routes import live_router
from edge.calibrate.routes import MAX_SNAPSHOTS, calibrate_router, camera_health
from edge.calibrate.service import CalibrationService
from edge.calibrate.versions import ConfigVersions
from edge.cameras.readers import describe
from edge.errors import EnrolmentError
from edge.faces.enrol import check_consent_covers
from edge.redact import redact_text
from edge.runtime import EdgeRuntime

logger = logging.getLogger(__name__)

ALERT_LIST_HEADERS = {
    "X-Alert-Epoch": {"description": "The store's epoch: seqs compare only within it.", "schema": {"type": "string"}},
    "X-Alert-Last-Seq": {"description": "The log's last seq.", "schema": {"type": "integer"}},
    "X-Alert-Reset": {"description": "true when the caller's epoch or since did not fit this log, so the list "
                                     "starts from the beginning and the caller should drop what it had.",
                      "schema": {"type": "string", "enum": ["true", "false"]}},
}
_IMAGE_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG", "image/png"), (b"RIFF", "image/webp"),
                (b"BM", "image/bmp"))


def create_app(runtime: EdgeRuntime, *, start_cameras: bool = True, config_path: Path | None = None) -> FastAPI:
    """``config_path``: the file the runtime's config was loaded from; the calibration page saves versions of it
    (without it, the page can look but not save)."""
    auth = Authenticator(runtime.config.auth)
    branch_id = runtime.config.branch.id
    server = runtime.config.server
    refusals = RefusalLog(RefusalPolicy(window_s=server.refusal_window_s, burst=server.refusal_burst,
                                        block_s=server.refusal_window_s), runtime.review.audit)
    pairings = Pairings(runtime.store)
    gate = Gate(auth, branch_id, refusals,
                paired=lambda request: paired_principal(pairings, branch_id, request.cookies.get(PAIR_COOKIE)))
    photo_slots = PhotoSlots(server.photo_checks, server.photo_check_wait_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.hub.bind_loop(asyncio.get_running_loop())
        if start_cameras:
            runtime.start()
        flusher = asyncio.create_task(flush_every(refusals, server.refusal_window_s), name="refusal-audit")
        try:
            yield
        finally:
            flusher.cancel()
            await asyncio.to_thread(refusals.flush)

    app = FastAPI(title="smartbranch edge", version="0.1.0", lifespan=lifespan)
    app.router.route_class = GuardFirstRoute  # every route checks its token before its body is read
    install_error_handlers(app)
    upload_bytes = server.max_upload_bytes + FORM_OVERHEAD_BYTES
    app.add_middleware(BodyLimitMiddleware, default_bytes=server.max_body_bytes, routes=app.router.routes,
                       route_limits={"enrol_person": upload_bytes, "add_person_photo": upload_bytes,
                                     "calibrate_lens": MAX_SNAPSHOTS * upload_bytes})

    LobbyManager = Annotated[Principal, Depends(gate.require("lobby_manager"))]
    Enroller = Annotated[Principal, Depends(gate.require("enroller"))]

    def ws_authorize(token: str) -> str | Refusal:
        principal = auth.principal(token)
        if principal is None:
            return Refusal.INVALID
        return principal.name if principal.may("lobby_manager", branch_id) else Refusal.FORBIDDEN

    def ws_authorize_paired(secret: str) -> str | Refusal:
        principal = paired_principal(pairings, branch_id, secret)
        return Refusal.INVALID if principal is None else principal.name

    app.include_router(terminal_router(runtime.hub, ws_authorize, heartbeat_s=server.terminal_heartbeat_s,
                                       cookie=PAIR_COOKIE, authorize_cookie=ws_authorize_paired))
    app.include_router(pairing_router(pairings, gate))
    camera_names = {c.id: c.display_name for c in runtime.config.cameras}
    app.include_router(review_router(runtime.review, gate, tz=runtime.config.branch.tz, clip_key=runtime.clip_key,
                                     names=names_source(runtime.store.list_persons, camera_names)))
    app.include_router(visit_shots_router(runtime.visit_shots, gate,
                                          person_exists=lambda pid: runtime.store.get_person(pid) is not None,
                                          crops=runtime.stranger_crops, store=runtime.store, engine=runtime.engine,
                                          keep_minutes=runtime.config.face.stranger_crops.keep_minutes))
    app.include_router(live_router(runtime, gate, cameras=lambda: runtime.config.cameras,
                                   preview=lambda: runtime.config.preview))
    calibration = None
    if config_path is not None:
        calibration = CalibrationService(ConfigVersions(config_path), apply=runtime.apply_cameras,
                                         audit=runtime.review.audit)
    app.include_router(calibrate_router(gate, service=calibration, config=lambda: runtime.config,
                                        health=lambda: camera_health(runtime)))

    @app.exception_handler(EnrolmentError)
    async def enrolment_error(_: Request, exc: EnrolmentError) -> JSONResponse:
        detail: dict[str, object] = {"code": exc.code, "message": str(exc)}
        field = field_for_code(exc.code)
        if field is not None:
            detail["field"] = field
        if exc.person_id is not None:
            detail["person_id"] = exc.person_id
        if exc.score is not None:
            detail["score"] = round(exc.score, 4)
        return JSONResponse({"detail": detail}, status_code=exc.status)

    @app.exception_handler(SlotsBusy)
    async def photo_checks_busy(_: Request, exc: SlotsBusy) -> JSONResponse:
        return JSONResponse({"detail": {"code": "busy", "message": str(exc)}}, status_code=503,
                            headers={"Retry-After": str(exc.retry_after_s)})

    @app.get("/healthz", response_model=HealthPublic | HealthLive)
    def healthz(request: Request) -> HealthPublic | HealthLive:
        """Liveness for anyone (``status`` only); with a branch_it or admin token, every camera's health."""
        sources = {c.id: describe(c.source) for c in runtime.config.cameras}  # cameras change without a restart
        cameras = [CameraHealthPublic(id=c.camera_id, name=c.name, role=c.role, source=sources[c.camera_id],
                                      state=c.health.state, healthy=c.health.healthy, error=c.health.error,
                                      frames=c.health.frames, dropped=c.health.dropped, processed=c.processed,
                                      reconnects=c.health.reconnects, last_frame_at=c.health.last_frame_at)
                   for c in runtime.camera_status()]
        not_opened = [CameraNotOpenedPublic(id=k, reason=redact_text(v)) for k, v in runtime.not_opened.items()]
        sync = runtime.sync.status() if runtime.sync is not None else None
        sync_broken = sync is not None and sync.state in ("not_registered", "revoked", "error")
        status = "ok" if all(c.healthy for c in cameras) and not not_opened and not sync_broken else "degraded"
        if bearer_token(request) is None:
            return HealthLive(status=status)
        gate.check(request, ("branch_it",), action="health_details")  # 401 or 403 unless it may see them
        sync_public = None if sync is None else SyncHealthPublic(
            state=sync.state, console_url=sync.console_url, branch=sync.branch, gallery_version=sync.version,
            error=redact_text(sync.error) if sync.error else None, last_ok_at=sync.last_ok_at,
            mqtt_connected=sync.mqtt_connected)
        return HealthPublic(status=status, branch_id=branch_id, cameras=cameras, cameras_not_opened=not_opened,
                            gallery_size=len(runtime.gallery), terminals=runtime.hub.client_count, sync=sync_public,
                            adaptation=adaptation_public(runtime.adaptation))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        runtime.camera_status()
        runtime.metrics.terminals.set(runtime.hub.client_count)
        runtime.metrics.gallery_size.set(len(runtime.gallery))
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/alerts", response_model=list[Alert], responses={200: {"headers": ALERT_LIST_HEADERS}})
    def list_alerts(
        _: LobbyManager, response: Response,
        since: Annotated[int, Query(ge=0, lt=SEQ_LIMIT, description="The last seq the caller has.")] = 0,
        limit: Annotated[int, Query(ge=1, le=500, description="At most this many alerts, the newest.")] = 100,
        epoch: Annotated[str | None, Query(pattern=EPOCH_PATTERN, description=(
            "The epoch of ``since``; another epoch, or a since ahead of the log, lists from the start."))] = None,
    ) -> list[Alert]:
        replay = runtime.hub.replay(since, epoch, limit)
        response.headers["X-Alert-Epoch"] = replay.epoch
        response.headers["X-Alert-Last-Seq"] = str(replay.last_seq)
        response.headers["X-Alert-Reset"] = "true" if replay.reset else "false"
        return replay.alerts

    @app.post("/api/alerts/{alert_id}/ack", response_model=Alert)
    def ack_alert(alert_id: str, principal: LobbyManager) -> Alert:
        alert = runtime.hub.ack(alert_id, principal.name)
        if alert is None:
            raise HTTPException(404, {"code": "not_found", "message": f"no alert {alert_id}"})
        return alert

    @app.get("/api/terminal/people", response_model=TerminalPeople)
    def terminal_people(_: LobbyManager) -> TerminalPeople:
        """The names a tablet offers when someone picks who they are for the shift: the branch's staff."""
        names = {p.name for p in runtime.store.list_persons() if p.role == "staff" and p.name.strip()}
        return TerminalPeople(people=sorted(names))

    async def read_upload(photo: UploadFile) -> bytes:
        limit = runtime.enroller.policy.max_bytes
        data = await photo.read(limit + 1)
        if len(data) > limit:
            raise EnrolmentError("too_large", f"the upload exceeds {limit} bytes", 413)
        return data

    @app.post("/api/persons", response_model=PersonPublic, status_code=201)
    async def enrol_person(
        _: Enroller,
        photo: Annotated[UploadFile, File(description="One photo with exactly one face.")],
        name: Annotated[str, Form(max_length=128)],
        tier: Annotated[str, Form(max_length=32)],
        consent: Annotated[str, Form(max_length=2000, description="Consent record: who, when, how.")],
        role: Annotated[str, Form()] = "vip",
        consent_covers: Annotated[list[str] | None, Form(description=(
            "Repeatable: the uses the consent covers besides the enrolment (visit_template: confirmed visits' "
            "live shots may join the person's template)."))] = None,
    ) -> PersonPublic:
        covers = [c for value in consent_covers or () for c in value.split(",")]
        check_consent_covers(covers)  # before the upload is read
        data = await read_upload(photo)
        person = await asyncio.to_thread(photo_slots.run, runtime.enroller.enrol, name=name, tier=tier,
                                         photo=data, consent=consent, role=role, consent_covers=covers)
        return PersonPublic.of(person, photos=1)

    @app.post("/api/persons/{person_id}/photos", response_model=PersonPublic, status_code=201)
    async def add_person_photo(
        person_id: str,
        _: Enroller,
        photo: Annotated[UploadFile, File(description="Another photo of the person, with exactly one face.")],
    ) -> PersonPublic:
        """Add an enrolment photo (at most 5 a person); the gallery entry becomes their mean template."""
        data = await read_upload(photo)
        person = await asyncio.to_thread(photo_slots.run, runtime.enroller.add_photo, person_id=person_id,
                                         photo=data)
        return PersonPublic.of(person, photos=runtime.store.count_person_photos(person.id))

    @app.get("/api/persons", response_model=list[PersonPublic])
    def list_persons(_: Enroller) -> list[PersonPublic]:
        counts = runtime.store.photo_counts()
        return [PersonPublic.of(p, photos=counts.get(p.id, 1)) for p in runtime.store.list_persons()]

    @app.post("/api/persons/{person_id}/plates", response_model=PlatePublic, status_code=201)
    def add_plate(person_id: str, body: PlateCreate, _: Enroller) -> PlatePublic:
        return PlatePublic.of(runtime.plates.register(person_id=person_id, plate=body.plate))

    @app.get("/api/persons/{person_id}/plates", response_model=list[PlatePublic])
    def list_plates(person_id: str, _: Enroller) -> list[PlatePublic]:
        if runtime.store.get_person(person_id) is None:
            raise HTTPException(404, {"code": "not_found", "message": f"no person {person_id}"})
        return [PlatePublic.of(p) for p in runtime.store.list_plates(person_id)]

    @app.delete("/api/persons/{person_id}/plates/{plate}", status_code=204)
    def delete_plate(person_id: str, plate: str, _: Enroller) -> Response:
        if not runtime.plates.remove(person_id=person_id, plate=plate):
            raise HTTPException(404, {"code": "not_found", "message": f"{person_id} has no plate {plate}"})
        return Response(status_code=204)

    @app.get("/api/persons/{person_id}/photo")
    def person_photo(person_id: str, _: LobbyManager) -> Response:
        data = runtime.store.person_photo(person_id)
        if data is None:
            raise HTTPException(404, {"code": "not_found", "message": f"no person {person_id}"})
        media = next((m for magic, m in _IMAGE_MAGIC if data.startswith(magic)), "application/octet-stream")
        return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/snapshots/{snapshot_id}")
    def snapshot(snapshot_id: str, _: LobbyManager) -> Response:
        """The customer crop of a customer_unattended card."""
        data = runtime.store.snapshot(snapshot_id)
        if data is None:
            raise HTTPException(404, {"code": "not_found", "message": f"no snapshot {snapshot_id}"})
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    return app
