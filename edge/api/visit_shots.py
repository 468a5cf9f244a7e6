"""Routes of the live shots that confirmed visits added to VIP templates (edge.faces.visit_shots): list a
person's, and undo one (the template is rebuilt without it; audited). And the lobby tablet's "this was X"
(edge.faces.stranger_crops): the recent unknown faces' crops, each crop's image, and marking one as a VIP."""


from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from alerts.ws import ack_author
from edge.api.auth import Gate, GuardFirstRoute, Principal
from edge.faces.stranger_crops import StrangerCrops, mark_crop
from edge.faces.visit_shots import VisitShot, VisitShots, persons_covering_visit_template
from edge.store.db import Person, Store
from vision.engines.base import FaceEngine

ROLES = ("enroller", "lobby_manager")


class VisitShotPublic(BaseModel):
    """A live shot kept in a VIP's template (its embedding is never shown)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The shot's id; DELETE /api/visit-shots/{id} undoes it.")
    person_id: str = Field(description="The VIP whose template it is part of.")
    alert_id: str = Field(description="The confirmed vip_arrival alert it came from, or the stranger crop a "
                                      "manager marked as this person.")
    quality: float = Field(description="The live face's quality score (0 to 1).")
    score: float = Field(description="Its match score against the template at the time.")
    margin: float = Field(description="Its lead over the runner-up person.")
    confirmed_by: str = Field(description="Who confirmed the visit (「已接待」) or marked the crop (「这是…」).")
    created_at: datetime = Field(description="When it was added.")


def _public(shot: VisitShot) -> VisitShotPublic:
    return VisitShotPublic(id=shot.id, person_id=shot.person_id, alert_id=shot.alert_id, quality=shot.quality,
                           score=shot.score, margin=shot.margin, confirmed_by=shot.confirmed_by,
                           created_at=shot.created_at)


class StrangerCropPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The crop's id.")
    camera_id: str = Field(description="The camera that saw the face.")
    quality: float = Field(description="The face's quality score (0 to 1).")
    created_at: datetime = Field(description="When the unknown track ended.")
    image_url: str = Field(description="The crop's image (PNG); the same token is needed.")


class MarkableVip(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    tier: str


class StrangerCropsPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_minutes: float = Field(description="How long crops are kept; 0: the box keeps none (opt-in).")
    crops: list[StrangerCropPublic] = Field(description="Recent unknown faces, newest first.")
    vips: list[MarkableVip] = Field(description="The VIPs a crop may be marked as: those whose consent covers "
                                                "template improvement from live visits.")


class MarkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: str = Field(min_length=1, max_length=32, description="The VIP the face was.")
    by: str | None = Field(default=None, max_length=256, description="Who marks it, as chosen on the tablet.")


def visit_shots_router(shots: VisitShots, gate: Gate, *, person_exists: Callable[[str], bool],
                       crops: StrangerCrops | None = None, store: Store | None = None,
                       engine: FaceEngine | None = None, keep_minutes: float = 0.0) -> APIRouter:
    router = APIRouter(route_class=GuardFirstRoute, tags=["faces"])
    Reader = Annotated[Principal, Depends(gate.require(*ROLES, action="visit_shots_list"))]
    Undoer = Annotated[Principal, Depends(gate.require(*ROLES, action="visit_shot_undo"))]

    @router.get("/api/persons/{person_id}/visit-shots", response_model=list[VisitShotPublic])
    def list_visit_shots(person_id: str, _: Reader) -> list[VisitShotPublic]:
        if not person_exists(person_id):
            raise HTTPException(404, {"code": "not_found", "message": f"no person {person_id}"})
        return [_public(s) for s in shots.of_person(person_id)]

    @router.delete("/api/visit-shots/{shot_id}", response_model=VisitShotPublic)
    def undo_visit_shot(shot_id: str, principal: Undoer) -> VisitShotPublic:
        shot = shots.undo(shot_id, principal.name)
        if shot is None:
            raise HTTPException(404, {"code": "not_found", "message": f"no visit shot {shot_id}"})
        return _public(shot)

    if crops is not None and store is not None and engine is not None:
        _crop_routes(router, gate, crops, shots, store, engine, keep_minutes)
    return router


def _markable(store: Store) -> list[MarkableVip]:
    people: list[Person] = [p for p in store.list_persons() if p.role == "vip"]
    covered = persons_covering_visit_template(store)  # one query, not one per VIP at every tablet's poll
    return [MarkableVip(id=p.id, name=p.name, tier=p.tier) for p in people if p.id in covered]


def _crop_routes(router: APIRouter, gate: Gate, crops: StrangerCrops, shots: VisitShots, store: Store,
                 engine: FaceEngine, keep_minutes: float) -> None:
    Lister = Annotated[Principal, Depends(gate.require(*ROLES, action="stranger_crops_list"))]
    Viewer = Annotated[Principal, Depends(gate.require(*ROLES, action="stranger_crop_view"))]
    Marker = Annotated[Principal, Depends(gate.require(*ROLES, action="stranger_crop_mark"))]

    @router.get("/api/stranger-crops", response_model=StrangerCropsPublic)
    def list_stranger_crops(_: Lister) -> StrangerCropsPublic:
        listed = [StrangerCropPublic(id=c.id, camera_id=c.camera_id, quality=c.quality, created_at=c.created_at,
                                     image_url=f"/api/stranger-crops/{c.id}/image") for c in crops.recent()]
        return StrangerCropsPublic(keep_minutes=keep_minutes, crops=listed, vips=_markable(store) if listed else [])

    @router.get("/api/stranger-crops/{crop_id}/image")
    def stranger_crop_image(crop_id: str, _: Viewer) -> Response:
        data = crops.image(crop_id)
        if data is None:
            raise HTTPException(404, {"code": "not_found", "message": f"no stranger crop {crop_id} (or it expired)"})
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    @router.post("/api/stranger-crops/{crop_id}/mark", response_model=VisitShotPublic, status_code=201)
    def mark_stranger_crop(crop_id: str, body: MarkIn, principal: Marker) -> VisitShotPublic:
        if store.get_person(body.person_id) is None:
            raise HTTPException(404, {"code": "not_found", "message": f"no person {body.person_id}"})
        outcome = mark_crop(crops, shots, engine, crop_id=crop_id, person_id=body.person_id,
                            by=ack_author(body.by, principal.name))
        if outcome is None:
            raise HTTPException(404, {"code": "not_found", "message": f"no stranger crop {crop_id} (or it expired)"})
        if outcome.shot is None:
            raise HTTPException(409, {"code": "shot_refused", "message": outcome.reason or "refused"})
        return _public(outcome.shot)
