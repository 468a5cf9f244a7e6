"""Routes of the live shots that confirmed visits added to VIP templates (edge.faces.visit_shots): list a
person's, and undo one (the template is rebuilt without it; audited)."""


from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from edge.api.auth import Gate, GuardFirstRoute, Principal
from edge.faces.visit_shots import VisitShot, VisitShots

ROLES = ("enroller", "lobby_manager")


class VisitShotPublic(BaseModel):
    """A live shot kept in a VIP's template (its embedding is never shown)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The shot's id; DELETE /api/visit-shots/{id} undoes it.")
    person_id: str = Field(description="The VIP whose template it is part of.")
    alert_id: str = Field(description="The confirmed vip_arrival alert it came from.")
    quality: float = Field(description="The live face's quality score (0 to 1).")
    score: float = Field(description="Its match score against the template at the time.")
    margin: float = Field(description="Its lead over the runner-up person.")
    confirmed_by: str = Field(description="Who confirmed the visit (「已接待」).")
    created_at: datetime = Field(description="When it was added.")


def _public(shot: VisitShot) -> VisitShotPublic:
    return VisitShotPublic(id=shot.id, person_id=shot.person_id, alert_id=shot.alert_id, quality=shot.quality,
                           score=shot.score, margin=shot.margin, confirmed_by=shot.confirmed_by,
                           created_at=shot.created_at)


def visit_shots_router(shots: VisitShots, gate: Gate, *, person_exists: Callable[[str], bool]) -> APIRouter:
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

    return router
