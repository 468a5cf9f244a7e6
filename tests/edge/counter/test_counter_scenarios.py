"""Counter scenarios on real images, through the real counter pipeline.

Real people (cut out of real portraits by the real person detector) move along scripted paths on a
drawn lobby; the real NanoDet person detector, the dlib face engine with a real gallery (the clerk
enrolled as staff from a different photo, one customer enrolled as a VIP), the people tracker, the
role rules, the interaction logic and the attendance monitors run on every frame. Time is the frame
clock (5 fps), never the wall clock. Expected durations come from the same interaction logic run on
the true boxes of the compositor, so a test checks what detection and tracking add or lose.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge.cameras.config import CameraConfig
from edge.counter.config import CounterConfig
from edge.counter.pipeline import CounterEvent, CounterPipeline
from edge.demo.counter_scene import (
    CounterScene,
    Cutout,
    Role,
    W,
    load_cast,
    scene_camera,
)
from edge.faces.config import FaceConfig
from vision.engines.base import FaceEngine
from vision.engines.nanodet import NanoDetPersonDetector
from vision.gallery import Gallery
from vision.imageio import decode_image
from vision.interaction import InteractionDetector, Participant
from vision.roles import Role as PersonRole

pytestmark = pytest.mark.slow

STAFF_ID, VIP_ID = "staff-obama", "vip-biden"
ENROLLED = {STAFF_ID: "staff", VIP_ID: "vip"}
CAMERA = CameraConfig.model_validate(scene_camera("dir:/unused"))
BASE = {"interaction": {"max_distance_m": 1.6, "start_after_s": 2.0, "end_after_s": 3.0},
        "zone_dwell_s": 1.0, "unattended_after_s": 600, "unstaffed_after_s": 600}


@pytest.fixture(scope="module")
def cast(photos_dir: Path, person_detector: NanoDetPersonDetector, engine: FaceEngine) -> dict[str, Cutout]:
    return load_cast(photos_dir, person_detector, engine)


@pytest.fixture(scope="module")
def gallery(photos_dir: Path, engine: FaceEngine) -> Gallery:
    """The clerk enrolled as staff from obama.jpg (the scenes use obama3.jpg), the customer as a VIP."""
    gallery = Gallery(engine.model_id, engine.dim)
    for person_id, file in ((STAFF_ID, "obama.jpg"), (VIP_ID, "biden.jpg")):
        image = decode_image((photos_dir / file).read_bytes())
        gallery.add(person_id, engine.embed(image, engine.detect(image)))
    return gallery


Runner = Callable[..., tuple[list[CounterEvent], CounterPipeline]]


@pytest.fixture()
def run(person_detector: NanoDetPersonDetector, engine: FaceEngine, gallery: Gallery) -> Runner:
    def go(scene: CounterScene, **counter: object) -> tuple[list[CounterEvent], CounterPipeline]:
        config = CounterConfig.model_validate({**BASE, **counter})
        pipeline = CounterPipeline(CAMERA, config, FaceConfig(), persons=person_detector, engine=engine,
                                   gallery=gallery, role_of=ENROLLED.get, tz=ZoneInfo("Asia/Shanghai"))
        events: list[CounterEvent] = []
        for frame, _ in scene.frames():
            events += pipeline.process(frame)
        return events + pipeline.flush(), pipeline
    return go


def kinds(events: list[CounterEvent], kind: str) -> list[CounterEvent]:
    return [e for e in events if e.kind == kind]


def truth_ends(scene: CounterScene, staff: int, customers: list[int], fill: bool = True) -> list[tuple[float, float]]:
    """(start, duration) of each interaction the same logic gives on the true boxes; ``fill`` draws hidden
    people at their scripted place (what an ideal tracker would carry through an occlusion)."""
    detector = InteractionDetector("truth", CounterConfig.model_validate(BASE).interaction.policy(),
                                   CAMERA.counter.floor.homography())  # type: ignore[union-attr]
    ended = []
    for i in range(scene.n_frames):
        t = i / scene.fps
        _, boxes = scene.render(t)
        people = []
        for k, box in enumerate(boxes):
            role = scene.roles[k]
            if box is None and fill and any(a <= t < b for a, b in role.hidden):
                w = role.cutout.image.shape[1]
                box = (role.x_at(t) - w / 2, 100.0, role.x_at(t) + w / 2, 700.0)
            if box is not None:
                people.append(Participant(k, "staff" if k == staff else "customer", box))
        ended += [e for e in detector.update(people, W, t, scene.t0 + timedelta(seconds=t)) if e.kind == "ended"]
    ended += [e for e in detector.flush(scene.duration_s) if e.kind == "ended"]
    return [((e.interaction.started_at - scene.t0).total_seconds(), e.interaction.duration_s or 0.0) for e in ended]


def started_s(event: CounterEvent, scene: CounterScene) -> float:
    assert event.interaction is not None
    return (event.interaction.started_at - scene.t0).total_seconds()


def test_staff_approaching_a_waiting_customer_gives_one_service_with_the_right_duration(
        cast: dict[str, Cutout], run: Runner) -> None:
    # Given the clerk behind the counter for 3 s, walking to the VIP waiting at x=1000, 8 s there, and back
    scene = CounterScene([Role(cast["clerk"], ((0, 180), (3, 180), (5, 720), (13, 720), (15, 180), (20, 180))),
                          Role(cast["customer"], ((0, 1000), (20, 1000)))], 20.0)
    # When the frames run through the counter pipeline
    events, _ = run(scene)
    # Then there is exactly one service: the enrolled clerk with the VIP, for the true duration within 1 s
    starts, ends = kinds(events, "interaction_started"), kinds(events, "interaction_ended")
    assert len(starts) == 1 and len(ends) == 1
    inter = ends[0].interaction
    assert inter is not None and inter.staff_id == STAFF_ID and inter.vip_id == VIP_ID
    [(truth_start, truth_duration)] = truth_ends(scene, 0, [1])
    assert inter.duration_s == pytest.approx(truth_duration, abs=1.0)
    assert started_s(ends[0], scene) == pytest.approx(truth_start, abs=1.0)
    # and the customer had waited in the waiting zone until the clerk came (about 5 s)
    assert starts[0].wait_s == pytest.approx(truth_start, abs=1.0)
    assert not kinds(events, "customer_unattended")


def test_a_customer_left_alone_past_the_limit_gives_exactly_one_unattended(
        cast: dict[str, Cutout], run: Runner) -> None:
    # Given the clerk staying behind the counter and the VIP waiting 14 s with a 6 s limit
    scene = CounterScene([Role(cast["clerk"], ((0, 180), (14, 180))),
                          Role(cast["customer"], ((0, 1000), (14, 1000)))], 14.0)
    # When it runs
    events, _ = run(scene, unattended_after_s=6.0)
    # Then one customer_unattended, for the VIP, after 6 to 7 s, with a real crop of the customer
    [event] = kinds(events, "customer_unattended")
    assert event.unattended is not None and event.unattended.vip_id == VIP_ID
    assert 6.0 < event.unattended.waited_s < 7.0
    assert event.unattended.zone == "等候区"
    assert event.crop_jpeg is not None and decode_image(event.crop_jpeg).shape[0] > 100
    assert not kinds(events, "interaction_started") and not kinds(events, "counter_unstaffed")


def test_two_customers_at_one_desk_in_turn_give_two_services(cast: dict[str, Cutout], run: Runner) -> None:
    # Given the clerk at the counter, one customer served from 2 s to 8 s, who leaves; a second from 15 s to 21 s
    scene = CounterScene([
        Role(cast["clerk"], ((0, 250), (25, 250))),
        Role(cast["customer"], ((0, 1450), (2, 530), (8, 530), (10, 1450), (25, 1450)), hidden=((10.2, 25),)),
        Role(cast["customer2"], ((0, 1450), (13, 1450), (15, 530), (21, 530), (23, 1450), (25, 1450)),
             hidden=((0, 12.8),)),
    ], 25.0)
    # When it runs
    events, _ = run(scene)
    # Then two services with two different customers, each as long as the truth within 1 s
    starts, ends = kinds(events, "interaction_started"), kinds(events, "interaction_ended")
    assert len(starts) == 2 and len(ends) == 2
    assert len({e.interaction.customer_track for e in ends if e.interaction}) == 2
    truth = truth_ends(scene, 0, [1, 2], fill=False)
    assert len(truth) == 2
    for event, (truth_start, truth_duration) in zip(ends, truth, strict=True):
        assert event.interaction is not None and event.interaction.staff_id == STAFF_ID
        assert event.interaction.duration_s == pytest.approx(truth_duration, abs=1.0)
        assert started_s(event, scene) == pytest.approx(truth_start, abs=1.0)


def test_brief_occlusion_and_a_turned_face_do_not_split_a_service(cast: dict[str, Cutout], run: Runner) -> None:
    # Given a service in which the customer is hidden for 1.2 s and the clerk turns away for 5 s
    scene = CounterScene([
        Role(cast["clerk"], ((0, 180), (3, 180), (5, 720), (15, 720), (17, 180), (20, 180)), face_turned=((7, 12),)),
        Role(cast["customer"], ((0, 1000), (20, 1000)), hidden=((9.0, 10.2),)),
    ], 20.0)
    # When it runs
    events, _ = run(scene)
    # Then it is still one service, by the identified clerk, as long as the truth within 1 s
    starts, ends = kinds(events, "interaction_started"), kinds(events, "interaction_ended")
    assert len(starts) == 1 and len(ends) == 1
    inter = ends[0].interaction
    assert inter is not None and inter.staff_id == STAFF_ID
    [(_, truth_duration)] = truth_ends(scene, 0, [1])
    assert inter.duration_s == pytest.approx(truth_duration, abs=1.0)


def test_staff_in_the_staff_zone_with_the_face_never_seen_counts_as_staff(
        cast: dict[str, Cutout], run: Runner) -> None:
    # Given the clerk behind the counter with the face turned away throughout, and a customer coming to the counter
    scene = CounterScene([
        Role(cast["clerk"], ((0, 180), (16, 180)), always_turned=True),
        Role(cast["customer"], ((0, 1000), (3, 1000), (5, 470), (12, 470), (14, 1000), (16, 1000))),
    ], 16.0)
    # When it runs
    events, _ = run(scene)
    # Then the clerk is staff by the zone (identity unknown) and serves the customer once
    ends = kinds(events, "interaction_ended")
    assert len(ends) == 1 and len(kinds(events, "interaction_started")) == 1
    inter = ends[0].interaction
    assert inter is not None and inter.staff_id is None and inter.vip_id == VIP_ID
    [(_, truth_duration)] = truth_ends(scene, 0, [1])
    assert inter.duration_s == pytest.approx(truth_duration, abs=1.0)


@pytest.mark.parametrize(("start", "expected"), [
    (datetime(2026, 11, 2, 2, 0, tzinfo=UTC), 1),  # 10:00 in Shanghai, a Monday: open
    (datetime(2026, 11, 2, 13, 0, tzinfo=UTC), 0),  # 21:00: closed
])
def test_a_counter_left_without_staff_in_opening_hours_alerts_once(cast: dict[str, Cutout], run: Runner,
                                                                  start: datetime, expected: int) -> None:
    # Given the clerk leaving the counter at 2 s and not coming back for 10 s, with a 4 s limit
    scene = CounterScene([Role(cast["clerk"], ((0, 180), (2, 180), (3, -400), (12, -400)), hidden=((3, 12),))],
                         12.0, t0=start)
    # When it runs
    events, _ = run(scene, unstaffed_after_s=4.0)
    # Then one counter_unstaffed for the counter zone in opening hours, none after closing
    unstaffed = kinds(events, "counter_unstaffed")
    assert len(unstaffed) == expected
    if expected:
        assert unstaffed[0].unstaffed is not None and unstaffed[0].unstaffed.zone == "1号柜台"


def test_roles_are_staff_and_customer(cast: dict[str, Cutout], run: Runner) -> None:
    # Given the clerk and a VIP customer standing apart
    scene = CounterScene([Role(cast["clerk"], ((0, 180), (3, 180))), Role(cast["customer"], ((0, 1000), (3, 1000)))],
                         3.0)
    # When it runs
    _, pipeline = run(scene)
    # Then the clerk's person track is staff and the VIP's a customer
    assert sorted(r.value for r in pipeline.roles.values()) == [PersonRole.CUSTOMER.value, PersonRole.STAFF.value]
