"""Motion gating on a real entrance clip: the gated face pipeline decides every VIP visit the ungated one
decides, while skipping detection on frames where nothing moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.pipeline import arrivals_scene
from edge.cameras.config import CameraConfig
from edge.demo.scene import SceneBuilder, Truth
from edge.faces.config import FaceConfig, VipArrivalRuleConfig
from edge.faces.pipeline import FacePipeline
from edge.faces.vip_rule import VipArrivalRule
from vision.engines.base import FaceEngine
from vision.gallery import Gallery
from vision.imageio import decode_image
from vision.types import Frame, Image

pytestmark = pytest.mark.slow

FPS = 10.0
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def camera(gated: bool) -> CameraConfig:
    return CameraConfig.model_validate({"id": "door", "role": "entrance", "source": {"url": "file:x.mp4"},
                                        "motion": {"enabled": gated}})


@pytest.fixture(scope="module")
def clip(photos_dir: Path, engine: FaceEngine) -> tuple[list[Image], list[Truth]]:
    """Four VIP visits (two from each side, strangers beside two of them) and 3 s of empty lobby at the end."""
    builder = SceneBuilder(engine, photos_dir)
    apps = arrivals_scene(4)
    duration = max(a.enter_s + 2 * a.walk_s + a.dwell_s for a in apps) + 3.0
    images = [image for _, image, _ in builder.frames(apps, duration)]
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for index, _, faces in builder.frames(apps, duration):
        for n, _box in faces:
            first.setdefault(n, index)
            last[n] = index
    truth = [Truth(a.actor.label, a.actor.photo, a.enter_s, first[n], first[n], last[n])
             for n, a in enumerate(apps) if a.actor.label == "vip"]
    return images, truth


@pytest.fixture(scope="module")
def gallery(photos_dir: Path, engine: FaceEngine) -> Gallery:
    gallery = Gallery(engine.model_id, engine.dim)
    image = decode_image((photos_dir / "obama.jpg").read_bytes())
    gallery.add("vip", engine.embed(image, engine.detect(image)))
    return gallery


def visits_decided(images: list[Image], truth: list[Truth], *, gated: bool, engine: FaceEngine,
                   gallery: Gallery, face: FaceConfig | None = None) -> tuple[dict[int, int], FacePipeline]:
    """The frame at which each visit decided as the VIP was first decided, by visit."""
    rule = VipArrivalRule(VipArrivalRuleConfig(cooldown_s=1.0), branch_id="b", lookup=lambda _p: None,
                          publish=lambda d: None)  # type: ignore[arg-type,return-value]
    pipeline = FacePipeline(camera(gated), face or FaceConfig(), engine=engine, gallery=gallery, rule=rule)
    decided: dict[int, int] = {}
    for i, image in enumerate(images):
        frame = Frame("door", i + 1, T0 + timedelta(seconds=i / FPS), i / FPS, image)
        for sighting in pipeline.process(frame):
            if sighting.match.person_id != "vip":
                continue
            for k, v in enumerate(truth):
                if v.first_visible_frame <= i <= v.last_visible_frame + 5:
                    decided.setdefault(k, i)
    return decided, pipeline


def test_gated_pipeline_decides_every_visit_the_ungated_one_decides(
        clip: tuple[list[Image], list[Truth]], engine: FaceEngine, gallery: Gallery) -> None:
    images, truth = clip
    # given the same real clip, when run whole-frame and motion-gated
    ungated, _ = visits_decided(images, truth, gated=False, engine=engine, gallery=gallery)
    gated, pipeline = visits_decided(images, truth, gated=True, engine=engine, gallery=gallery)
    # then the whole-frame run decides every visit, and the gated run loses none of them
    assert set(ungated) == set(range(len(truth)))
    assert set(gated) >= set(ungated)
    # and the gate skipped face detection on the still frames (the empty lobby at the end at least), and
    # looked at well under half of the picture on average
    assert pipeline.gate is not None
    counts = pipeline.gate.counts
    assert counts.skipped["faces"] >= 20
    assert counts.area["faces"] / counts.frames < 0.5


@pytest.mark.parametrize("gated", [False, True], ids=["whole-frame", "gated"])
def test_a_vip_walking_across_is_decided_while_still_walking(
        clip: tuple[list[Image], list[Truth]], engine: FaceEngine, gallery: Gallery, gated: bool) -> None:
    images, truth = clip
    # given the clip's VIPs walking in from the side (their face moves most of its width between frames, 0.8 s
    # walk), when the face tracker may follow a face by its speed (the default) and by IoU alone
    walking, _ = visits_decided(images, truth, gated=gated, engine=engine, gallery=gallery)
    iou_only, _ = visits_decided(images, truth, gated=gated, engine=engine, gallery=gallery,
                                 face=FaceConfig(track_max_speed=0))
    # then every visit is decided, each no later than by IoU alone, and during the walk: by IoU alone each frame
    # of the walk was a new track without votes, and votes began only once the VIP stood still
    assert set(walking) == set(iou_only) == set(range(len(truth)))
    assert all(walking[k] <= iou_only[k] for k in walking)
    assert all(walking[k] - v.first_visible_frame < 8 for k, v in enumerate(truth)), (walking, truth)
    assert sum(iou_only[k] - walking[k] for k in walking) >= 2 * len(truth), (walking, iou_only)
