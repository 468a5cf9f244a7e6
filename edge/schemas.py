"""Public API schemas of the edge box."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from edge.store import Person, Plate


class PersonPublic(BaseModel):
    id: str = Field(description="Person id.")
    name: str = Field(description="Display name.")
    tier: str = Field(description="VIP tier or staff grade.")
    role: str = Field(description="vip or staff.")
    model_id: str = Field(description="Face model the gallery entry was made with.")
    created_at: datetime = Field(description="Enrolment time (UTC).")
    photo_url: str = Field(description="Enrolment photo (needs a token).")
    photos: int = Field(description="Enrolment photos (the first included, at most 5); the gallery holds "
                                    "the L2-normalised mean of their embeddings.")

    @classmethod
    def of(cls, person: Person, *, photos: int) -> PersonPublic:
        return cls(id=person.id, name=person.name, tier=person.tier, role=person.role,
                   model_id=person.model_id, created_at=person.created_at,
                   photo_url=f"/api/persons/{person.id}/photo", photos=photos)


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


class CameraNotOpenedPublic(BaseModel):
    id: str = Field(description="Camera id.")
    reason: str = Field(description="Why the camera could not be opened (e.g. a model pack is missing).")


class HealthPublic(BaseModel):
    status: str = Field(description="ok, or degraded when a camera is unhealthy or could not be opened.")
    branch_id: str
    cameras: list[CameraHealthPublic]
    cameras_not_opened: list[CameraNotOpenedPublic] = Field(default_factory=list,
                                                            description="Enabled cameras that are not running.")
    gallery_size: int
    terminals: int


class PlateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plate: str = Field(min_length=1, max_length=32,
                       description="Plate text, e.g. 皖A12345 or 皖A·D12345; separators, spaces and full-width "
                                   "characters are normalised, then the plate is checked against GA 36.")


class PlatePublic(BaseModel):
    id: str = Field(description="Plate registration id.")
    person_id: str = Field(description="Owner.")
    plate: str = Field(description="Normalised plate text.")
    kind: str = Field(description="Plate kind: ordinary, new_energy_small, police, …")
    created_at: datetime = Field(description="When it was registered (UTC).")

    @classmethod
    def of(cls, plate: Plate) -> PlatePublic:
        return cls(id=plate.id, person_id=plate.person_id, plate=plate.plate, kind=plate.kind,
                   created_at=plate.created_at)
