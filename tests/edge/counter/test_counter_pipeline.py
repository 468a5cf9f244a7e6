"""Counter pipeline mechanics with fakes (fast): face detection cadence, opening hours, the clip recorder
calls. Behaviour on real images is in test_counter_scenarios.py and test_counter_e2e.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from edge.cameras.config import CameraConfig
from edge.clips.types import ClipParticipants
from edge.counter.config import CounterConfig
from edge.counter.pipeline import CounterPipeline
from edge.faces.config import FaceConfig
from tests.fakes import DeterministicEmbedder
from vision.gallery import Gallery
from vision.people import PersonView
from vision.types import Detections, Frame, Image

CAMERA = CameraConfig.model_validate({
    "id": "c1", "role": "counter", "source": {"url": "dir:/x"},
    "counter": {"staff_zone": [[0, 0], [100, 0], [100, 240], [0, 240]],
                "counter_zones": [{"name": "desk", "points": [[0, 0], [100, 0], [100, 240], [0, 240]]}]}})


class Boxes:
    """A person detector that returns the boxes of the current script step."""

    def __init__(self) -> None:
        self.boxes: list[tuple[float, float, float, float]] = []

    def detect(self, image: Image) -> Detections:
        xyxy = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        return Detections(xyxy, np.full(len(xyxy), 0.9, np.float32))


class CountingEngine(DeterministicEmbedder):
    def __init__(self) -> None:
        self.detect_calls = 0

    def detect(self, image: Image) -> Detections:
        self.detect_calls += 1
        return super().detect(image)


class Recorder:
    def __init__(self) -> None:
        self.pushed = 0
        self.started: list[tuple[ClipParticipants, float]] = []
        self.stopped: list[tuple[str, float]] = []
        self.flushed = 0

    def push(self, frame: Frame, people: Sequence[PersonView]) -> None:
        self.pushed += 1

    def start(self, participants: ClipParticipants, t_mono: float) -> None:
        self.started.append((participants, t_mono))

    def stop(self, interaction_id: str, t_mono: float) -> None:
        self.stopped.append((interaction_id, t_mono))

    def flush(self) -> None:
        self.flushed += 1


def pipeline(persons: Boxes, engine: CountingEngine, recorder: Recorder | None = None,
             **counter: object) -> CounterPipeline:
    config = CounterConfig.model_validate({"zone_dwell_s": 0, "interaction": {"start_after_s": 1, "end_after_s": 1},
                                           **counter})
    return CounterPipeline(CAMERA, config, FaceConfig(), persons=persons, engine=engine,
                           gallery=Gallery(engine.model_id, engine.dim), role_of=lambda _: None,
                           tz=ZoneInfo("Asia/Shanghai"), recorder=recorder)


def frames(n: int, start: datetime, fps: float = 5.0) -> list[Frame]:
    image = np.zeros((240, 320, 3), np.uint8)
    return [Frame("c1", i + 1, start + timedelta(seconds=i / fps), 100.0 + i / fps, image) for i in range(n)]


MONDAY_10 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


@pytest.mark.parametrize(("face_every", "calls"), [(1, 10), (2, 5), (3, 4)])
def test_faces_are_detected_on_every_nth_frame(face_every: int, calls: int) -> None:
    persons, engine = Boxes(), CountingEngine()
    pipe = pipeline(persons, engine, face_every=face_every)
    for frame in frames(10, MONDAY_10):
        pipe.process(frame)
    assert engine.detect_calls == calls


@pytest.mark.parametrize(("start", "alerts"), [(MONDAY_10, 1), (MONDAY_10 + timedelta(hours=11), 0)])
def test_an_empty_counter_alerts_only_in_opening_hours(start: datetime, alerts: int) -> None:
    # Given nobody at the counter for 3 s with a 1 s limit
    pipe = pipeline(Boxes(), CountingEngine(), unstaffed_after_s=1.0)
    events = [e for f in frames(15, start) for e in pipe.process(f)]
    assert [e.kind for e in events] == ["counter_unstaffed"] * alerts


def test_the_recorder_follows_each_interaction_with_its_times() -> None:
    # Given staff (in the staff zone) and a customer side by side for 2 s, then the customer gone
    persons, recorder = Boxes(), Recorder()
    pipe = pipeline(persons, CountingEngine(), recorder)
    events = []
    for i, frame in enumerate(frames(25, MONDAY_10)):
        persons.boxes = [(20.0, 40.0, 80.0, 200.0)] + ([(110.0, 40.0, 170.0, 200.0)] if i < 10 else [])
        events += pipe.process(frame)
    events += pipe.flush()
    # Then one interaction, recorded from the moment they became near to the last moment they were near
    kinds = [e.kind for e in events]
    assert kinds == ["interaction_started", "interaction_ended"]
    [(participants, start_t)] = recorder.started
    assert participants.interaction_id == events[0].interaction_id == events[1].interaction_id
    assert start_t == pytest.approx(100.0)
    [(stopped_id, stop_t)] = recorder.stopped
    assert stopped_id == participants.interaction_id and stop_t == pytest.approx(100.0 + 9 / 5)
    assert recorder.pushed == 25 and recorder.flushed == 1
