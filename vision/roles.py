"""Staff versus customer, per person track.

Rules, tried in the configured order; the first that decides wins, and no decision means customer:

- ``gallery``: a person matched to the staff gallery is staff; one matched as a VIP is a customer
  (and keeps the VIP identity); an unknown face decides nothing.
- ``zone``: a person whose anchor point (bottom centre of the box) has stayed inside the staff-only
  zone for ``zone_dwell_s`` is staff, even with the face unseen; otherwise it decides nothing.

A staff decision is kept for the life of the track (a clerk who walks round the counter stays staff).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np

from calibration.zones import Anchor, PolygonZone

logger = logging.getLogger(__name__)

RoleRule = Literal["gallery", "zone"]


class Role(StrEnum):
    STAFF = "staff"
    CUSTOMER = "customer"


@dataclass(frozen=True, slots=True)
class RolePolicy:
    order: tuple[RoleRule, ...] = ("gallery", "zone")
    staff_zone: PolygonZone | None = None
    zone_dwell_s: float = 2.0

    def __post_init__(self) -> None:
        if len(set(self.order)) != len(self.order) or not set(self.order) <= {"gallery", "zone"}:
            raise ValueError(f"rule order must list 'gallery' and/or 'zone' once each, got {self.order}")
        if self.zone_dwell_s < 0:
            raise ValueError(f"zone_dwell_s must be >= 0, got {self.zone_dwell_s}")


@dataclass(frozen=True, slots=True)
class RoleDecision:
    role: Role
    reason: Literal["gallery", "zone", "default"]
    vip_id: str | None = None


@dataclass(slots=True)
class _ZoneState:
    inside_since: float | None = None
    staff: RoleDecision | None = None


class RoleAssigner:
    """Decides each person track's role. One thread calls :meth:`assign`; :meth:`forget` ends a track."""

    def __init__(self, policy: RolePolicy) -> None:
        self._policy = policy
        self._state: dict[int, _ZoneState] = {}

    def assign(self, track_id: int, box: tuple[float, float, float, float], gallery_role: str | None,
               person_id: str | None, t: float) -> RoleDecision:
        """``gallery_role`` is the matched person's enrolled role ('staff', 'vip', ...) or None if unknown."""
        state = self._state.setdefault(track_id, _ZoneState())
        in_zone = self._dwelt(state, box, t)
        if state.staff is not None:
            return state.staff
        vip = person_id if gallery_role == "vip" else None
        for rule in self._policy.order:
            decision: RoleDecision | None = None
            if rule == "gallery" and gallery_role is not None:
                decision = (RoleDecision(Role.STAFF, "gallery") if gallery_role == "staff"
                            else RoleDecision(Role.CUSTOMER, "gallery", vip))
            elif rule == "zone" and in_zone:
                decision = RoleDecision(Role.STAFF, "zone")
            if decision is not None:
                if decision.role is Role.STAFF:
                    logger.debug("track %s is staff by %s", track_id, decision.reason)
                    state.staff = decision
                return decision
        return RoleDecision(Role.CUSTOMER, "default", vip)

    def forget(self, track_id: int) -> None:
        self._state.pop(track_id, None)

    def _dwelt(self, state: _ZoneState, box: tuple[float, float, float, float], t: float) -> bool:
        zone = self._policy.staff_zone
        if zone is None:
            return False
        inside = bool(zone.contains(np.asarray([box], np.float32), Anchor.BOTTOM_CENTER)[0])
        if not inside:
            state.inside_since = None
            return False
        if state.inside_since is None:
            state.inside_since = t
        return t - state.inside_since >= self._policy.zone_dwell_s
