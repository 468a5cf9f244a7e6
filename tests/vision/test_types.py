"""Core value types: shape validation, selection, immutability, Frame checks and SearchResult.margin."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from vision.engines.base import FaceEngine
from vision.types import Detections, Frame, GalleryHit, Image, SearchResult


def _dets(n: int = 3, *, landmarks: bool = True, track_ids: bool = False) -> Detections:
    xyxy = np.array([[10 * i, 20 * i, 10 * i + 4 + i, 20 * i + 6 + 2 * i] for i in range(n)], np.float32).reshape(-1, 4)
    score = np.linspace(0.1, 0.9, n).astype(np.float32)
    lm = np.arange(n * 10, dtype=np.float32).reshape(n, 5, 2) if landmarks else None
    tid = np.arange(100, 100 + n, dtype=np.int64) if track_ids else None
    return Detections(xyxy, score, lm, tid)


# ---------------------------------------------------------------- Detections validation

@pytest.mark.parametrize(
    ("xyxy", "score", "landmarks", "track_id", "message"),
    [
        (np.zeros((2, 3), np.float32), np.zeros(2, np.float32), None, None, "xyxy"),
        (np.zeros((4,), np.float32), np.zeros(1, np.float32), None, None, "xyxy"),
        (np.zeros((2, 4, 1), np.float32), np.zeros(2, np.float32), None, None, "xyxy"),
        (np.zeros((2, 4), np.float32), np.zeros(3, np.float32), None, None, "score"),
        (np.zeros((2, 4), np.float32), np.zeros((2, 1), np.float32), None, None, "score"),
        (np.zeros((0, 4), np.float32), np.zeros(1, np.float32), None, None, "score"),
        (np.zeros((2, 4), np.float32), np.zeros(2, np.float32), np.zeros((3, 5, 2), np.float32), None, "landmarks"),
        (np.zeros((2, 4), np.float32), np.zeros(2, np.float32), np.zeros((2, 5, 3), np.float32), None, "landmarks"),
        (np.zeros((2, 4), np.float32), np.zeros(2, np.float32), np.zeros((2, 10), np.float32), None, "landmarks"),
        (np.zeros((2, 4), np.float32), np.zeros(2, np.float32), None, np.zeros(3, np.int64), "track_id"),
        (np.zeros((2, 4), np.float32), np.zeros(2, np.float32), None, np.zeros((2, 1), np.int64), "track_id"),
    ],
    ids=["xyxy-3-cols", "xyxy-1d", "xyxy-3d", "score-too-long", "score-2d", "score-for-empty",
         "landmarks-count", "landmarks-3-coords", "landmarks-2d", "track-id-count", "track-id-2d"],
)
def test_detections_reject_bad_shapes(xyxy: np.ndarray, score: np.ndarray, landmarks: np.ndarray | None,
                                      track_id: np.ndarray | None, message: str) -> None:
    # given arrays whose shapes disagree, when a Detections is built, then ValueError names the field
    with pytest.raises(ValueError, match=message):
        Detections(xyxy, score, landmarks, track_id)


@pytest.mark.parametrize("with_landmarks", [False, True])
def test_empty_detections(with_landmarks: bool) -> None:
    # given nothing, when empty() is built
    dets = Detections.empty(with_landmarks=with_landmarks)
    # then it has zero rows with the right column shapes
    assert len(dets) == 0
    assert dets.xyxy.shape == (0, 4) and dets.xyxy.dtype == np.float32
    assert dets.score.shape == (0,)
    assert (dets.landmarks is not None) == with_landmarks
    if dets.landmarks is not None:
        assert dets.landmarks.shape == (0, 5, 2)
    assert dets.widths.shape == (0,) and dets.heights.shape == (0,) and dets.centers.shape == (0, 2)


@pytest.mark.parametrize(
    ("boxes", "scores", "expected_len"),
    [([], [], 0), ([[0, 0, 10, 10]], [0.5], 1), ([[0, 0, 1, 1], [2, 2, 3, 3]], [0.1, 0.2], 2)],
)
def test_from_lists(boxes: list[list[float]], scores: list[float], expected_len: int) -> None:
    # given plain lists, when converted, then the arrays have the expected row count and dtype
    dets = Detections.from_lists(boxes, scores)
    assert len(dets) == expected_len
    assert dets.xyxy.dtype == np.float32 and dets.xyxy.shape == (expected_len, 4)


# ---------------------------------------------------------------- selection

@pytest.mark.parametrize(
    ("index", "expected_rows"),
    [
        (np.array([False, False, False]), []),
        (np.array([True, False, True]), [0, 2]),
        (np.array([True, True, True]), [0, 1, 2]),
        (np.array([], np.int64), []),
        (np.array([2, 0], np.int64), [2, 0]),
        (slice(1, None), [1, 2]),
    ],
    ids=["mask-none", "mask-some", "mask-all", "index-empty", "index-reordered", "slice"],
)
def test_selection_keeps_every_column_aligned(index: np.ndarray | slice, expected_rows: list[int]) -> None:
    # given three detections with landmarks and track ids
    dets = _dets(3, track_ids=True)
    # when a subset is selected
    sub = dets[index]
    # then every column holds exactly the selected rows, in order
    assert len(sub) == len(expected_rows)
    np.testing.assert_array_equal(sub.xyxy, dets.xyxy[expected_rows].reshape(-1, 4))
    np.testing.assert_array_equal(sub.score, dets.score[expected_rows])
    assert sub.landmarks is not None and sub.track_id is not None
    np.testing.assert_array_equal(sub.landmarks, dets.landmarks[expected_rows].reshape(-1, 5, 2))  # type: ignore[index]
    np.testing.assert_array_equal(sub.track_id, dets.track_id[expected_rows])  # type: ignore[index]


def test_bad_mask_length_is_rejected() -> None:
    # given three detections, when selected with a mask of the wrong length, then numpy refuses
    with pytest.raises(IndexError):
        _ = _dets(3)[np.array([True, False])]


def test_selection_without_optional_columns_keeps_them_none() -> None:
    # given detections without landmarks or ids, when masked, then the optional columns stay None
    sub = _dets(3, landmarks=False)[np.array([True, False, True])]
    assert sub.landmarks is None and sub.track_id is None and len(sub) == 2


# ---------------------------------------------------------------- immutability

def test_with_track_ids_returns_a_new_object_and_leaves_the_original() -> None:
    # given detections without track ids
    dets = _dets(3)
    xyxy_before = dets.xyxy.copy()
    # when ids are attached
    tracked = dets.with_track_ids(np.array([7, 8, 9]))
    # then a new object carries int64 ids and the original is untouched
    assert tracked is not dets
    assert dets.track_id is None
    assert tracked.track_id is not None and tracked.track_id.dtype == np.int64
    np.testing.assert_array_equal(tracked.track_id, [7, 8, 9])
    np.testing.assert_array_equal(dets.xyxy, xyxy_before)


def test_with_track_ids_of_wrong_length_is_rejected() -> None:
    # given three detections, when two ids are attached, then ValueError
    with pytest.raises(ValueError, match="track_id"):
        _dets(3).with_track_ids(np.array([1, 2]))


def test_detections_are_frozen() -> None:
    # given detections, when a field is reassigned, then the dataclass refuses
    dets = _dets(1)
    with pytest.raises(AttributeError):
        dets.score = np.zeros(1, np.float32)  # type: ignore[misc]


# ---------------------------------------------------------------- geometry

@pytest.mark.parametrize(
    ("boxes", "widths", "heights", "centers"),
    [
        ([], [], [], np.zeros((0, 2))),
        ([[0, 0, 10, 20]], [10], [20], [[5, 10]]),
        ([[10, 20, 30, 60], [1.5, 2.5, 2.5, 4.5]], [20, 1], [40, 2], [[20, 40], [2, 3.5]]),
    ],
)
def test_widths_heights_centers(boxes: list[list[float]], widths: list[float], heights: list[float],
                                centers: list[list[float]]) -> None:
    # given boxes, when their geometry is read, then it matches the hand-computed values
    dets = Detections.from_lists(boxes, [0.5] * len(boxes))
    np.testing.assert_allclose(dets.widths, widths)
    np.testing.assert_allclose(dets.heights, heights)
    np.testing.assert_allclose(dets.centers, np.asarray(centers).reshape(-1, 2))
    assert dets.widths.dtype == np.float32 and dets.centers.dtype == np.float32


def test_real_detections_geometry_agrees_with_boxes(photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given the real engine's detection of obama.jpg
    dets = engine.detect(photo("obama.jpg"))
    # when geometry is read, then the centre lies inside the box and sizes are positive
    assert len(dets) == 1
    (cx, cy), (x1, y1, x2, y2) = dets.centers[0], dets.xyxy[0]
    assert x1 < cx < x2 and y1 < cy < y2
    assert dets.widths[0] > 80 and dets.heights[0] > 80
    # and a mask selecting nothing gives an empty set that keeps the landmarks column
    none = dets[np.zeros(1, bool)]
    assert len(none) == 0 and none.landmarks is not None and none.landmarks.shape == (0, 5, 2)


# ---------------------------------------------------------------- Frame

NOW = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((0, 0, 3), np.uint8),  # empty but well-typed: accepted
        np.zeros((4, 6, 3), np.uint8),
    ],
)
def test_frame_accepts_bgr_uint8(image: np.ndarray) -> None:
    # given a BGR uint8 image, when a Frame is built, then its size comes from the image
    frame = Frame("cam1", 0, NOW, 0.0, image)
    assert (frame.height, frame.width) == image.shape[:2]


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 6), np.uint8),  # grey 2-D
        np.zeros((4, 6, 3), np.float32),  # float
        np.zeros((4, 6, 3), np.uint16),
        np.zeros((4, 6, 4), np.uint8),  # BGRA
        np.zeros((4, 6, 1), np.uint8),
        np.zeros((0,), np.uint8),  # empty 1-D
    ],
    ids=["2d", "float32", "uint16", "4-channels", "1-channel", "empty-1d"],
)
def test_frame_rejects_non_bgr_uint8(image: np.ndarray) -> None:
    # given an image that is not BGR uint8 HxWx3, when a Frame is built, then ValueError
    with pytest.raises(ValueError, match="BGR uint8"):
        Frame("cam1", 0, NOW, 0.0, image)


@pytest.mark.parametrize(
    ("captured_at", "ok"),
    [
        (datetime(2024, 5, 1, 9, 30), False),
        (datetime(2024, 5, 1, 9, 30, tzinfo=UTC), True),
        (datetime(2024, 5, 1, 17, 30, tzinfo=timezone(timedelta(hours=8))), True),
    ],
    ids=["naive", "utc", "utc+8"],
)
def test_frame_requires_aware_datetime(captured_at: datetime, ok: bool) -> None:
    # given a capture time, when a Frame is built, then naive datetimes are refused
    image = np.zeros((2, 2, 3), np.uint8)
    if ok:
        assert Frame("cam1", 1, captured_at, 1.0, image).captured_at == captured_at
    else:
        with pytest.raises(ValueError, match="timezone-aware"):
            Frame("cam1", 1, captured_at, 1.0, image)


def test_frame_holds_a_real_photo(photo: Callable[[str], Image]) -> None:
    # given a real decoded photo, when wrapped in a Frame, then its size is the photo's
    image = photo("obama.jpg")
    frame = Frame("entrance", 3, NOW, 12.5, image)
    assert (frame.height, frame.width) == (1137, 910)


# ---------------------------------------------------------------- SearchResult.margin

@pytest.mark.parametrize(
    ("hits", "best", "margin"),
    [
        ((), None, 0.0),
        ((GalleryHit("a", 0.9),), "a", 0.9),
        ((GalleryHit("a", 0.9), GalleryHit("b", 0.6)), "a", 0.3),
        ((GalleryHit("a", 0.9), GalleryHit("b", 0.6), GalleryHit("c", 0.5)), "a", 0.3),
        ((GalleryHit("a", 0.5), GalleryHit("b", -0.2)), "a", 0.5),  # a negative runner-up counts as 0
    ],
    ids=["no-hits", "one-hit", "two-hits", "three-hits", "negative-runner-up"],
)
def test_search_result_margin(hits: tuple[GalleryHit, ...], best: str | None, margin: float) -> None:
    # given per-person hits, when the margin is read, then it is best minus max(runner-up, 0)
    result = SearchResult(hits)
    assert (result.best.person_id if result.best else None) == best
    assert result.margin == pytest.approx(margin)
