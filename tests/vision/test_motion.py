"""Motion gating on arrays and on real frames: where the detectors are told to look, and what they find there."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from vision.engines.base import FaceEngine
from vision.motion import MotionConfig, MotionDetector, MotionResult, detect_in_regions, grow, merge_regions
from vision.types import Image

W, H = 1280, 720


def lobby(square_at: tuple[int, int] | None = None, *, seed: int = 0) -> Image:
    """A textured still background, with a bright 100 px square at ``square_at`` (top-left) when given."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), 120, np.uint8)
    img += rng.integers(0, 4, (H, W, 1), dtype=np.uint8)  # sensor noise, well under the threshold
    if square_at is not None:
        x, y = square_at
        img[y:y + 100, x:x + 100] = 250
    return img


def contains(region: tuple[int, int, int, int], box: tuple[float, float, float, float]) -> bool:
    return region[0] <= box[0] and region[1] <= box[1] and region[2] >= box[2] and region[3] >= box[3]


def test_first_frame_is_detected_whole_then_a_still_frame_is_skipped() -> None:
    gate = MotionDetector()
    first = gate.update(lobby(), 0.0)
    assert first.full_frame and not first.idle
    still = gate.update(lobby(seed=1), 0.1)
    assert still.idle
    assert still.regions == ()


def test_a_moving_object_gives_one_padded_region_around_it() -> None:
    gate = MotionDetector()
    gate.update(lobby(), 0.0)
    result = gate.update(lobby((600, 300)), 0.1)
    assert not result.full_frame
    assert len(result.regions) == 1
    assert contains(result.regions[0], (600, 300, 700, 400))
    x1, y1, x2, y2 = result.regions[0]
    assert (x2 - x1) * (y2 - y1) < 0.1 * W * H  # a region, not the frame


def test_kept_boxes_are_looked_at_again_while_they_stand_still() -> None:
    gate = MotionDetector()
    gate.update(lobby((600, 300)), 0.0)
    result = gate.update(lobby((600, 300), seed=2), 0.1, keep=[(600.0, 300.0, 700.0, 400.0)])
    assert len(result.regions) == 1
    assert contains(result.regions[0], (600, 300, 700, 400))


def test_changed_holds_what_moves_now_and_blobs_what_differs_from_the_background() -> None:
    # given a still lobby, then a square that comes in and stops
    gate = MotionDetector()
    gate.update(lobby(), 0.0)
    came = gate.update(lobby((600, 300), seed=1), 0.1)
    stopped = gate.update(lobby((600, 300), seed=2), 0.2)
    # then the frame it came in has it both as a blob and as changed; once it stopped, only as a blob (the
    # background has not learnt it yet)
    assert len(came.blobs) == 1 and len(came.changed) == 1
    assert len(stopped.blobs) == 1 and stopped.changed == ()
    assert gate.update(lobby(seed=3), 0.3).changed  # and it leaving is a change again


def test_an_overloaded_camera_is_refreshed_only_every_refresh_min_frames() -> None:
    # given a camera processing a frame every 3 s, past refresh_s each time
    gate = MotionDetector(MotionConfig(refresh_s=1.0, refresh_min_frames=3))
    looks = [gate.update(lobby(seed=i), 3.0 * i).full_frame for i in range(8)]
    # then the whole frame is looked at on the first frame and every third one after, not on every frame
    assert looks == [True, False, False, True, False, False, True, False]


def test_the_whole_frame_is_refreshed_every_refresh_s_and_on_a_global_change() -> None:
    gate = MotionDetector(MotionConfig(refresh_s=1.0, refresh_min_frames=1))
    gate.update(lobby(), 0.0)
    assert gate.update(lobby(), 0.5).idle
    assert gate.update(lobby(), 1.0).full_frame
    assert gate.update(lobby(), 1.1).idle
    lights_on = np.clip(lobby().astype(np.int16) + 60, 0, 255).astype(np.uint8)
    assert gate.update(lights_on, 1.2).full_frame


def test_a_new_frame_size_starts_a_new_background() -> None:
    gate = MotionDetector()
    gate.update(lobby(), 0.0)
    small = np.full((360, 640, 3), 120, np.uint8)
    assert gate.update(small, 0.1).full_frame


@pytest.mark.parametrize(("boxes", "expected"), [
    ([], []),
    ([(0, 0, 10, 10)], [(0, 0, 10, 10)]),
    ([(0, 0, 10, 10), (5, 5, 20, 20)], [(0, 0, 20, 20)]),
    ([(0, 0, 10, 10), (50, 50, 60, 60)], [(0, 0, 10, 10), (50, 50, 60, 60)]),
    ([(0, 0, 10, 10), (30, 0, 40, 10), (8, 0, 32, 5)], [(0, 0, 40, 10)]),  # a bridge joins the two
])
def test_merge_regions(boxes: list[tuple[int, int, int, int]], expected: list[tuple[int, int, int, int]]) -> None:
    assert sorted(merge_regions(boxes)) == sorted(expected)


@pytest.mark.parametrize(("box", "region"), [
    ((100, 100, 110, 110), (9, 9, 201, 201)),  # grown about its centre to the minimum side
    ((0, 0, 400, 300), (0, 0, 448, 348)),  # padded and clipped at the frame's edge
    ((1200, 650, 1280, 720), (1144, 589, 1280, 720)),
])
def test_grow(box: tuple[float, float, float, float], region: tuple[int, int, int, int]) -> None:
    assert grow(box, 48, 192, W, H) == region


@pytest.mark.parametrize("bad", [{"width": 0}, {"threshold": 0}, {"max_area": 1.5}, {"refresh_s": 0},
                                 {"refresh_min_frames": 0},
                                 {"pad": 3}])
def test_bad_config_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MotionConfig.model_validate(bad)


def test_idle_result_detects_nothing_and_never_calls_the_detector(engine: FaceEngine, photo) -> None:  # type: ignore[no-untyped-def]
    image = photo("obama.jpg")
    assert len(detect_in_regions(engine.detect, image, MotionResult(False, (), 0.0))) == 0


def test_faces_found_in_regions_are_where_the_whole_frame_finds_them(engine: FaceEngine, photo) -> None:  # type: ignore[no-untyped-def]
    # given a real group photo on a 720p canvas and regions around two of its faces
    group = photo("t1.jpg")
    canvas = np.full((H, W, 3), 200, np.uint8)
    gh, gw = min(group.shape[0], H), min(group.shape[1], W)
    canvas[:gh, :gw] = group[:gh, :gw]
    whole = engine.detect(canvas)
    assert len(whole) >= 2
    picked = whole.xyxy[:2]
    regions = tuple(merge_regions([grow(b, 48, 192, W, H) for b in picked]))
    # when detecting only in the regions
    found = detect_in_regions(engine.detect, canvas, MotionResult(False, regions, 0.01))
    # then each picked face is found at the same place (HOG's 8 px window grid starts at the crop's corner,
    # so a box may move by a few pixels), with its landmarks shifted back to frame pixels too
    assert found.landmarks is not None and whole.landmarks is not None
    for j, box in enumerate(picked):
        overlaps = [iou(b, box) for b in found.xyxy]
        i = int(np.argmax(overlaps))
        assert overlaps[i] > 0.7
        assert np.abs(found.landmarks[i] - whole.landmarks[j]).max() < 0.15 * (box[2] - box[0])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))
