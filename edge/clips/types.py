"""Records shared by the counter pipeline, the clip writer and the review store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ClipParticipants:
    """Who a clip (or an interaction) is about."""

    interaction_id: str
    camera_id: str
    staff_track: int
    customer_track: int
    staff_id: str | None = None  # None: staff by the staff zone, identity unknown
    vip_id: str | None = None  # the customer's VIP id, if the customer is an enrolled VIP


@dataclass(frozen=True, slots=True)
class ClipWritten:
    """A finished, closed clip file on disk."""

    clip_id: str
    participants: ClipParticipants
    path: Path  # absolute; the file is encrypted (vault.clip_file)
    sha256: str  # of the plaintext MP4 (what the review API serves), not of the encrypted file
    size_bytes: int  # of the plaintext MP4
    started_at: datetime  # capture time (UTC) of the first frame, pre-roll included
    ended_at: datetime  # capture time (UTC) of the last frame, post-roll included
    duration_s: float  # ended_at - started_at, from the frames' monotonic times
    frames: int
    pre_roll_frames: int  # frames taken from the ring buffer before the interaction started
    dropped_frames: int = 0  # frames the encoder could not keep up with (bounded queue, drop newest)


@dataclass(frozen=True, slots=True)
class InteractionRecord:
    """One service episode as stored for statistics and review."""

    participants: ClipParticipants
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    wait_s: float | None  # how long the customer waited in a waiting zone before service; None: not waiting
    interrupted: bool = False  # the process was killed during it: ended_at is the last time it was seen
