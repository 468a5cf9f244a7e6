"""face.detector: HOG or BlazeFace for the cameras, refused clearly when wrong, wired into the runtime (cameras
only; enrolment keeps HOG), and deciding every VIP visit of a real entrance clip, whole-frame and motion-gated."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from bench.pipeline import arrivals_scene
from edge.cameras.config import CameraConfig
from edge.config import ConfigError, EdgeConfig
from edge.demo.scene import SceneBuilder
from edge.faces.config import FaceConfig, VipArrivalRuleConfig
from edge.faces.pipeline import FacePipeline
from edge.faces.vip_rule import VipArrivalRule
from edge.runtime import EdgeRuntime
from vision.engines.base import FaceEngine
from vision.engines.camera_faces import CameraFaceEngine
from vision.engines.owner import EnginePool
from vision.engines.registry import build_camera_engine
from vision.gallery import Gallery
from vision.imageio import decode_image
from vision.types import Frame, Image

FPS = 10.0
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_blazeface_is_the_default_for_dlib_and_another_engine_keeps_its_own_detector() -> None:
    # BlazeFace found at least HOG's faces on the scenes set and every entrance visit (python -m bench.face_detect)
    assert FaceConfig().detector == "blazeface"
    assert FaceConfig.model_validate({"engine": {"min_face_px": 40}}).detector == "blazeface"
    insightface = FaceConfig.model_validate({"voter": {"threshold": 0.5},
                                             "engine": {"type": "insightface", "models_dir": "/nowhere"}})
    assert insightface.detector == "hog"
    # and either may be chosen
    assert FaceConfig.model_validate({"detector": "hog"}).detector == "hog"
    face = FaceConfig.model_validate({"detector": "blazeface", "blazeface": {"model": "full_range"}})
    assert face.detector == "blazeface" and face.blazeface.model == "full_range"


@pytest.mark.parametrize("value", ["cnn", "", "BlazeFace", 3, None])
def test_a_bad_detector_is_refused_naming_the_choices(value: Any) -> None:
    with pytest.raises(ValidationError, match="'hog' or 'blazeface'"):
        FaceConfig.model_validate({"detector": value})


@pytest.mark.parametrize(("settings", "field"), [
    ({"model": "tiny"}, "blazeface.model"),
    ({"score_threshold": 1.5}, "blazeface.score_threshold"),
    ({"tile_faces": 1}, "blazeface.tile_faces"),
    ({"threads": 2}, "blazeface.threads"),  # unknown key
])
def test_bad_blazeface_settings_are_refused_by_field(settings: dict[str, Any], field: str,
                                                     make_config: Callable[..., EdgeConfig]) -> None:
    with pytest.raises(ConfigError, match=f"face.{field}"):
        make_config(face={"detector": "blazeface", "blazeface": settings})


def test_blazeface_with_the_insightface_engine_is_refused() -> None:
    with pytest.raises(ValidationError, match="works with engine type 'dlib' only"):
        FaceConfig.model_validate({"detector": "blazeface", "voter": {"threshold": 0.5},
                                   "engine": {"type": "insightface", "models_dir": "/nowhere"}})


@pytest.mark.parametrize(("detector", "camera_type"), [("hog", EnginePool), ("blazeface", CameraFaceEngine)])
def test_the_runtime_gives_the_cameras_the_configured_detector_and_enrolment_keeps_hog(
        detector: str, camera_type: type, make_config: Callable[..., EdgeConfig], engine_pool: EnginePool,
        photo_bytes: Callable[[str], bytes]) -> None:
    config = make_config(cameras=[{"id": "door", "role": "entrance", "source": {"url": "file:x.mp4"}}],
                         face={"detector": detector})
    runtime = EdgeRuntime(config, engine=engine_pool)
    try:
        # then the entrance camera's pipeline detects with the configured detector over the shared engine
        assert isinstance(runtime.camera_engine, camera_type)
        if isinstance(runtime.camera_engine, CameraFaceEngine):
            assert runtime.camera_engine.engine is runtime.engine
        # and enrolment keeps the engine itself (its own HOG on padded photos), whatever the cameras use
        assert runtime.enroller._engine is runtime.engine
        person = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama.jpg"), consent="test")
        assert person.model_id == runtime.engine.model_id
    finally:
        runtime.stop()


@pytest.fixture(scope="module")
def clip(photos_dir: Path, engine: FaceEngine) -> tuple[list[Image], list[tuple[int, int]]]:
    """Four VIP visits of the entrance benchmark (strangers beside two of them), 3 s of empty lobby after."""
    builder = SceneBuilder(engine, photos_dir)
    apps = arrivals_scene(4)
    duration = max(a.enter_s + 2 * a.walk_s + a.dwell_s for a in apps) + 3.0
    images: list[Image] = []
    seen: dict[int, list[int]] = {}
    for index, image, faces in builder.frames(apps, duration):
        images.append(image)
        for n, _box in faces:
            seen.setdefault(n, []).append(index)
    visits = [(min(seen[n]), max(seen[n])) for n, a in enumerate(apps) if a.actor.label == "vip"]
    return images, visits


def visits_decided(images: list[Image], visits: list[tuple[int, int]], engine: FaceEngine, *, gated: bool,
                   gallery: Gallery) -> set[int]:
    camera = CameraConfig.model_validate({"id": "door", "role": "entrance", "source": {"url": "file:x.mp4"},
                                          "motion": {"enabled": gated}})
    rule = VipArrivalRule(VipArrivalRuleConfig(cooldown_s=1.0), branch_id="b", lookup=lambda _p: None,
                          publish=lambda d: None)  # type: ignore[arg-type,return-value]
    pipeline = FacePipeline(camera, FaceConfig(), engine=engine, gallery=gallery, rule=rule)
    decided: set[int] = set()
    for i, image in enumerate(images):
        for sighting in pipeline.process(Frame("door", i + 1, T0 + timedelta(seconds=i / FPS), i / FPS, image)):
            if sighting.match.person_id == "vip":
                decided |= {k for k, (first, last) in enumerate(visits) if first <= i <= last + 5}
    return decided


@pytest.mark.slow
@pytest.mark.parametrize("gated", [False, True])
def test_blazeface_decides_every_vip_visit_of_the_entrance_clip(
        clip: tuple[list[Image], list[tuple[int, int]]], engine: FaceEngine, photos_dir: Path, gated: bool) -> None:
    # given the VIP enrolled from a photo (HOG) and the cameras detecting with BlazeFace
    images, visits = clip
    gallery = Gallery(engine.model_id, engine.dim)
    portrait = decode_image((photos_dir / "obama.jpg").read_bytes())
    gallery.add("vip", engine.embed(portrait, engine.detect(portrait)))
    camera_engine = build_camera_engine(engine, "blazeface")
    # when the entrance pipeline runs on the real clip, whole-frame or motion-gated
    decided = visits_decided(images, visits, camera_engine, gated=gated, gallery=gallery)
    # then every visit is decided as the VIP
    assert decided == set(range(len(visits)))


def test_cameras_share_one_blazeface_engine_from_several_threads(
        engine_pool: EnginePool, photo: Callable[[str], Image]) -> None:
    # given one camera engine over the pool, as the runtime gives every camera
    camera_engine = build_camera_engine(engine_pool, "blazeface")
    frames = [photo("t1.jpg")[:720], np.ascontiguousarray(photo("t1.jpg")[100:820, 200:1280])]
    expected = [camera_engine.detect(f) for f in frames]
    # when four camera threads detect at once (BlazeFace on their own thread, landmarks on the pool's owners)
    with ThreadPoolExecutor(max_workers=4) as workers:
        results = list(workers.map(lambda k: camera_engine.detect(frames[k % 2]), range(8)))
    # then each gets the same faces and landmarks as one thread alone
    for k, found in enumerate(results):
        np.testing.assert_allclose(found.xyxy, expected[k % 2].xyxy)
        assert found.landmarks is not None and expected[k % 2].landmarks is not None
        np.testing.assert_allclose(found.landmarks, expected[k % 2].landmarks)
