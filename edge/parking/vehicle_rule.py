"""``vip_vehicle_arrival``: a registered VIP plate was read on a parking camera; once per plate per cooldown."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from alerts.envelope import Alert, AlertDraft, AlertType, DriverFace, VipVehicleArrivalPayload
from edge.parking.config import VipVehicleRuleConfig
from edge.store.db import Person
from vision.plates.matcher import PlateMatch
from vision.plates.voting import VoteResult

logger = logging.getLogger(__name__)

VIP_VEHICLE_TITLE = "VIP 车辆到达"


@dataclass(frozen=True, slots=True)
class VehicleSighting:
    """A plate track decided on one camera and matched to a registered plate."""

    camera_id: str
    camera_name: str
    track_id: int
    vote: VoteResult
    match: PlateMatch
    color: str | None
    first_seen_at: datetime
    captured_at: datetime
    t_mono: float
    driver_face: DriverFace | None = None


class VipVehicleRule:
    def __init__(self, config: VipVehicleRuleConfig, *, branch_id: str,
                 lookup: Callable[[str], Person | None], publish: Callable[[AlertDraft], Alert]) -> None:
        self._config = config
        self._branch_id = branch_id
        self._lookup = lookup
        self._publish = publish
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def decided(self, sighting: VehicleSighting) -> Alert | None:
        match = sighting.match
        if match.person_id is None or match.plate is None:
            return None
        person = self._lookup(match.person_id)
        if person is None or person.role != "vip":
            return None
        with self._lock:
            last = self._last.get(match.plate)
            self._last[match.plate] = sighting.t_mono
            if last is not None and sighting.t_mono - last <= self._config.cooldown_s:
                logger.debug("plate %s seen again within the cooldown; no alert", match.plate)
                return None
        draft = AlertDraft(
            type=AlertType.VIP_VEHICLE_ARRIVAL, branch_id=self._branch_id, camera_id=sighting.camera_id,
            person_id=person.id, title=VIP_VEHICLE_TITLE, captured_at=sighting.captured_at,
            payload=VipVehicleArrivalPayload(
                person_id=person.id, name=person.name, tier=person.tier, photo_url=f"/api/persons/{person.id}/photo",
                plate=match.plate, plate_read=match.read, plate_color=sighting.color, distance=match.distance,
                score=round(sighting.vote.score, 4), reads=sighting.vote.reads, track_id=sighting.track_id,
                camera_name=sighting.camera_name, first_seen_at=sighting.first_seen_at,
                driver_face=sighting.driver_face))
        return self._publish(draft)
