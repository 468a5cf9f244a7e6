"""Public API schemas of the edge box."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from edge.store import Person


class PersonPublic(BaseModel):
    id: str = Field(description="Person id.")
    name: str = Field(description="Display name.")
    tier: str = Field(description="VIP tier or staff grade.")
    role: str = Field(description="vip or staff.")
    model_id: str = Field(description="Face model the gallery entry was made with.")
    created_at: datetime = Field(description="Enrolment time (UTC).")
    photo_url: str = Field(description="Enrolment photo (needs a token).")

    @classmethod
    def of(cls, person: Person) -> PersonPublic:
        return cls(id=person.id, name=person.name, tier=person.tier, role=person.role,
                   model_id=person.model_id, created_at=person.created_at,
                   photo_url=f"/api/persons/{person.id}/photo")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable reason.")
    message: str = Field(description="Human-readable reason.")


class CameraHealthPublic(BaseModel):
    id: str
    name: str
    role: str
    state: str
    healthy: bool
    error: str | None
    frames: int
    dropped: int
    processed: int
    reconnects: int
    last_frame_at: datetime | None


class HealthPublic(BaseModel):
    status: str = Field(description="ok, or degraded when a camera is unhealthy.")
    branch_id: str
    cameras: list[CameraHealthPublic]
    gallery_size: int
    terminals: int
