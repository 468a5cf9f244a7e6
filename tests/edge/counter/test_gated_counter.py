"""Motion gating on a real counter scene: the gated counter pipeline (faces where the picture moves, people at
their cadence) finds the same services as the ungated one, with the same staff and about the same durations,
while people stand still at the desk."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge.cameras.config import CameraConfig
from edge.counter.config import CounterConfig
from edge.counter.pipeline import CounterEvent, CounterPipeline
from edge.demo.counter_scene import CounterScene, Cutout, Role, load_cast, scene_camera
from edge.faces.config import FaceConfig
from vision.engines.base import FaceEngine
from vision.engines.nanodet import NanoDetPersonDetector
from vision.gallery import Gallery
from vision.imageio import decode_image

pytestmark = pytest.mark.slow

STAFF_ID = "staff-obama"
BASE = {"interaction": {"max_distance_m": 1.6, "start_after_s": 2.0, "end_after_s": 3.0},
        "zone_dwell_s": 1.0, "unattended_after_s": 600, "unstaffed_after_s": 600}


@pytest.fixture(scope="module")
def cast(photos_dir: Path, person_detector: NanoDetPersonDetector, engine: FaceEngine) -> dict[str, Cutout]:
    return load_cast(photos_dir, person_detector, engine)


@pytest.fixture(scope="module")
def gallery(photos_dir: Path, engine: FaceEngine) -> Gallery:
    gallery = Gallery(engine.model_id, engine.dim)
    image = decode_image((photos_dir / "obama.jpg").read_bytes())
    gallery.add(STAFF_ID, engine.embed(image, engine.detect(image)))
    return gallery


def run(scene: CounterScene, *, gated: bool, detector: NanoDetPersonDetector, engine: FaceEngine,
        gallery: Gallery) -> tuple[list[CounterEvent], CounterPipeline]:
    entry = scene_camera("dir:/unused")
    camera = CameraConfig.model_validate({**entry, "motion": {"enabled": gated}})
    pipeline = CounterPipeline(camera, CounterConfig.model_validate(BASE), FaceConfig(), persons=detector,
                               engine=engine, gallery=gallery, role_of={STAFF_ID: "staff"}.get,
                               tz=ZoneInfo("Asia/Shanghai"))
    events: list[CounterEvent] = []
    for frame, _ in scene.frames():
        events += pipeline.process(frame)
    return events + pipeline.flush(), pipeline


def services(events: list[CounterEvent]) -> list[tuple[str | None, float]]:
    return [(e.interaction.staff_id, e.interaction.duration_s or 0.0) for e in events
            if e.kind == "interaction_ended" and e.interaction is not None]


def test_gated_counter_finds_the_same_services(cast: dict[str, Cutout], person_detector: NanoDetPersonDetector,
                                               engine: FaceEngine, gallery: Gallery) -> None:
    # given the clerk at the desk, one customer served from 2 s to 8 s who leaves, a second from 15 s to 21 s,
    # and both standing still while served
    scene = CounterScene([
        Role(cast["clerk"], ((0, 250), (25, 250))),
        Role(cast["customer"], ((0, 1450), (2, 530), (8, 530), (10, 1450), (25, 1450)), hidden=((10.2, 25),)),
        Role(cast["customer2"], ((0, 1450), (13, 1450), (15, 530), (21, 530), (23, 1450), (25, 1450)),
             hidden=((0, 12.8),)),
    ], 25.0)
    # when run whole-frame and motion-gated
    ungated, _ = run(scene, gated=False, detector=person_detector, engine=engine, gallery=gallery)
    gated, pipeline = run(scene, gated=True, detector=person_detector, engine=engine, gallery=gallery)
    # then both find the two services, served by the enrolled clerk, lasting the same within a second
    expected = services(ungated)
    found = services(gated)
    assert len(expected) == 2
    assert len(found) == len(expected)
    for (staff, duration), (want_staff, want_duration) in zip(found, expected, strict=True):
        assert staff == want_staff == STAFF_ID
        assert duration == pytest.approx(want_duration, abs=1.0)
    # and faces were looked for in well under the whole picture on average, and the person detector did not run
    # on every frame: the people it found were carried over on more than half of them (people stand in view
    # throughout, so it never skips for want of anyone to look at)
    assert pipeline.gate is not None
    counts = pipeline.gate.counts
    assert counts.skipped["persons"] == 0
    assert counts.area["faces"] / counts.frames < 0.6
    assert counts.carried["persons"] > counts.frames // 2
