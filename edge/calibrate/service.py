"""Saving calibration: one camera's settings written as a new config version, applied to the running camera,
and audited.

A save is checked twice before anything is written: the camera against :class:`CameraConfig`, then the whole
file against :class:`EdgeConfig` (the models the service loads with). Then the file is replaced atomically as
a new version (:mod:`edge.calibrate.versions`), the changed cameras are rebuilt in the running service (no
restart), and the audit log gets the user, the summary and the diff. A refused save writes nothing and is
audited as refused. A rollback is the same, with an older version's text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from calibration.errors import CalibrationError
from calibration.zones import PolygonZone
from edge.calibrate.camera_yaml import set_camera
from edge.calibrate.versions import ConfigVersions, SaveResult
from edge.cameras.config import CameraConfig
from edge.config import EdgeConfig, load_config
from edge.errors import ConfigError
from edge.redact import redact_text

logger = logging.getLogger(__name__)

AUDIT_DETAIL_CHARS = 2000


class Audit(Protocol):
    def __call__(self, *, actor: str, action: str, clip_id: str | None, outcome: str, detail: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Saved:
    version: int
    changed: list[str]  # camera ids rebuilt in the running service
    config: EdgeConfig
    diff: str


def check_zones(camera: CameraConfig) -> None:
    """Refuse a face or plate-entry zone that is not a usable polygon (the counter zones check themselves)."""
    if camera.zone is not None:
        try:
            PolygonZone(f"{camera.id}-zone", tuple(camera.zone))
        except CalibrationError as exc:
            raise ConfigError(f"cameras.{camera.id}.zone: {exc}") from exc


class CalibrationService:
    """Owns the config's versions; ``apply`` takes a new config's cameras into the running service."""

    def __init__(self, versions: ConfigVersions, *, apply: Callable[[EdgeConfig], list[str]], audit: Audit) -> None:
        self.versions = versions
        self._apply = apply
        self._audit = audit

    def save_camera(self, camera: CameraConfig, *, user: str, summary: str, new: bool = False) -> Saved:
        """Write ``camera`` (replacing the camera with its id; ``new``: it must not exist yet)."""
        check_zones(camera)
        exists = any(c.id == camera.id for c in self.current().cameras)
        if new and exists:
            raise ConfigError(f"a camera with id {camera.id!r} already exists")
        if not new and not exists:
            raise ConfigError(f"there is no camera {camera.id!r} to change")
        entry: dict[str, Any] = camera.model_dump(mode="json", exclude_defaults=True)
        entry = {"id": camera.id, "role": camera.role, **entry}  # required keys first, always written
        what = f"{camera.id}: {summary}"
        try:
            result = self.versions.save(set_camera(self.versions.current_text(), entry), user=user, summary=what)
        except ConfigError as exc:
            self._audit(actor=user, action="calibration_save", clip_id=None, outcome="refused",
                        detail=f"{what}: {exc}"[:AUDIT_DETAIL_CHARS])
            raise
        return self._applied(result, user=user, action="calibration_save", what=what)

    def rollback(self, version: int, *, user: str) -> Saved:
        result = self.versions.rollback(version, user=user)
        return self._applied(result, user=user, action="calibration_rollback", what=f"rollback to version {version}")

    def current(self) -> EdgeConfig:
        """The config file as it is now (it may have been edited by hand since the service started)."""
        return load_config(self.versions.path)

    def _applied(self, result: SaveResult, *, user: str, action: str, what: str) -> Saved:
        changed = self._apply(result.config)
        diff = redact_text(result.diff)  # camera passwords never reach the audit log or the page
        detail = f"version {result.version}: {what}; cameras applied: {', '.join(changed) or 'none'}\n{diff}"
        self._audit(actor=user, action=action, clip_id=None, outcome="saved", detail=detail[:AUDIT_DETAIL_CHARS])
        logger.info("calibration %s by %s: version %s, cameras applied %s", action, user, result.version, changed)
        return Saved(result.version, changed, result.config, diff)
