"""Rules turn identity decisions into alerts. ``vip_arrival``: once per visit, with a cooldown."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from alerts.envelope import Alert, AlertDraft, AlertType, VipArrivalPayload
from edge.faces.config import VipArrivalRuleConfig
from edge.faces.tracks import LiveShot
from edge.store.db import Person
from vision.types import Match

logger = logging.getLogger(__name__)

VIP_ARRIVAL_TITLE = "VIP 到店"


@dataclass(frozen=True, slots=True)
class Sighting:
    """A track decided as a person on one camera."""

    camera_id: str
    camera_name: str
    track_id: int
    match: Match
    first_seen_at: datetime
    captured_at: datetime
    t_mono: float
    shot: LiveShot | None = None  # the track's best shot of the person, for a visit a manager may confirm


class VipArrivalRule:
    """Shared by every camera of the branch, so a VIP seen by two cameras is one visit."""

    def __init__(self, config: VipArrivalRuleConfig, *, branch_id: str,
                 lookup: Callable[[str], Person | None], publish: Callable[[AlertDraft], Alert]) -> None:
        self._config = config
        self._branch_id = branch_id
        self._lookup = lookup
        self._publish = publish
        self._last_seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Sighting, Alert], None]] = []

    def add_listener(self, listener: Callable[[Sighting, Alert], None]) -> None:
        """Call ``listener`` with each sighting that became a VIP arrival alert, and the alert (visit shots)."""
        self._listeners.append(listener)

    def seen(self, person_id: str, t_mono: float) -> None:
        """Keep a visit open while the person stays in view."""
        with self._lock:
            if person_id in self._last_seen:
                self._last_seen[person_id] = max(self._last_seen[person_id], t_mono)

    def identified(self, sighting: Sighting) -> Alert | None:
        person_id = sighting.match.person_id
        if person_id is None:
            return None
        person = self._lookup(person_id)
        if person is None or person.role != "vip":
            return None
        with self._lock:
            last = self._last_seen.get(person_id)
            self._last_seen[person_id] = sighting.t_mono
            if last is not None and sighting.t_mono - last <= self._config.cooldown_s:
                logger.debug("vip %s still on the same visit; no alert", person_id)
                return None
        draft = AlertDraft(
            type=AlertType.VIP_ARRIVAL, branch_id=self._branch_id, camera_id=sighting.camera_id,
            person_id=person.id, title=VIP_ARRIVAL_TITLE, captured_at=sighting.captured_at,
            payload=VipArrivalPayload(
                person_id=person.id, name=person.name, tier=person.tier,
                photo_url=f"/api/persons/{person.id}/photo", score=sighting.match.score,
                margin=sighting.match.margin, votes=sighting.match.votes, track_id=sighting.track_id,
                camera_name=sighting.camera_name, first_seen_at=sighting.first_seen_at))
        alert = self._publish(draft)
        for listener in self._listeners:
            try:
                listener(sighting, alert)
            except Exception:  # a listener must never lose the alert
                logger.exception("vip arrival listener failed")
        return alert
