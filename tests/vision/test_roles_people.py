"""Staff versus customer, face-to-person association, waits and counter staffing, on arrays."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.zones import PolygonZone
from vision.attendance import CounterMonitor, WaitingMonitor
from vision.interaction import Participant
from vision.people import PeopleTracker, associate_faces
from vision.roles import Role, RoleAssigner, RolePolicy
from vision.types import Detections

BEHIND = PolygonZone("behind", ((0.0, 0.0), (400.0, 0.0), (400.0, 300.0), (0.0, 300.0)))
BOX_IN = (100.0, 50.0, 200.0, 250.0)  # bottom centre (150, 250): inside
BOX_OUT = (600.0, 300.0, 700.0, 600.0)


@pytest.mark.parametrize(("order", "gallery", "box", "dwell_frames", "role", "reason"), [
    (("gallery", "zone"), None, BOX_OUT, 10, Role.CUSTOMER, "default"),
    (("gallery", "zone"), "staff", BOX_OUT, 1, Role.STAFF, "gallery"),
    (("gallery", "zone"), "vip", BOX_IN, 10, Role.CUSTOMER, "gallery"),
    (("zone", "gallery"), "vip", BOX_IN, 10, Role.STAFF, "zone"),
    (("gallery", "zone"), None, BOX_IN, 10, Role.STAFF, "zone"),
    (("gallery", "zone"), None, BOX_IN, 2, Role.CUSTOMER, "default"),  # 0.4 s < 2 s dwell
    (("gallery",), None, BOX_IN, 10, Role.CUSTOMER, "default"),
])
def test_role_table(order: tuple[str, ...], gallery: str | None, box: tuple[float, float, float, float],
                    dwell_frames: int, role: Role, reason: str) -> None:
    assigner = RoleAssigner(RolePolicy(order=order, staff_zone=BEHIND, zone_dwell_s=1.0))  # type: ignore[arg-type]
    decision = None
    for i in range(dwell_frames):
        decision = assigner.assign(7, box, gallery, "p-1" if gallery else None, i * 0.2)
    assert decision is not None and decision.role is role and decision.reason == reason
    if gallery == "vip" and role is Role.CUSTOMER:
        assert decision.vip_id == "p-1"


def test_zone_staff_stays_staff_outside_the_zone_and_bad_order_is_refused() -> None:
    assigner = RoleAssigner(RolePolicy(staff_zone=BEHIND, zone_dwell_s=0.5))
    for i in range(5):
        assigner.assign(1, BOX_IN, None, None, i * 0.2)
    assert assigner.assign(1, BOX_OUT, None, None, 2.0).role is Role.STAFF
    assigner.forget(1)
    assert assigner.assign(1, BOX_OUT, None, None, 3.0).role is Role.CUSTOMER
    with pytest.raises(ValueError):
        RolePolicy(order=("zone", "zone"))
    with pytest.raises(ValueError):
        RolePolicy(order=("badge",))  # type: ignore[arg-type]


@pytest.mark.parametrize(("persons", "faces", "expected"), [
    ([], [], []),
    ([[0, 0, 100, 300]], [], []),
    ([], [[10, 10, 50, 50]], [-1]),
    ([[0, 0, 100, 300]], [[30, 20, 70, 60]], [0]),
    ([[0, 0, 100, 300]], [[30, 250, 70, 290]], [-1]),  # a face at the feet is not this person's
    ([[0, 0, 100, 300], [80, 0, 200, 300]], [[100, 20, 140, 60], [10, 20, 50, 60]], [1, 0]),
    ([[0, 0, 100, 300]], [[30, 20, 70, 60], [35, 25, 75, 65]], [-1, 0]),  # one face per person, the nearer
])
def test_associate_faces_table(persons: list[list[float]], faces: list[list[float]], expected: list[int]) -> None:
    out = associate_faces(np.asarray(persons, np.float32).reshape(-1, 4), np.asarray(faces, np.float32).reshape(-1, 4))
    assert out.tolist() == expected


def test_identity_persists_on_the_person_when_the_face_turns_away() -> None:
    tracker = PeopleTracker()
    person = Detections.from_lists([[100, 100, 300, 700]], [0.9])
    face = Detections.from_lists([[170, 120, 230, 180]], [0.9]).with_track_ids(np.array([5]))
    views, _ = tracker.update(person, face, {}, 0.0)
    assert views[0].person_id is None and views[0].face_track == 5
    views, _ = tracker.update(person, Detections.empty(), {5: "staff-1"}, 0.2)  # decided after the face turned
    assert views[0].person_id == "staff-1" and views[0].face_box is None
    views, _ = tracker.update(person, Detections.empty(), {}, 0.4)
    assert views[0].person_id == "staff-1"


def _customer(tid: int, box: tuple[float, float, float, float]) -> Participant:
    return Participant(tid, "customer", box)


def test_waiting_monitor_raises_once_and_never_for_a_served_customer() -> None:
    monitor = WaitingMonitor([BEHIND], unattended_after_s=3.0)
    events = []
    for i in range(50):
        events += monitor.update([_customer(1, BOX_IN), _customer(2, BOX_IN)], {2} if i >= 5 else set(), i * 0.2)
    assert [e.customer_track for e in events] == [1]
    assert events[0].waited_s == pytest.approx(3.2)
    assert monitor.update([], set(), 100.0) == []
    with pytest.raises(ValueError):
        WaitingMonitor([BEHIND], unattended_after_s=0)


def test_counter_monitor_respects_opening_hours_and_rearms() -> None:
    monitor = CounterMonitor([BEHIND], unstaffed_after_s=2.0)
    staff = [Participant(1, "staff", BOX_IN)]
    events = []
    for i in range(20):
        events += monitor.update([], i * 0.2, open_now=False)
    assert events == []
    for i in range(20, 40):
        events += monitor.update([], i * 0.2, open_now=True)
    assert len(events) == 1 and events[0].zone == "behind"
    events = monitor.update(staff, 8.2, open_now=True) + [e for i in range(42, 80)
                                                         for e in monitor.update([], i * 0.2, open_now=True)]
    assert len(events) == 1
