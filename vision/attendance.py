"""Is anyone attending? ``customer_unattended`` per waiting customer, ``counter_unstaffed`` per counter zone.

- A customer whose anchor point is in a waiting zone starts a wait. If no interaction has engaged the
  customer after ``unattended_after_s`` of waiting, one event is raised for that track (never twice);
  an interaction that engages the customer ends the wait. A brief exit from the zone (shorter than
  ``grace_s``) or a missed detection does not restart the wait.
- A counter zone with no staff anchor inside it for ``unstaffed_after_s`` while ``open_now`` is true
  raises one event; staff returning re-arms it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from calibration.zones import Anchor, PolygonZone
from vision.interaction import Participant

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UnattendedEvent:
    customer_track: int
    vip_id: str | None
    waited_s: float
    box: tuple[float, float, float, float]
    zone: str
    t_mono: float


@dataclass(frozen=True, slots=True)
class UnstaffedEvent:
    zone: str
    unstaffed_s: float
    t_mono: float


@dataclass(slots=True)
class _Wait:
    since: float
    last_in_zone: float
    zone: str
    alerted: bool = False
    served: bool = False


def _inside(zone: PolygonZone, box: tuple[float, float, float, float]) -> bool:
    return bool(zone.contains(np.asarray([box], np.float32), Anchor.BOTTOM_CENTER)[0])


class WaitingMonitor:
    """Customer waits in the waiting zones of one camera. One thread calls :meth:`update`."""

    def __init__(self, zones: list[PolygonZone], unattended_after_s: float, grace_s: float = 3.0) -> None:
        if unattended_after_s <= 0 or grace_s < 0:
            raise ValueError("unattended_after_s must be > 0 and grace_s >= 0")
        self._zones = zones
        self._after = unattended_after_s
        self._grace = grace_s
        self._waits: dict[int, _Wait] = {}

    def waiting_since(self, track_id: int) -> float | None:
        wait = self._waits.get(track_id)
        return None if wait is None or wait.served else wait.since

    def update(self, customers: list[Participant], engaged: set[int], t: float) -> list[UnattendedEvent]:
        events: list[UnattendedEvent] = []
        for c in customers:
            zone = next((z for z in self._zones if _inside(z, c.box)), None)
            wait = self._waits.get(c.track_id)
            if zone is not None:
                if wait is None:
                    wait = self._waits[c.track_id] = _Wait(t, t, zone.name)
                wait.last_in_zone = t
            if wait is None:
                continue
            if c.track_id in engaged:
                wait.served = True
            if wait.served or wait.alerted:
                continue
            if t - wait.since > self._after:
                wait.alerted = True
                logger.info("customer track %s unattended for %.1f s in %s", c.track_id, t - wait.since, wait.zone)
                events.append(UnattendedEvent(c.track_id, c.person_id, round(t - wait.since, 3), c.box, wait.zone, t))
        for tid, wait in list(self._waits.items()):
            if tid in engaged:
                wait.served = True
            if t - wait.last_in_zone > max(self._grace, self._after if wait.alerted or wait.served else 0.0):
                del self._waits[tid]  # left the zone (or the picture) for good
        return events


@dataclass(slots=True)
class _Counter:
    last_staff: float
    alerted: bool = False


class CounterMonitor:
    """Staff presence per counter zone. ``open_now`` gates the event (opening hours are decided by the caller)."""

    def __init__(self, zones: list[PolygonZone], unstaffed_after_s: float) -> None:
        if unstaffed_after_s <= 0:
            raise ValueError("unstaffed_after_s must be > 0")
        self._zones = zones
        self._after = unstaffed_after_s
        self._state: dict[str, _Counter] = {}

    def update(self, staff: list[Participant], t: float, open_now: bool) -> list[UnstaffedEvent]:
        events: list[UnstaffedEvent] = []
        for zone in self._zones:
            state = self._state.setdefault(zone.name, _Counter(t))
            if not open_now or any(_inside(zone, s.box) for s in staff):
                state.last_staff = t
                state.alerted = False
                continue
            if not state.alerted and t - state.last_staff > self._after:
                state.alerted = True
                events.append(UnstaffedEvent(zone.name, round(t - state.last_staff, 3), t))
        return events
