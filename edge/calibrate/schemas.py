"""Request and response bodies of the calibration API (``XCreate`` in, ``XPublic`` out)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CameraSave(_In):
    camera: dict[str, Any] = Field(description="The camera's whole config entry, as cameras[] in the YAML; "
                                               "validated by the same model the service loads with.")
    summary: str = Field(default="", max_length=200, description="What changed, for the version list and audit.")


class FloorFitCreate(_In):
    image_points: list[tuple[float, float]] = Field(description="Clicked image pixels, in order.")
    floor_points: list[tuple[float, float]] = Field(description="The same marks on the floor, in metres.")
    camera_id: str | None = Field(default=None, description="Project this camera's zones onto the floor.")


class HealthPublic(BaseModel):
    state: str = Field(description="ok, connecting, reconnecting, ended, stopped, disabled or not_opened.")
    healthy: bool = Field(description="Frames arrive.")
    error: str | None = Field(default=None, description="Why not, credentials redacted.")
    frames: int = Field(default=0, description="Frames read.")
    processed: int = Field(default=0, description="Frames the pipeline processed.")


class CameraPublic(BaseModel):
    id: str = Field(description="Camera id.")
    config: dict[str, Any] = Field(description="Its config entry (JSON).")
    health: HealthPublic = Field(description="Its reader's health now.")


class SavedPublic(BaseModel):
    version: int = Field(description="The config version this save wrote.")
    changed: list[str] = Field(description="Cameras rebuilt in the running service.")
    camera: dict[str, Any] | None = Field(default=None, description="The saved camera entry.")
    diff: str = Field(description="Unified diff of the config file.")


class VersionPublic(BaseModel):
    version: int = Field(description="Version number (higher is newer).")
    at: str = Field(description="When it was saved (ISO 8601, UTC).")
    user: str = Field(description="Who saved it ('' for a state recorded by the box).")
    summary: str = Field(description="What changed.")
    diff: str | None = Field(default=None, description="Unified diff against the version before (detail only).")
    current: bool = Field(default=False, description="The config file holds this version now.")
