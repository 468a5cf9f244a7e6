"""Counter rules: counter pipeline events -> stored records and alerts.

- ``interaction_started`` / ``interaction_ended`` (with the duration): one alert each, and the episode
  stored for statistics and review;
- ``customer_unattended``: the customer's crop and waiting time; escalated (「VIP 无人接待」) for a VIP;
- ``counter_unstaffed``: a counter zone without staff in opening hours.

The pipeline already raises each event once (per interaction, per wait, per unstaffed spell), so the
rule needs no cooldown of its own.

A service answers a wait: the ``interaction_started`` of a customer names, in ``closes``, the
``customer_unattended`` alerts raised for that customer on that camera (the same person track, or the
same VIP on another track after the tracker lost them), and the terminal closes those cards showing who
served and when. The rule remembers the open waits itself (a bounded list per camera).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from alerts.envelope import (
    Alert,
    AlertDraft,
    AlertPayload,
    AlertType,
    CounterUnstaffedPayload,
    CustomerUnattendedPayload,
    InteractionPayload,
)
from edge.clips.types import ClipParticipants, InteractionRecord
from edge.counter.pipeline import CounterEvent
from edge.review.types import ReviewError
from edge.store.db import Person

logger = logging.getLogger(__name__)

TITLES = {
    AlertType.INTERACTION_STARTED: "开始服务",
    AlertType.INTERACTION_ENDED: "服务结束",
    AlertType.CUSTOMER_UNATTENDED: "客户无人接待",
    AlertType.COUNTER_UNSTAFFED: "柜台无人",
}
VIP_UNATTENDED_TITLE = "VIP 无人接待"
OPEN_WAITS_PER_CAMERA = 64  # unattended alerts remembered per camera until a service answers them


class InteractionLog(Protocol):
    """Where episodes and waits are kept (edge.review.store.ReviewStore)."""

    def add_interaction(self, record: InteractionRecord) -> None: ...

    def end_interaction(self, *, interaction_id: str, ended_at: datetime, duration_s: float) -> None: ...

    def add_unattended(self, *, camera_id: str, customer_track: int, vip_id: str | None, zone: str,
                       waited_s: float, at: datetime, alert_id: str) -> None: ...


class SnapshotStore(Protocol):
    def add_snapshot(self, *, camera_id: str, jpeg: bytes) -> str: ...


class CounterRule:
    """Shared by every counter camera; called on the camera threads."""

    def __init__(self, *, branch_id: str, lookup: Callable[[str], Person | None],
                 publish: Callable[[AlertDraft], Alert], log: InteractionLog, snapshots: SnapshotStore) -> None:
        self._branch_id = branch_id
        self._lookup = lookup
        self._publish = publish
        self._log = log
        self._snapshots = snapshots
        self._waits: dict[str, list[tuple[int, str | None, str]]] = {}  # camera -> (track, vip id, alert id)
        self._waits_lock = threading.Lock()  # camera threads share the rule

    def _remember_wait(self, camera_id: str, customer_track: int, vip_id: str | None, alert_id: str) -> None:
        with self._waits_lock:
            waits = self._waits.setdefault(camera_id, [])
            waits.append((customer_track, vip_id, alert_id))
            del waits[:-OPEN_WAITS_PER_CAMERA]

    def _answered_waits(self, camera_id: str, customer_track: int, vip_id: str | None) -> list[str]:
        """The unattended alerts a service of this customer answers; forgotten once answered."""
        with self._waits_lock:
            waits = self._waits.get(camera_id, [])
            hit = [w for w in waits if w[0] == customer_track or (vip_id is not None and w[1] == vip_id)]
            self._waits[camera_id] = [w for w in waits if w not in hit]
        return [alert_id for _, _, alert_id in hit]

    def handle(self, event: CounterEvent) -> Alert | None:
        if event.kind in ("interaction_started", "interaction_ended"):
            return self._interaction(event)
        if event.kind == "customer_unattended":
            return self._unattended(event)
        return self._unstaffed(event)

    def _person(self, person_id: str | None) -> Person | None:
        return None if person_id is None else self._lookup(person_id)

    def _draft(self, kind: AlertType, event: CounterEvent, payload: AlertPayload, person_id: str | None = None,
               title: str | None = None) -> AlertDraft:
        return AlertDraft(type=kind, branch_id=self._branch_id, camera_id=event.camera_id, person_id=person_id,
                          title=title or TITLES[kind], captured_at=event.captured_at, payload=payload)

    def _interaction(self, event: CounterEvent) -> Alert:
        inter, interaction_id = event.interaction, event.interaction_id
        assert inter is not None and interaction_id is not None
        staff, vip = self._person(inter.staff_id), self._person(inter.vip_id)
        started = event.kind == "interaction_started"
        try:
            if started:
                self._log.add_interaction(InteractionRecord(
                    ClipParticipants(interaction_id, event.camera_id, inter.staff_track, inter.customer_track,
                                     inter.staff_id, inter.vip_id),
                    inter.started_at, None, None, event.wait_s))
            elif inter.ended_at is not None and inter.duration_s is not None:
                self._log.end_interaction(interaction_id=interaction_id, ended_at=inter.ended_at,
                                          duration_s=inter.duration_s)
        except ReviewError as exc:  # the alert still goes out; the statistics miss this one episode
            logger.error("camera %s: interaction %s not recorded: %s", event.camera_id, interaction_id, exc)
        payload = InteractionPayload(
            kind="interaction_started" if started else "interaction_ended", interaction_id=interaction_id,
            camera_name=event.camera_name, staff_id=inter.staff_id, staff_name=staff.name if staff else None,
            staff_track=inter.staff_track, customer_track=inter.customer_track, vip_id=inter.vip_id,
            vip_name=vip.name if vip else None, vip_tier=vip.tier if vip else None, started_at=inter.started_at,
            ended_at=inter.ended_at, duration_s=inter.duration_s, wait_s=event.wait_s,
            closes=self._answered_waits(event.camera_id, inter.customer_track, inter.vip_id) if started else [])
        kind = AlertType.INTERACTION_STARTED if started else AlertType.INTERACTION_ENDED
        return self._publish(self._draft(kind, event, payload, inter.vip_id))

    def _unattended(self, event: CounterEvent) -> Alert:
        waited = event.unattended
        assert waited is not None and event.waiting_since is not None
        vip = self._person(waited.vip_id)
        crop_url = None
        if event.crop_jpeg is not None:
            crop_url = f"/api/snapshots/{self._snapshots.add_snapshot(camera_id=event.camera_id, jpeg=event.crop_jpeg)}"
        payload = CustomerUnattendedPayload(
            camera_name=event.camera_name, zone=waited.zone, customer_track=waited.customer_track,
            waited_s=waited.waited_s, waiting_since=event.waiting_since, crop_url=crop_url,
            escalated=vip is not None, person_id=vip.id if vip else None, name=vip.name if vip else None,
            tier=vip.tier if vip else None, photo_url=f"/api/persons/{vip.id}/photo" if vip else None)
        alert = self._publish(self._draft(AlertType.CUSTOMER_UNATTENDED, event, payload, vip.id if vip else None,
                                          VIP_UNATTENDED_TITLE if vip else None))
        self._log.add_unattended(camera_id=event.camera_id, customer_track=waited.customer_track,
                                 vip_id=waited.vip_id, zone=waited.zone, waited_s=waited.waited_s,
                                 at=event.captured_at, alert_id=alert.id)
        self._remember_wait(event.camera_id, waited.customer_track, waited.vip_id, alert.id)
        return alert

    def _unstaffed(self, event: CounterEvent) -> Alert:
        gap = event.unstaffed
        assert gap is not None
        since = event.captured_at.timestamp() - gap.unstaffed_s
        payload = CounterUnstaffedPayload(camera_name=event.camera_name, zone=gap.zone, unstaffed_s=gap.unstaffed_s,
                                          unstaffed_since=datetime.fromtimestamp(since, event.captured_at.tzinfo))
        return self._publish(self._draft(AlertType.COUNTER_UNSTAFFED, event, payload))
