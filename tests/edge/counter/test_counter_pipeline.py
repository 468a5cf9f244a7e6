"""Counter pipeline mechanics with fakes (fast), motion-gated as a camera runs by default: face detection
cadence, the person detector's cadence, opening hours, the clip recorder calls. The fake person detector
reports the boxes of the current script step, and each frame shows those boxes, so that the motion gate sees
people arrive, move and leave. Behaviour on real images is in test_counter_scenarios.py, test_gated_counter.py
and test_counter_e2e.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from edge.cameras.config import CameraConfig
from edge.clips.types import ClipParticipants
from edge.counter.config import CounterConfig
from edge.counter.pipeline import CounterEvent, CounterPipeline
from edge.faces.config import FaceConfig
from edge.metrics import EdgeMetrics
from tests.fakes import DeterministicEmbedder
from vision.face_cadence import FaceCadenceConfig
from vision.gallery import Gallery
from vision.motion import MotionConfig
from vision.people import PersonView
from vision.types import Detections, Frame, Image

CAMERA = CameraConfig.model_validate({
    "id": "c1", "role": "counter", "source": {"url": "dir:/x"},
    "counter": {"staff_zone": [[0, 0], [100, 0], [100, 240], [0, 240]],
                "counter_zones": [{"name": "desk", "points": [[0, 0], [100, 0], [100, 240], [0, 240]]}]}})


Box = tuple[float, float, float, float]


class Boxes:
    """A person detector that returns the boxes of the current script step, counting its runs."""

    def __init__(self) -> None:
        self.boxes: list[Box] = []
        self.calls = 0

    def detect(self, image: Image) -> Detections:
        self.calls += 1
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


def pipeline(persons: Boxes, engine: CountingEngine, recorder: Recorder | None = None, *, gated: bool = True,
             metrics: EdgeMetrics | None = None, **counter: object) -> CounterPipeline:
    config = CounterConfig.model_validate({"zone_dwell_s": 0, "interaction": {"start_after_s": 1, "end_after_s": 1},
                                           **counter})
    camera = CAMERA if gated else CAMERA.model_copy(update={"motion": MotionConfig(enabled=False)})
    return CounterPipeline(camera, config, FaceConfig(), persons=persons, engine=engine,
                           gallery=Gallery(engine.model_id, engine.dim), role_of=lambda _: None,
                           tz=ZoneInfo("Asia/Shanghai"), recorder=recorder, metrics=metrics)


def picture(boxes: Sequence[Box], seed: int) -> Image:
    """A dark counter with sensor noise and each person drawn as a bright box."""
    image = np.full((240, 320, 3), 40, np.uint8)
    image += np.random.default_rng(seed).integers(0, 4, (240, 320, 1), dtype=np.uint8)
    for x1, y1, x2, y2 in boxes:
        image[int(y1):int(y2), int(x1):int(x2)] = 230
    return image


def frames(n: int, start: datetime, fps: float = 5.0, script: Sequence[Sequence[Box]] = ()) -> list[Frame]:
    """``n`` frames showing the boxes of ``script`` step by step (nobody when it is shorter)."""
    return [Frame("c1", i + 1, start + timedelta(seconds=i / fps), 100.0 + i / fps,
                  picture(script[i] if i < len(script) else (), i)) for i in range(n)]


def play(pipe: CounterPipeline, persons: Boxes, script: Sequence[Sequence[Box]], start: datetime) -> list[CounterEvent]:
    events: list[CounterEvent] = []
    for boxes, frame in zip(script, frames(len(script), start, script=script), strict=True):
        persons.boxes = list(boxes)
        events += pipe.process(frame)
    return events + pipe.flush()


MONDAY_10 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


WALKING: list[list[Box]] = [[(10.0 + 20 * i, 40.0, 70.0 + 20 * i, 200.0)] for i in range(10)]


@pytest.mark.parametrize(("face_every", "calls"), [(1, 10), (2, 5), (3, 4)])
def test_faces_are_looked_for_on_every_nth_frame_while_someone_moves(face_every: int, calls: int) -> None:
    # given someone walking across the counter for 10 frames
    persons, engine = Boxes(), CountingEngine()
    pipe = pipeline(persons, engine, face_every=face_every)
    play(pipe, persons, WALKING, MONDAY_10)
    # then faces are looked for on every face_every-th frame (one moving region, one detector call)
    assert engine.detect_calls == calls


def test_a_still_counter_is_detected_once_and_then_carried() -> None:
    # given a clerk standing still for 20 frames (sensor noise only)
    persons, engine, metrics = Boxes(), CountingEngine(), EdgeMetrics()
    pipe = pipeline(persons, engine, metrics=metrics)
    events = play(pipe, persons, [[(20.0, 40.0, 80.0, 200.0)]] * 20, MONDAY_10)
    # then the person detector and the face engine ran on the first frame only, the clerk carried over after
    assert persons.calls == 1 and engine.detect_calls == 1
    assert pipe.gate is not None and pipe.gate.counts.carried["persons"] == 19
    assert list(pipe.roles.values()) == ["staff"] and not events
    # and /metrics says so per camera: how each detector looked at each frame, and the detector's one run timed
    def frames(detector: str, how: str) -> float | None:
        return metrics.registry.get_sample_value("smartbranch_detector_frames_total",
                                                 {"camera": "c1", "detector": detector, "how": how})
    assert (frames("persons", "first"), frames("persons", "still")) == (1, 19)
    # faces: looked for on the first frame; then the gate skipped the looks the face cadence asked for (the clerk
    # shows no face: unsettled for face_cadence.max_looks looks, then looked at every interval_s), carried between
    looks = FaceCadenceConfig().max_looks
    assert frames("faces", "whole") == 1 and frames("faces", "skipped") == looks - 1
    assert frames("faces", "carried") == 20 - looks
    assert metrics.registry.get_sample_value("smartbranch_stage_seconds_count",
                                             {"camera": "c1", "stage": "persons"}) == 1


class HeadFaces(CountingEngine):
    """A face at the top of every bright box of the picture (the people), counting its calls."""

    def detect(self, image: Image) -> Detections:
        self.detect_calls += 1
        count, _, stats, _ = cv2.connectedComponentsWithStats((image[:, :, 0] > 200).astype(np.uint8))
        boxes = [(x + w * 0.25, y + 4.0, x + w * 0.75, y + 4.0 + w * 0.5)
                 for x, y, w, h, area in stats[1:count] if w >= 20 and h >= 40]
        xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
        return Detections(xyxy, np.full(len(xyxy), 0.9, np.float32))


def test_faces_are_looked_for_while_someone_is_unsettled_then_at_an_interval() -> None:
    # given a clerk standing still with their face in view for 4 s (5 fps), then a customer stepping in
    persons, engine, metrics = Boxes(), HeadFaces(), EdgeMetrics()
    pipe = pipeline(persons, engine, metrics=metrics, face_cadence={"interval_s": 0.5})
    clerk, customer = (20.0, 40.0, 80.0, 200.0), (200.0, 40.0, 260.0, 200.0)
    script = [[clerk]] * 20 + [[clerk, customer]] * 12
    looked = []
    for boxes, frame in zip(script, frames(len(script), MONDAY_10, script=script), strict=True):
        persons.boxes = list(boxes)
        before = engine.detect_calls
        pipe.process(frame)
        looked.append(engine.detect_calls > before)
    # then the clerk's face is looked at on every frame until the voter settles it (an unknown face: 8
    # observations), then every interval_s (0.5 s: every 3rd frame), and they keep their face box between looks
    observations = FaceConfig().voter.max_observations
    assert looked[:observations] == [True] * observations
    assert looked[observations:20] == [False, False, True] * 4
    # and the customer's arrival brings the looks back to every frame until their face is settled too
    arrived = looked.index(True, 20)
    assert arrived <= 21 and looked[arrived:arrived + observations] == [True] * observations
    assert sum(looked) < len(script) - 8
    assert all(p.face_box is not None for p in pipe._people_now)
    carried = metrics.registry.get_sample_value("smartbranch_detector_frames_total",
                                                {"camera": "c1", "detector": "faces", "how": "carried"})
    assert carried == len(script) - sum(looked)


def test_without_the_face_cadence_faces_are_looked_for_on_every_frame() -> None:
    persons, engine = Boxes(), HeadFaces()
    pipe = pipeline(persons, engine, face_cadence={"enabled": False})
    play(pipe, persons, [[(20.0, 40.0, 80.0, 200.0)]] * 20, MONDAY_10)
    assert engine.detect_calls == 20


def test_someone_arriving_runs_the_person_detector_on_that_frame() -> None:
    # given a clerk standing still, then a customer stepping in at frame 5 and standing beside
    persons, engine = Boxes(), CountingEngine()
    pipe = pipeline(persons, engine)
    clerk, customer = (20.0, 40.0, 80.0, 200.0), (200.0, 40.0, 260.0, 200.0)
    calls = []
    for i, frame in enumerate(frames(8, MONDAY_10, script=[[clerk]] * 5 + [[clerk, customer]] * 3)):
        persons.boxes = [clerk] + ([customer] if i >= 5 else [])
        pipe.process(frame)
        calls.append(persons.calls)
    # then the detector ran on the first frame and at once on the frame the customer appeared
    assert calls[:6] == [1, 1, 1, 1, 1, 2]
    assert sorted(str(r) for r in pipe.roles.values()) == ["customer", "staff"]


@pytest.mark.parametrize(("start", "alerts"), [(MONDAY_10, 1), (MONDAY_10 + timedelta(hours=11), 0)])
def test_an_empty_counter_alerts_only_in_opening_hours(start: datetime, alerts: int) -> None:
    # Given nobody at the counter for 3 s with a 1 s limit
    pipe = pipeline(Boxes(), CountingEngine(), unstaffed_after_s=1.0)
    events = [e for f in frames(15, start) for e in pipe.process(f)]
    assert [e.kind for e in events] == ["counter_unstaffed"] * alerts


def served_then_leaving() -> list[list[Box]]:
    """Staff (in the staff zone) and a customer side by side for 2 s, then the customer walking off to the right."""
    staff, customer = (20.0, 40.0, 80.0, 200.0), (110.0, 40.0, 170.0, 200.0)
    script = [[staff, customer] for _ in range(10)]
    script += [[staff, (customer[0] + 50 * k, 40.0, customer[2] + 50 * k, 200.0)] for k in range(1, 4)]
    return script + [[staff] for _ in range(12)]


@pytest.mark.parametrize("gated", [True, False], ids=["motion-gated", "every-frame"])
def test_the_recorder_follows_each_interaction_with_its_times(gated: bool) -> None:
    # Given staff and a customer side by side for 2 s, then the customer walking away
    persons, recorder = Boxes(), Recorder()
    pipe = pipeline(persons, CountingEngine(), recorder, gated=gated)
    events = play(pipe, persons, served_then_leaving(), MONDAY_10)
    # Then one interaction, recorded from the moment they became near to the last moment they were near
    kinds = [e.kind for e in events]
    assert kinds == ["interaction_started", "interaction_ended"]
    [(participants, start_t)] = recorder.started
    assert participants.interaction_id == events[0].interaction_id == events[1].interaction_id
    assert start_t == pytest.approx(100.0)
    [(stopped_id, stop_t)] = recorder.stopped
    assert stopped_id == participants.interaction_id
    assert recorder.pushed == 25 and recorder.flushed == 1
    # the same last moment whether the person detector ran on every frame or at its cadence
    ungated_persons, ungated_recorder = Boxes(), Recorder()
    play(pipeline(ungated_persons, CountingEngine(), ungated_recorder, gated=False), ungated_persons,
         served_then_leaving(), MONDAY_10)
    assert stop_t == pytest.approx(ungated_recorder.stopped[0][1])
    assert 100.0 + 9 / 5 <= stop_t <= 100.0 + 12 / 5
