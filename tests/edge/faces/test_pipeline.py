"""The per-camera face pipeline on real frames: who gets embedded, and when a track is decided."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from alerts.envelope import Alert, AlertDraft
from edge.cameras.config import CameraConfig
from edge.faces.config import FaceConfig, VipArrivalRuleConfig
from edge.faces.pipeline import FacePipeline
from edge.faces.vip_rule import VipArrivalRule
from edge.store.db import Person
from vision.engines.base import FaceEngine
from vision.gallery import Gallery
from vision.types import Detections, FloatArray, Frame, Image

CAMERA = CameraConfig.model_validate({"id": "door", "name": "正门", "role": "entrance",
                                      "source": {"url": "file:x.mp4"}})


class CountingEngine:
    """The real engine, counting the faces it embeds."""

    def __init__(self, engine: FaceEngine) -> None:
        self._engine = engine
        self.embedded = 0
        self.model_id, self.dim, self.min_face_px = engine.model_id, engine.dim, engine.min_face_px
        self.landmark_layout = engine.landmark_layout

    def detect(self, image: Image) -> Detections:
        return self._engine.detect(image)

    def chips(self, image: Image, dets: Detections) -> list[Image]:
        return self._engine.chips(image, dets)

    def embed(self, image: Image, dets: Detections) -> FloatArray:
        return self._engine.embed(image, dets)

    def embed_chips(self, chips: list[Image]) -> FloatArray:
        self.embedded += len(chips)
        return self._engine.embed_chips(chips)


def frames_of(image: Image, n: int, dt: float = 0.1) -> list[Frame]:
    return [Frame("door", i + 1, datetime.now(UTC), i * dt, image) for i in range(n)]


def make_pipeline(engine: CountingEngine, gallery: Gallery, published: list[AlertDraft],
                  persons: dict[str, Person]) -> FacePipeline:
    def publish(draft: AlertDraft) -> Alert:
        published.append(draft)
        return Alert(**draft.model_dump(), id="x", seq=len(published), created_at=datetime.now(UTC))

    rule = VipArrivalRule(VipArrivalRuleConfig(cooldown_s=60), branch_id="b", lookup=persons.get, publish=publish)
    return FacePipeline(CAMERA, FaceConfig(), engine=engine, gallery=gallery, rule=rule)  # type: ignore[arg-type]


def obama_enrolled(engine: FaceEngine, photo: Callable[[str], Image]) -> tuple[Gallery, dict[str, Person]]:
    """A gallery holding Obama (enrolled from obama.jpg) and his person record, a VIP."""
    gallery = Gallery(engine.model_id, engine.dim)
    enrol = photo("obama.jpg")
    gallery.add("obama", engine.embed(enrol, engine.detect(enrol)))
    return gallery, {"obama": Person("obama", "奥巴马", "钻石", "vip", "c", engine.model_id, datetime.now(UTC))}


@pytest.fixture()
def scene(photo: Callable[[str], Image]) -> Image:
    # a 720p frame holding obama2.jpg's face at about 150 px
    canvas = np.full((720, 1280, 3), 200, np.uint8)
    face = cv2.resize(photo("obama2.jpg"), (313, 600))
    canvas[60:660, 480:793] = face
    return canvas


def test_known_face_is_decided_once_then_not_embedded_again(scene: Image, engine: FaceEngine,
                                                           photo: Callable[[str], Image]) -> None:
    # given Obama in the gallery (enrolled from another photo)
    counting = CountingEngine(engine)
    gallery, persons = obama_enrolled(engine, photo)
    pipeline = make_pipeline(counting, gallery, [], persons)
    # when he stands in view for 10 frames
    assert not pipeline.urgent
    sightings, urgent = [], []
    for f in frames_of(scene, 10):
        sightings += pipeline.process(f)
        urgent.append(pipeline.urgent)
    # then his track is decided once it holds min_votes votes, and never embedded again
    assert [s.match.person_id for s in sightings] == ["obama"]
    votes = FaceConfig().voter.min_votes
    assert counting.embedded == votes
    # and the pipeline asks for its frames first (urgent) exactly while his vote is open
    assert urgent == [True] * (votes - 1) + [False] * (10 - votes + 1)


def test_unknown_face_is_embedded_at_intervals_until_settled(scene: Image, engine: FaceEngine) -> None:
    # given an empty gallery (everyone is a stranger)
    counting = CountingEngine(engine)
    pipeline = make_pipeline(counting, Gallery(engine.model_id, engine.dim), [], {})
    config = FaceConfig()
    # when a stranger stands in view for 6 s at 10 fps
    sightings = [s for f in frames_of(scene, 60) for s in pipeline.process(f)]
    # then nobody is identified, and the track is embedded every reembed_interval_s until it is settled
    assert sightings == []
    assert counting.embedded == config.voter.max_observations
    assert not pipeline.urgent  # settled as a stranger: no more hurry


def test_empty_frame_embeds_nothing(engine: FaceEngine) -> None:
    counting = CountingEngine(engine)
    pipeline = make_pipeline(counting, Gallery(engine.model_id, engine.dim), [], {})
    blank = np.full((360, 640, 3), 90, np.uint8)
    assert [s for f in frames_of(blank, 3) for s in pipeline.process(f)] == []
    assert counting.embedded == 0


def onto(image: Image, box: FloatArray, target: FloatArray) -> Image:
    """``image`` moved and scaled so that ``box`` lands on ``target`` (both xyxy)."""
    scale = (target[2] - target[0]) / (box[2] - box[0])
    shift = target[:2] - box[:2] * scale
    matrix = np.array([[scale, 0, shift[0]], [0, scale, shift[1]]], np.float32)
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), borderValue=(200, 200, 200))


def test_a_vip_walking_in_where_a_stranger_walked_out_is_voted_on_afresh(
        scene: Image, engine: FaceEngine, photo: Callable[[str], Image]) -> None:
    # given Obama enrolled, and Biden (a stranger) standing where Obama will stand
    counting = CountingEngine(engine)
    gallery, persons = obama_enrolled(engine, photo)
    pipeline = make_pipeline(counting, gallery, [], persons)
    now = datetime.now(UTC)
    stranger = np.full_like(scene, 200)
    stranger[60:660, 480:793] = cv2.resize(photo("biden.jpg"), (313, 600))
    stranger = onto(stranger, engine.detect(stranger).xyxy[0], engine.detect(scene).xyxy[0])
    blank = np.full_like(scene, 200)
    config = FaceConfig()
    # when Biden stays until his track is settled as a stranger, leaves for a few frames (fewer than the face
    # tracker's patience, so the track lives on) and Obama steps into the same place
    images = [stranger] * 12 + [blank] * config.revote_after_missed + [scene] * 8
    sightings = [s for i, image in enumerate(images)
                 for s in pipeline.process(Frame("door", i + 1, now, i * 0.1, image))]
    # then Obama's face is voted on afresh on the track Biden left (settled as a stranger), and decided
    assert [s.match.person_id for s in sightings] == ["obama"]
    assert sightings[0].track_id == 1
