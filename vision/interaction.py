"""Service interactions: a staff track and a customer track near each other for long enough.

Floor distance between two people:

- **calibrated camera**: the bottom centre of each person box (the feet) through the camera's
  image-to-floor homography, then the Euclidean distance in metres;
- **uncalibrated (head-size proxy)**: a pinhole model. A head is ``head_width_m`` (0.16 m) wide, so
  a head ``h`` pixels wide is at depth ``Z = f * head_width_m / h`` and lateral offset
  ``X = (u - cx) * Z / f``, where ``u`` is the head centre, ``cx`` the image centre and ``f`` the focal
  length in pixels (``focal_px``; default: the image width / 2, a 90 degree horizontal view). The head
  is the associated face box when there is one, else the top of the person box, ``head_to_box_width``
  (0.35) of its width. The distance is ``hypot(X1 - X2, Z1 - Z2)``. It is rough (about ±30 %): set
  ``max_distance_m`` with margin, or calibrate the floor.

Hysteresis, so that jitter or a brief occlusion does not split one service: a pair becomes *near*
within ``max_distance_m`` and stays near until beyond ``max_distance_m * release_ratio``; it starts
once near for ``start_after_s`` (the start time is when it became near) and ends once not near — apart,
or one of the two unseen — for ``end_after_s`` (the end time is the last moment it was near).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

import numpy as np

from calibration.homography import FloorHomography
from vision.types import Interaction

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class InteractionPolicy:
    max_distance_m: float = 1.5
    release_ratio: float = 1.3
    start_after_s: float = 3.0
    end_after_s: float = 5.0
    head_width_m: float = 0.16
    head_to_box_width: float = 0.35
    focal_px: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_distance_m", "head_width_m", "head_to_box_width"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.release_ratio < 1:
            raise ValueError(f"release_ratio must be >= 1, got {self.release_ratio}")
        if self.start_after_s < 0 or self.end_after_s < 0:
            raise ValueError("start_after_s and end_after_s must be >= 0")
        if self.focal_px is not None and not self.focal_px > 0:
            raise ValueError(f"focal_px must be > 0, got {self.focal_px}")


@dataclass(frozen=True, slots=True)
class Participant:
    """One person in one frame, as the interaction logic needs it."""

    track_id: int
    role: Literal["staff", "customer"]
    box: Box
    face_box: Box | None = None
    person_id: str | None = None  # staff id, or VIP id for a customer


def _valid(box: Box) -> bool:
    return all(math.isfinite(v) for v in box) and box[2] > box[0] and box[3] > box[1]


def head_position(p: Participant, policy: InteractionPolicy, image_width: int) -> tuple[float, float]:
    """(X, Z) in metres of the head in camera coordinates, by the head-size proxy."""
    if p.face_box is not None and _valid(p.face_box):
        u = (p.face_box[0] + p.face_box[2]) / 2
        head_px = p.face_box[2] - p.face_box[0]
    else:
        u = (p.box[0] + p.box[2]) / 2
        head_px = (p.box[2] - p.box[0]) * policy.head_to_box_width
    focal = policy.focal_px if policy.focal_px is not None else image_width / 2
    depth = focal * policy.head_width_m / max(head_px, 1.0)
    return (u - image_width / 2) * depth / focal, depth


def floor_distance(a: Participant, b: Participant, policy: InteractionPolicy, image_width: int,
                   homography: FloorHomography | None = None) -> float:
    """Metres between two people (homography when given, else the head-size proxy); inf for a bad box."""
    if image_width <= 0 or not (_valid(a.box) and _valid(b.box)):
        return math.inf
    if homography is not None:
        feet = np.array([[(a.box[0] + a.box[2]) / 2, a.box[3]], [(b.box[0] + b.box[2]) / 2, b.box[3]]])
        floor = homography.to_floor(feet)
        return float(np.linalg.norm(floor[0] - floor[1]))
    ax, az = head_position(a, policy, image_width)
    bx, bz = head_position(b, policy, image_width)
    return math.hypot(ax - bx, az - bz)


@dataclass(slots=True)
class _Pair:
    near_since: float
    near_since_at: datetime
    last_near: float
    last_near_at: datetime
    near: bool = True
    started: Interaction | None = None


@dataclass(frozen=True, slots=True)
class InteractionEvent:
    kind: Literal["started", "ended"]
    interaction: Interaction
    t_mono: float


class InteractionDetector:
    """Follows every staff-customer pair of one camera. One thread calls :meth:`update`."""

    def __init__(self, camera_id: str, policy: InteractionPolicy, homography: FloorHomography | None = None) -> None:
        self._camera_id = camera_id
        self._policy = policy
        self._homography = homography
        self._pairs: dict[tuple[int, int], _Pair] = {}
        self._people: dict[int, Participant] = {}

    @property
    def active(self) -> list[Interaction]:
        return [p.started for p in self._pairs.values() if p.started is not None]

    def engaged(self, customer_track: int) -> bool:
        """Whether the customer is in a started interaction now."""
        return any(k[1] == customer_track and p.started is not None for k, p in self._pairs.items())

    def update(self, people: list[Participant], image_width: int, t: float, at: datetime) -> list[InteractionEvent]:
        """One frame's people at monotonic ``t`` (capture time ``at``); return the starts and ends it caused."""
        events: list[InteractionEvent] = []
        staff = [p for p in people if p.role == "staff"]
        customers = [p for p in people if p.role == "customer"]
        for p in people:
            self._people[p.track_id] = p
        seen: set[tuple[int, int]] = set()
        for s in staff:
            for c in customers:
                if s.track_id == c.track_id:
                    continue
                key = (s.track_id, c.track_id)
                distance = floor_distance(s, c, self._policy, image_width, self._homography)
                pair = self._pairs.get(key)
                limit = self._policy.max_distance_m * (self._policy.release_ratio if pair and pair.near else 1.0)
                if distance > limit:
                    if pair is not None:
                        pair.near = False
                    continue
                seen.add(key)
                if pair is None:
                    self._pairs[key] = _Pair(t, at, t, at)
                    continue
                if not pair.near and pair.started is None:
                    pair.near_since, pair.near_since_at = t, at  # a fresh approach before any start
                pair.near, pair.last_near, pair.last_near_at = True, t, at
        for key, pair in list(self._pairs.items()):
            if key not in seen:
                pair.near = False
            if pair.near and pair.started is None and t - pair.near_since >= self._policy.start_after_s:
                pair.started = self._interaction(key, pair)
                events.append(InteractionEvent("started", pair.started, t))
            elif not pair.near and t - pair.last_near >= self._policy.end_after_s:
                del self._pairs[key]
                if pair.started is not None:
                    ended = replace(pair.started, ended_at=pair.last_near_at,
                                    duration_s=round(pair.last_near - pair.near_since, 3))
                    events.append(InteractionEvent("ended", ended, t))
        return events

    def flush(self, t: float) -> list[InteractionEvent]:
        """End every started interaction (the source ended)."""
        events = []
        for key, pair in list(self._pairs.items()):
            del self._pairs[key]
            if pair.started is not None:
                ended = replace(pair.started, ended_at=pair.last_near_at,
                                duration_s=round(pair.last_near - pair.near_since, 3))
                events.append(InteractionEvent("ended", ended, t))
        return events

    def _interaction(self, key: tuple[int, int], pair: _Pair) -> Interaction:
        staff, customer = self._people[key[0]], self._people[key[1]]
        return Interaction(staff_id=staff.person_id, customer_track=key[1], started_at=pair.near_since_at,
                           ended_at=None, camera_id=self._camera_id, staff_track=key[0],
                           vip_id=customer.person_id)
