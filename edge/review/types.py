"""Records and errors of the review store: frozen dataclasses handed out instead of ORM rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

from edge.clips.types import ClipParticipants
from edge.errors import EdgeError

VerdictValue = Literal["compliant", "violation", "needs_follow_up"]
VERDICTS: tuple[str, ...] = get_args(VerdictValue)


class ReviewError(EdgeError):
    """A review-store request that cannot be carried out; nothing was written."""


class UnknownClipError(ReviewError):
    pass


class UnknownInteractionError(ReviewError):
    pass


class DuplicateRecordError(ReviewError):
    """A clip or interaction id that is already stored."""


class ClipExpiredError(ReviewError):
    """The clip's file was deleted by retention; it can no longer be held."""


@dataclass(frozen=True, slots=True)
class Verdict:
    id: int
    clip_id: str
    verdict: str
    notes: str
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Clip:
    id: str
    participants: ClipParticipants
    path: Path
    sha256: str
    size_bytes: int
    started_at: datetime
    ended_at: datetime
    duration_s: float
    frames: int
    pre_roll_frames: int
    dropped_frames: int
    created_at: datetime
    hold: bool
    hold_by: str | None
    hold_at: datetime | None
    expired_at: datetime | None
    verdict: Verdict | None  # the current (latest) verdict

    @property
    def expired(self) -> bool:
        return self.expired_at is not None


@dataclass(frozen=True, slots=True)
class UnattendedRecord:
    id: int
    camera_id: str
    customer_track: int
    vip_id: str | None
    zone: str
    waited_s: float
    at: datetime
    alert_id: str | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    clip_id: str | None
    outcome: str
    detail: str
