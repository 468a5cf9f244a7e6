"""Scenario on real images: real people cut out of a real photo, moved along scripted paths on a lobby
background, run through the real person detector, the people tracker, the role rules and the
interaction logic. Time is the frame clock (5 fps), never the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from calibration.zones import PolygonZone
from edge.demo.scene import lobby_background
from vision.engines.nanodet import NanoDetPersonDetector
from vision.imageio import decode_image
from vision.interaction import InteractionDetector, InteractionEvent, InteractionPolicy, Participant
from vision.people import PeopleTracker
from vision.roles import Role, RoleAssigner, RolePolicy
from vision.types import Detections, Image

FPS = 5.0
W, H = 1280, 720
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
POLICY = InteractionPolicy(max_distance_m=0.8, start_after_s=2.0, end_after_s=3.0)
STAFF_ZONE = PolygonZone("behind-counter", ((0.0, 400.0), (330.0, 400.0), (330.0, 720.0), (0.0, 720.0)))


@pytest.fixture()
def cutouts(person_detector: NanoDetPersonDetector, shared_data: Path) -> list[Image]:
    """The two people of a real photo, each cut out by its detected box and scaled to 320 px tall."""
    import cv2

    photo = decode_image((shared_data / "scenes" / "face_recognition__two_people.jpg").read_bytes())
    dets = person_detector.detect(photo)
    assert len(dets) == 2
    out = []
    for x1, y1, x2, y2 in dets.xyxy[np.argsort(dets.xyxy[:, 0])]:
        crop = photo[int(y1):int(y2), int(x1):int(x2)]
        scale = 320 / crop.shape[0]
        out.append(np.ascontiguousarray(cv2.resize(crop, (int(crop.shape[1] * scale), 320)), np.uint8))
    return out


def compose(background: Image, people: list[tuple[Image, float]]) -> tuple[Image, list[tuple[float, ...]]]:
    """The frame and each sprite's true box."""
    frame = background.copy()
    boxes = []
    for sprite, cx in people:
        h, w = sprite.shape[:2]
        x0 = int(cx - w / 2)
        xs, xe = max(0, x0), min(W, x0 + w)
        if xe > xs:
            frame[H - h:H, xs:xe] = sprite[:, xs - x0:xe - x0]
        boxes.append((float(xs), float(H - h), float(xe), float(H)))
    return frame, boxes


def run(person_detector: NanoDetPersonDetector, frames: list[Image]) -> tuple[list[InteractionEvent], dict[int, Role]]:
    tracker = PeopleTracker()
    roles = RoleAssigner(RolePolicy(order=("gallery", "zone"), staff_zone=STAFF_ZONE, zone_dwell_s=1.0))
    interactions = InteractionDetector("counter-1", POLICY)
    events: list[InteractionEvent] = []
    seen: dict[int, Role] = {}
    for i, image in enumerate(frames):
        t = i / FPS
        views, ended = tracker.update(person_detector.detect(image), Detections.empty(), {}, t)
        for track in ended:
            roles.forget(track.track_id)
        people = []
        for v in views:
            decision = roles.assign(v.track_id, v.box, None, None, t)
            seen[v.track_id] = decision.role
            people.append(Participant(v.track_id, decision.role.value, v.box))  # type: ignore[arg-type]
        events += interactions.update(people, W, t, T0 + timedelta(seconds=t))
    return events + interactions.flush(len(frames) / FPS), seen


def path(points: list[tuple[float, float]]) -> list[float]:
    """x per frame from (seconds, x) waypoints, linear in between."""
    n = int(points[-1][0] * FPS)
    return list(np.interp(np.arange(n) / FPS, [p[0] for p in points], [p[1] for p in points]))


@pytest.mark.slow
def test_staff_from_the_staff_zone_serves_a_waiting_customer_once(person_detector: NanoDetPersonDetector,
                                                                  cutouts: list[Image]) -> None:
    # Given the clerk (face never used: no face detector runs) behind the counter for 3 s, walking to a
    # customer waiting at x=1000, staying 8 s, and walking back
    background = lobby_background(W, H)
    staff_x = path([(0, 160), (3, 160), (5, 700), (13, 700), (15, 160), (20, 160)])
    scenes = [compose(background, [(cutouts[0], x), (cutouts[1], 1000.0)]) for x in staff_x]
    # When the frames run through the counter logic
    events, roles = run(person_detector, [frame for frame, _ in scenes])
    # Then the clerk is staff (by the zone), the customer a customer, and there is one service
    assert sorted(r.value for r in roles.values()) == ["customer", "staff"]
    starts = [e for e in events if e.kind == "started"]
    ends = [e for e in events if e.kind == "ended"]
    assert len(starts) == 1 and len(ends) == 1
    # with the duration the same logic gives on the true boxes, within 1 s
    truth = InteractionDetector("truth", POLICY)
    expected = []
    for i, (_, (staff_box, customer_box)) in enumerate(scenes):
        t = i / FPS
        expected += truth.update([Participant(1, "staff", staff_box), Participant(2, "customer", customer_box)],
                                 W, t, T0 + timedelta(seconds=t))  # type: ignore[arg-type]
    truth_ends = [e for e in expected + truth.flush(len(scenes) / FPS) if e.kind == "ended"]
    assert len(truth_ends) == 1
    assert ends[0].interaction.duration_s == pytest.approx(truth_ends[0].interaction.duration_s, abs=1.0)
    assert ends[0].interaction.started_at.timestamp() == pytest.approx(
        truth_ends[0].interaction.started_at.timestamp(), abs=1.0)
