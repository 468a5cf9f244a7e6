"""The parking pipeline motion-gated (the default), with a reader that finds a plate wherever a bright plate is
drawn (fast): plates are read where something moves and around a plate still being voted on, a still lot or a
parked car costs no read, and a car driving in is decided however the reads are bounded. The real reader on
real cars is in test_parking.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest

from calibration.zones import PolygonZone
from edge.cameras.config import CameraConfig
from edge.parking.config import PlatesConfig
from edge.parking.pipeline import PlatePipeline
from edge.parking.vehicle_rule import VehicleSighting
from vision.motion import MotionConfig
from vision.plates.matcher import PlateMatcher
from vision.types import Frame, Image, PlateRead

W, H = 1280, 720
PLATE = "皖APV930"


class DrawnPlates:
    """Reads the plate drawn (value 255) inside the zone's bounding box; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.areas: list[int] = []

    def read(self, image: Image, zone: PolygonZone | None = None) -> list[PlateRead]:
        self.calls += 1
        pts = np.asarray(zone.points if zone is not None else [(0, 0), (W, H)], np.float32)
        x0, y0 = int(pts[:, 0].min()), int(pts[:, 1].min())
        x1, y1 = int(pts[:, 0].max()), int(pts[:, 1].max())
        self.areas.append((x1 - x0) * (y1 - y0))
        ys, xs = np.nonzero(image[y0:y1, x0:x1, 0] == 255)
        if len(xs) == 0:
            return []
        box = (float(xs.min() + x0), float(ys.min() + y0), float(xs.max() + x0 + 1), float(ys.max() + y0 + 1))
        return [PlateRead(PLATE, PLATE, 0.95, "blue", box, (0.95,) * len(PLATE))]


def lot(car_x: int | None, seed: int) -> Image:
    """A grey lot with sensor noise, and a car (dark body, white plate) with its left edge at ``car_x``."""
    image = np.full((H, W, 3), 90, np.uint8)
    image += np.random.default_rng(seed).integers(0, 4, (H, W, 1), dtype=np.uint8)
    if car_x is not None:
        image[300:520, max(0, car_x):max(0, car_x + 400)] = 30
        px = car_x + 140
        if px >= 0 and px + 120 <= W:
            image[450:490, px:px + 120] = 255
    return image


def pipeline(reader: DrawnPlates, *, gated: bool = True, **plates: object) -> PlatePipeline:
    camera = CameraConfig.model_validate({"id": "park", "role": "parking", "source": {"url": "dir:/x"}})
    if not gated:
        camera = camera.model_copy(update={"motion": MotionConfig(enabled=False)})
    registry = SimpleNamespace(matcher=PlateMatcher({PLATE: "vip-a"}))
    return PlatePipeline(camera, PlatesConfig.model_validate(plates), reader=reader,  # type: ignore[arg-type]
                         registry=registry, rule=None)  # type: ignore[arg-type]


def play(pipe: PlatePipeline, positions: list[int | None], fps: float = 5.0) -> list[VehicleSighting]:
    start = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    out: list[VehicleSighting] = []
    for i, x in enumerate(positions):
        out += pipe.process(Frame("park", i + 1, start + timedelta(seconds=i / fps), 100.0 + i / fps, lot(x, i)))
    return out + pipe.flush()


# a car driving in from the right over 2 s (5 fps), parked 4 s, gone; an empty lot before and after
ARRIVAL: list[int | None] = [None] * 5 + [W - 40 - 90 * k for k in range(10)] + [W - 40 - 90 * 9] * 20 + [None] * 5


@pytest.mark.parametrize("look_interval_s", [0.0, 0.5, 2.0])
def test_a_car_driving_in_is_decided_once_however_the_reads_are_bounded(look_interval_s: float) -> None:
    reader = DrawnPlates()
    decided = play(pipeline(reader, look_interval_s=look_interval_s), ARRIVAL)
    assert [(s.vote.text, s.match.person_id) for s in decided] == [(PLATE, "vip-a")]


def test_a_still_lot_and_a_parked_car_cost_no_read() -> None:
    # given an empty lot for 10 frames, a car arriving, then parked for 20 frames
    reader = DrawnPlates()
    pipe = pipeline(reader)
    play(pipe, ARRIVAL)
    # then the lot was read whole on the first frame only (the 5 s refresh came while the car stood parked,
    # nothing moved since the last read), where the car moved while it moved, and not while it stood parked
    assert pipe.gate is not None and pipe.gate.counts.full == 2 and pipe.looks["whole"] == 1
    assert pipe.looks["skipped"] >= 18
    assert reader.calls < 15
    # and every read but the whole-frame looks was of a region, not the whole frame
    assert len([a for a in reader.areas if a >= W * H / 2]) == pipe.looks["whole"]


def test_whole_frame_reads_on_every_frame_without_the_gate() -> None:
    reader = DrawnPlates()
    play(pipeline(reader, gated=False), ARRIVAL)
    assert reader.calls == len(ARRIVAL)


def test_the_pipeline_is_urgent_only_while_a_plate_is_being_voted_on() -> None:
    # given the car driving in: the empty lot, then its plate read frame by frame until decided, then parked
    pipe = pipeline(DrawnPlates())
    start = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    urgent, decided_at = [], None
    for i, x in enumerate(ARRIVAL):
        if pipe.process(Frame("park", i + 1, start + timedelta(seconds=i / 5), 100.0 + i / 5, lot(x, i))):
            decided_at = i
        urgent.append(pipe.urgent)
    # then it asks for its frames first (urgent) from the first read of the plate until the vote decides it
    assert decided_at is not None
    first_read = urgent.index(True)
    assert 5 <= first_read < decided_at
    assert all(urgent[first_read:decided_at]) and not any(urgent[decided_at:]) and not any(urgent[:first_read])
