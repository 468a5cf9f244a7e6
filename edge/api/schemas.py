"""Public API schemas of the edge box."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from edge.store.db import Person, Plate


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
    id: str = Field(description="Camera id.")
    name: str = Field(description="Camera name.")
    role: str = Field(description="entrance, lobby, counter or parking.")
    source: str = Field(description="The camera's source URL with its credentials redacted.")
    state: str = Field(description="starting (opened, no frame yet), ok, stalled (no frame within the time-out), "
                                   "reconnecting, invalid (a file that is not a video), ended or stopped.")
    healthy: bool = Field(description="True while starting, ok, or ended after frames.")
    error: str | None = Field(description="Why it is unhealthy (credentials redacted).")
    frames: int = Field(description="Frames read.")
    dropped: int = Field(description="Frames dropped because a newer one came first.")
    processed: int = Field(description="Frames the pipeline processed.")
    reconnects: int = Field(description="Failed opens and reads so far.")
    last_frame_at: datetime | None = Field(description="When the last frame was read (UTC).")


class CameraNotOpenedPublic(BaseModel):
    id: str = Field(description="Camera id.")
    reason: str = Field(description="Why the camera could not be opened (e.g. a model pack is missing).")


class HealthLive(BaseModel):
    """What ``/healthz`` tells a caller without a token: liveness, nothing about cameras."""

    model_config = ConfigDict(extra="forbid")

    status: str = Field(description="ok, or degraded when a camera is unhealthy or could not be opened.")


class SyncHealthPublic(BaseModel):
    """The sync with the central console, as ``/healthz`` shows it."""

    model_config = ConfigDict(extra="forbid")

    state: str = Field(description="not_registered, starting, ok, retrying (console not reached), revoked (the "
                                   "console refused the token) or error.")
    console_url: str | None
    branch: str | None = Field(description="The console branch code this box joined.")
    gallery_version: int = Field(description="The console gallery version applied here.")
    error: str | None
    last_ok_at: datetime | None
    mqtt_connected: bool | None = Field(description="None when no MQTT broker is configured.")


class AdaptationHealthPublic(BaseModel):
    """The face population adaptation (edge.faces.adapt) as branch IT sees it."""

    model_config = ConfigDict(extra="forbid")

    learning: bool = Field(description="Whether live faces are added to the population's aggregates.")
    applied: bool = Field(description="Whether faces are compared in the fitted population space now.")
    faces_seen: int = Field(description="Live faces in the aggregates.")
    version: int = Field(description="Refits made so far (0: none yet).")
    digest: str | None = Field(default=None, description="The transform in use; None while unadapted.")
    reason: str | None = Field(default=None, description="Why the box is unadapted; None while adapted.")
    fitted_at: datetime | None = Field(default=None, description="When the last transform was fitted.")
    fpir_before: float | None = Field(default=None, description="The guard's estimated stranger match rate at the "
                                                                "calibrated threshold, unadapted.")
    fpir_after: float | None = Field(default=None, description="The same estimate, adapted.")
    branch: str = Field(default="unadapted", description="What the last fit chose: unadapted (the population sits "
                                                         "like the model's native one, or too few faces), centre "
                                                         "or whiten.")
    stranger_pair_rate: float | None = Field(default=None, description="The choice's estimate: how often two "
                                                                       "strangers would match at the threshold.")
    source: str = Field(default="own", description="Whose faces the fit in use was made from: own (this box's), or "
                                                   "region+own (the region's merged aggregates from the console, "
                                                   "face.adaptation.region_prior, with this box's own).")
    region_faces: int = Field(default=0, description="Faces of the region prior in that fit (0 with source own).")


class HealthPublic(BaseModel):
    """``/healthz`` for a branch_it or admin token: every camera's health."""

    model_config = ConfigDict(extra="forbid")

    status: str = Field(description="ok, or degraded when a camera is unhealthy or could not be opened.")
    branch_id: str
    cameras: list[CameraHealthPublic]
    cameras_not_opened: list[CameraNotOpenedPublic] = Field(default_factory=list,
                                                            description="Enabled cameras that are not running.")
    gallery_size: int
    terminals: int
    sync: SyncHealthPublic | None = Field(default=None, description="None when sync.console_url is not set.")
    adaptation: AdaptationHealthPublic | None = Field(default=None,
                                                      description="The face population adaptation.")


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


class TerminalPeople(BaseModel):
    """Who may be named on an acknowledgement: picked on the tablet once per shift."""

    people: list[str] = Field(description="The branch's enrolled staff, by name, sorted.")
