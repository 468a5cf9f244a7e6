"""IoUTracker: id continuity, new ids, track ends after max_missed_s, and the IoU matrix."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from vision.engines.base import FaceEngine
from vision.tracker import IoUTracker, TrackerConfig, TrackState, iou_matrix
from vision.types import Detections, Image


def _dets(*boxes: tuple[float, float, float, float]) -> Detections:
    return Detections.from_lists([list(b) for b in boxes], [1.0] * len(boxes))


def _ids(dets: Detections) -> list[int]:
    assert dets.track_id is not None
    return [int(i) for i in dets.track_id]


# ---------------------------------------------------------------- iou_matrix

@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (np.zeros((0, 4)), np.zeros((0, 4)), np.zeros((0, 0))),
        (np.zeros((0, 4)), [[0, 0, 1, 1]], np.zeros((0, 1))),
        ([[0, 0, 1, 1], [2, 2, 3, 3]], np.zeros((0, 4)), np.zeros((2, 0))),
        ([[0, 0, 10, 10]], [[0, 0, 10, 10]], [[1.0]]),
        ([[0, 0, 10, 10]], [[20, 20, 30, 30]], [[0.0]]),
        ([[0, 0, 10, 10]], [[10, 0, 20, 10]], [[0.0]]),  # touching edges
        ([[0, 0, 10, 10]], [[5, 0, 15, 10]], [[50 / 150]]),  # half of each overlaps
        ([[0, 0, 10, 10]], [[0, 0, 10, 5]], [[0.5]]),  # one inside the other, half its area
        ([[0, 0, 10, 10]], [[5, 5, 5, 5]], [[0.0]]),  # zero-area box
        ([[0, 0, 0, 0]], [[0, 0, 0, 0]], [[0.0]]),  # both zero-area: no division by zero
        ([[0, 0, 10, 10], [20, 20, 30, 30]], [[20, 20, 30, 30], [0, 0, 10, 10], [5, 0, 15, 10]],
         [[0, 1, 50 / 150], [1, 0, 0]]),
    ],
    ids=["both-empty", "a-empty", "b-empty", "identical", "disjoint", "touching", "half-overlap",
         "contained", "degenerate", "both-degenerate", "2x3"],
)
def test_iou_matrix(a: list[list[float]], b: list[list[float]], expected: list[list[float]]) -> None:
    # given two sets of boxes, when their IoU matrix is computed, then it matches by hand
    out = iou_matrix(np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.asarray(expected, np.float32).reshape(out.shape), atol=1e-6)
    assert out.shape == np.asarray(expected).reshape(len(a), len(b)).shape


# ---------------------------------------------------------------- tracker

def test_empty_detections_on_a_fresh_tracker() -> None:
    # given a new tracker, when it sees no faces
    tracker = IoUTracker()
    out, ended = tracker.update(Detections.empty(), 0.0)
    # then nothing is tracked, and the output still has an (empty) id column
    assert len(out) == 0 and out.track_id is not None and out.track_id.shape == (0,)
    assert ended == [] and tracker.tracks == {}


def test_a_box_moving_a_little_keeps_its_id() -> None:
    # given a tracked face
    tracker = IoUTracker()
    first, _ = tracker.update(_dets((100, 100, 200, 200)), 0.0)
    # when it moves a few pixels per frame
    ids = [_ids(first)]
    for step in range(1, 6):
        out, ended = tracker.update(_dets((100 + 8 * step, 100 + 4 * step, 200 + 8 * step, 200 + 4 * step)),
                                    step * 0.1)
        ids.append(_ids(out))
        assert ended == []
    # then it keeps the one id, and the track follows the box
    assert ids == [[1]] * 6
    track = tracker.tracks[1]
    np.testing.assert_array_equal(track.box, [140, 120, 240, 220])
    assert track.hits == 6 and track.state is TrackState.CONFIRMED
    assert track.first_seen == 0.0 and track.last_seen == pytest.approx(0.5)


def test_two_boxes_get_two_ids_and_keep_them_when_listed_in_another_order() -> None:
    # given two faces far apart
    tracker = IoUTracker()
    out, _ = tracker.update(_dets((0, 0, 50, 50), (300, 300, 350, 350)), 0.0)
    assert _ids(out) == [1, 2]
    # when the detector lists them in the other order next frame
    out, _ = tracker.update(_dets((302, 301, 352, 351), (1, 2, 51, 52)), 0.1)
    # then each keeps its own id
    assert _ids(out) == [2, 1]


def test_two_detections_never_share_one_track() -> None:
    # given one tracked face
    tracker = IoUTracker()
    tracker.update(_dets((0, 0, 100, 100)), 0.0)
    # when two overlapping boxes both overlap it
    out, _ = tracker.update(_dets((0, 0, 100, 90), (0, 10, 100, 100)), 0.1)
    # then the better match keeps id 1 and the other gets a new id
    assert sorted(_ids(out)) == [1, 2]


def test_a_box_gone_longer_than_max_missed_ends_and_a_new_one_gets_a_new_id() -> None:
    # given a tracked face and a tracker that ends tracks unseen for 1 s
    tracker = IoUTracker(TrackerConfig(max_missed_s=1.0))
    tracker.update(_dets((100, 100, 200, 200)), 0.0)
    # when frames without it pass: still within the window, then past it
    _, ended_early = tracker.update(Detections.empty(), 0.5)
    assert ended_early == [] and tracker.tracks[1].state is TrackState.LOST
    _, ended_at_limit = tracker.update(Detections.empty(), 1.0)
    assert ended_at_limit == []  # exactly max_missed_s is not yet "longer than"
    _, ended = tracker.update(Detections.empty(), 1.2)
    # then the track ends once, is reported, and is forgotten
    assert [t.track_id for t in ended] == [1]
    assert ended[0].missed == 3 and ended[0].last_seen == 0.0
    assert tracker.tracks == {}
    _, again = tracker.update(Detections.empty(), 5.0)
    assert again == []
    # and a face at the same place later is a new track
    out, _ = tracker.update(_dets((100, 100, 200, 200)), 6.0)
    assert _ids(out) == [2]


def test_a_box_missing_briefly_keeps_its_id() -> None:
    # given a tracked face (max_missed_s 1.5 by default)
    tracker = IoUTracker()
    tracker.update(_dets((100, 100, 200, 200)), 0.0)
    # when it is missed for two frames within the window, then comes back
    for t in (0.4, 0.8):
        _, ended = tracker.update(Detections.empty(), t)
        assert ended == []
    out, ended = tracker.update(_dets((105, 100, 205, 200)), 1.2)
    # then it keeps its id and is confirmed again
    assert _ids(out) == [1] and ended == []
    track = tracker.tracks[1]
    assert track.missed == 0 and track.state is TrackState.CONFIRMED and track.last_seen == 1.2


def test_one_face_ends_while_another_continues() -> None:
    # given two tracked faces
    tracker = IoUTracker(TrackerConfig(max_missed_s=0.5))
    tracker.update(_dets((0, 0, 50, 50), (300, 300, 350, 350)), 0.0)
    # when only the second keeps being seen
    tracker.update(_dets((300, 300, 350, 350)), 0.3)
    out, ended = tracker.update(_dets((301, 300, 351, 350)), 0.6)
    # then the first ends and the second keeps id 2
    assert [t.track_id for t in ended] == [1]
    assert _ids(out) == [2] and set(tracker.tracks) == {2}


@pytest.mark.parametrize(("confirm_hits", "states"), [(1, ["confirmed"] * 3),
                                                      (3, ["tentative", "tentative", "confirmed"])])
def test_confirmation_after_confirm_hits(confirm_hits: int, states: list[str]) -> None:
    # given a tracker needing confirm_hits hits, when a face is seen three times
    tracker = IoUTracker(TrackerConfig(confirm_hits=confirm_hits))
    seen = []
    for i in range(3):
        tracker.update(_dets((10, 10, 60, 60)), i * 0.1)
        seen.append(tracker.tracks[1].state.value)
    # then it is confirmed on the confirm_hits-th hit
    assert seen == states


def test_update_does_not_mutate_its_input() -> None:
    # given detections without ids
    dets = _dets((0, 0, 10, 10))
    boxes = dets.xyxy.copy()
    # when tracked, then a new object carries the ids and the input is unchanged
    out, _ = IoUTracker().update(dets, 0.0)
    assert out is not dets and dets.track_id is None
    np.testing.assert_array_equal(dets.xyxy, boxes)


def test_real_faces_keep_their_ids_across_a_small_shift(photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given the six real faces of t1.jpg
    image = photo("t1.jpg")
    tracker = IoUTracker()
    first, _ = tracker.update(engine.detect(image), 0.0)
    assert len(first) == 6
    # when the camera pans 6 px (the image shifted right) and the real engine detects again
    shifted = np.zeros_like(image)
    shifted[:, 6:] = image[:, :-6]
    second, ended = tracker.update(engine.detect(shifted), 0.1)
    # then each face keeps its id (matched by position) and none ends
    assert ended == [] and len(second) == 6
    assert sorted(_ids(second)) == [1, 2, 3, 4, 5, 6]
    for centre, track_id in zip(second.centers - np.array([6, 0], np.float32), _ids(second), strict=True):
        nearest = int(np.argmin(np.linalg.norm(first.centers - centre, axis=1)))
        assert _ids(first)[nearest] == track_id


# ---------------------------------------------------------------- moving faces (max_speed)

def _walk(tracker: IoUTracker, starts: list[float], steps: list[float], frames: int, dt: float = 0.1,
          size: float = 100.0) -> list[list[int]]:
    """Boxes of ``size`` starting at x ``starts`` moving ``steps`` px per frame; the ids of each frame."""
    out = []
    for k in range(frames):
        boxes = [(x + s * k, 200.0, x + s * k + size, 200.0 + size) for x, s in zip(starts, steps, strict=True)]
        dets, _ = tracker.update(_dets(*boxes), k * dt)
        out.append(_ids(dets))
    return out


def test_a_face_walking_across_keeps_one_track_with_max_speed_and_not_by_iou_alone() -> None:
    # given a face moving 80 % of its width between frames at 10 fps (someone walking across near the camera)
    # when tracked by IoU alone, then every frame starts a new track (the fault this option fixes)
    assert len({i for ids in _walk(IoUTracker(), [0.0], [80.0], 6) for i in ids}) == 6
    # and with max_speed, then it keeps one track, also when it stops (the velocity overshoots once)
    tracker = IoUTracker(TrackerConfig(max_speed=10.0))
    ids = _walk(tracker, [0.0], [80.0], 6)
    dets, _ = tracker.update(_dets((400.0, 200.0, 500.0, 300.0)), 0.6)
    assert {i for frame in ids for i in frame} | set(_ids(dets)) == {1}


def test_two_faces_crossing_keep_their_tracks() -> None:
    # given two faces walking towards each other, 60 px a frame each, that pass through each other
    tracker = IoUTracker(TrackerConfig(max_speed=10.0))
    ids = _walk(tracker, [0.0, 900.0], [60.0, -60.0], 14)
    # then each keeps its own track before, during and after the crossing
    assert all(frame == [1, 2] for frame in ids)


@pytest.mark.parametrize(
    ("box", "dt", "why"),
    [((380.0, 200.0, 480.0, 300.0), 0.1, "farther than max_speed allows in the time"),
     ((150.0, 200.0, 350.0, 400.0), 0.1, "twice the size"),
     ((150.0, 200.0, 250.0, 300.0), 0.5, "after a gap longer than max_gap_s"),
     ((380.0, 200.0, 480.0, 300.0), 0.3, "farther than max_speed allows in 0.3 s")],
    ids=["too-far", "other-size", "gap", "far-later"])
def test_a_face_that_cannot_be_the_same_starts_a_new_track(box: tuple[float, float, float, float], dt: float,
                                                           why: str) -> None:
    # given a still face tracked with max_speed 10 (a 100 px face may move 100 px in 0.1 s)
    tracker = IoUTracker(TrackerConfig(max_speed=10.0, max_gap_s=0.4))
    tracker.update(_dets((0.0, 200.0, 100.0, 300.0)), 0.0)
    # when a face appears that it cannot be
    dets, _ = tracker.update(_dets(box), dt)
    # then that face is a new track
    assert _ids(dets) == [2], why


def test_a_face_near_two_tracks_continues_the_nearer_one() -> None:
    # given two faces 250 px apart, both still
    tracker = IoUTracker(TrackerConfig(max_speed=10.0))
    tracker.update(_dets((0.0, 200.0, 100.0, 300.0), (250.0, 200.0, 350.0, 300.0)), 0.0)
    # when only one face is found, 80 px right of the second one (closer to it than to the first)
    dets, _ = tracker.update(_dets((330.0, 200.0, 430.0, 300.0)), 0.1)
    # then it continues the second one's track, and the first is lost
    assert _ids(dets) == [2] and tracker.tracks[1].state is TrackState.LOST


def test_a_face_that_stops_keeps_its_track_when_another_face_walks_in_where_it_was_heading() -> None:
    # given a face walking left fast (180 px a frame), which stops, while a second face walks in from the left
    # towards where the first one would have been had it not stopped (a real case at 4 fps: the first face's
    # prediction lay nearer the newcomer than the first face itself)
    tracker = IoUTracker(TrackerConfig(max_speed=10.0))
    steps = [(0.0, [(1067, 199, 1208, 339)]),
             (0.2, [(883, 193, 1036, 346)]),
             (0.4, [(705, 193, 857, 345), (56, 198, 175, 317)]),
             (0.7, [(702, 193, 856, 347), (246, 192, 378, 324)]),
             (0.9, [(690, 191, 844, 344), (242, 194, 370, 322)])]
    ids = [_ids(tracker.update(_dets(*[tuple(map(float, b)) for b in boxes]), t)[0]) for t, boxes in steps]
    # then the first face keeps track 1 and the newcomer track 2 throughout: no swap, no new track
    assert ids == [[1], [1], [1, 2], [1, 2], [1, 2]]
