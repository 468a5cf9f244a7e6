"""Interaction logic on arrays: distances, hysteresis, start/end timing, bad input."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from calibration.homography import FloorHomography
from vision.interaction import InteractionDetector, InteractionEvent, InteractionPolicy, Participant, floor_distance

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
W = 1280
POLICY = InteractionPolicy(max_distance_m=1.5, start_after_s=3.0, end_after_s=5.0)


def person(tid: int, role: str, x: float, width: float = 160.0, person_id: str | None = None) -> Participant:
    return Participant(tid, role, (x, 200.0, x + width, 680.0), None, person_id)  # type: ignore[arg-type]


def run(frames: list[list[Participant]], fps: float = 5.0, policy: InteractionPolicy = POLICY,
        homography: FloorHomography | None = None) -> list[InteractionEvent]:
    detector = InteractionDetector("cam-1", policy, homography)
    events: list[InteractionEvent] = []
    for i, people in enumerate(frames):
        t = i / fps
        events += detector.update(people, W, t, T0 + timedelta(seconds=t))
    return events


def near(s: float = 520.0) -> list[Participant]:
    return [person(1, "staff", s, person_id="staff-1"), person(2, "customer", 720.0, person_id="vip-9")]


def far() -> list[Participant]:
    return [person(1, "staff", 0.0, person_id="staff-1"), person(2, "customer", 1100.0, person_id="vip-9")]


@pytest.mark.parametrize(("name", "script", "starts", "ends", "duration"), [
    ("empty", [], 0, 0, None),
    ("no one", [[]] * 50, 0, 0, None),
    ("customers only", [[person(2, "customer", 700.0), person(3, "customer", 900.0)]] * 50, 0, 0, None),
    ("always apart", [far()] * 100, 0, 0, None),
    ("too brief", [far()] * 5 + [near()] * 10 + [far()] * 50, 0, 0, None),
    ("one service", [far()] * 5 + [near()] * 50 + [far()] * 40, 1, 1, 9.8),
    ("occlusion 2 s", [near()] * 30 + [[]] * 10 + [near()] * 30 + [far()] * 40, 1, 1, 13.8),
    ("apart 3 s", [near()] * 30 + [far()] * 15 + [near()] * 30 + [far()] * 40, 1, 1, 14.8),
    ("apart 6 s: two", [near()] * 30 + [far()] * 30 + [near()] * 30 + [far()] * 40, 2, 2, 5.8),
    ("open at the end", [near()] * 30, 1, 0, None),
])
def test_interaction_table(name: str, script: list[list[Participant]], starts: int, ends: int,
                           duration: float | None) -> None:
    events = run(script)
    assert sum(e.kind == "started" for e in events) == starts, name
    assert sum(e.kind == "ended" for e in events) == ends, name
    if duration is not None:
        ended = next(e for e in events if e.kind == "ended").interaction
        assert ended.duration_s == pytest.approx(duration, abs=0.01)
        assert ended.staff_id == "staff-1" and ended.vip_id == "vip-9" and ended.customer_track == 2
        assert ended.ended_at is not None and ended.ended_at > ended.started_at


def test_given_jitter_around_the_limit_when_hysteresis_then_one_service() -> None:
    # 1.5 m to enter; jitter up to 1.3 x 1.5 m keeps it: alternate near and slightly beyond the limit
    policy = InteractionPolicy(max_distance_m=1.5, release_ratio=1.3, start_after_s=1.0, end_after_s=0.5)
    detector = InteractionDetector("c", policy)
    a, b = person(1, "staff", 100.0), person(2, "customer", 590.0)  # 490 px with 56 px heads: 1.4 m
    base = floor_distance(a, b, policy, W)
    assert base < 1.5
    frames = []
    for i in range(60):
        shift = 0.0 if i % 2 == 0 else 105.0  # 1.7 m: beyond 1.5, within 1.3 x 1.5
        frames.append([a, person(2, "customer", 590.0 + shift)])
    assert floor_distance(a, frames[1][1], policy, W) > 1.5
    assert floor_distance(a, frames[1][1], policy, W) < 1.5 * 1.3
    events = []
    for i, people in enumerate(frames):
        events += detector.update(people, W, i / 5, T0)
    assert [e.kind for e in events] == ["started"]


def test_distance_with_homography_and_bad_boxes() -> None:
    h = FloorHomography.from_points([(0, 700), (1280, 700), (1280, 300), (0, 300)], [(0, 0), (8, 0), (8, 8), (0, 8)])
    a = Participant(1, "staff", (100.0, 100.0, 220.0, 700.0))
    b = Participant(2, "customer", (260.0, 100.0, 380.0, 700.0))
    assert floor_distance(a, b, POLICY, W, h) == pytest.approx(1.0, abs=1e-6)  # 160 px = 1 m at that row
    bad = Participant(3, "customer", (10.0, 10.0, 5.0, 5.0))
    nan = Participant(4, "customer", (math.nan, 0.0, 1.0, 1.0))
    assert floor_distance(a, bad, POLICY, W) == math.inf
    assert floor_distance(a, nan, POLICY, W) == math.inf
    assert floor_distance(a, b, POLICY, 0) == math.inf


def test_head_size_proxy_grows_with_depth() -> None:
    # the same 200 px apart: small heads (far away) are farther apart on the floor than big heads
    near_pair = floor_distance(person(1, "staff", 400.0, 300.0), person(2, "customer", 600.0, 300.0), POLICY, W)
    far_pair = floor_distance(person(1, "staff", 400.0, 100.0), person(2, "customer", 600.0, 100.0), POLICY, W)
    assert far_pair > near_pair
    face = Participant(1, "staff", (400.0, 100.0, 500.0, 700.0), (430.0, 110.0, 470.0, 150.0))
    assert floor_distance(face, face, POLICY, W) == pytest.approx(0.0)


@pytest.mark.parametrize("kwargs", [{"max_distance_m": 0}, {"release_ratio": 0.9}, {"start_after_s": -1},
                                    {"focal_px": 0}, {"head_width_m": -0.1}])
def test_bad_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        InteractionPolicy(**kwargs)  # type: ignore[arg-type]


def test_flush_ends_open_services() -> None:
    detector = InteractionDetector("c", POLICY)
    for i in range(30):
        detector.update(near(), W, i / 5, T0 + timedelta(seconds=i / 5))
    assert detector.engaged(2) and len(detector.active) == 1
    events = detector.flush(10.0)
    assert [e.kind for e in events] == ["ended"] and events[0].interaction.duration_s == pytest.approx(5.8)
