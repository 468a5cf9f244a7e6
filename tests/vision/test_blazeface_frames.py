"""BlazeFace on 720p camera frames: tiles, boxes mapped back to the frame, HOG's box convention, and the same
people as dlib HOG with the same embeddings, on real photos."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from bench.face_detect_match import iou_matrix, match
from vision.engines.base import FaceEngine
from vision.engines.blazeface import BlazeFaceConfig, BlazeFaceDetector, weighted_nms
from vision.engines.blazeface_frames import (
    BlazeFaceFrameDetector,
    BlazeFaceFramesConfig,
    tile_regions,
    to_hog_boxes,
)
from vision.engines.camera_faces import CameraFaceEngine
from vision.engines.registry import build_camera_engine
from vision.errors import EngineConfigError
from vision.types import Detections, Image


@pytest.fixture(scope="module")
def blazeface(engine: FaceEngine) -> CameraFaceEngine:
    built = build_camera_engine(engine, "blazeface")
    assert isinstance(built, CameraFaceEngine)
    return built


def in_frame(image: Image, height: int = 720, left: int | None = None) -> Image:
    """``image`` scaled to ``height`` and placed on a black 1280x720 frame (centred unless ``left``)."""
    scale = height / image.shape[0]
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)[:, :1280]
    frame = np.zeros((720, 1280, 3), np.uint8)
    x = (1280 - small.shape[1]) // 2 if left is None else left
    width = min(small.shape[1], 1280 - x)
    frame[720 - small.shape[0]:, x:x + width] = small[:, :width]
    return frame


@pytest.mark.parametrize(("size", "side", "overlap", "expected"), [
    ((1280, 720), 720, 160, [(0, 0, 720, 720), (560, 0, 1280, 720)]),  # two squares, overlapping 160 px
    ((500, 300), 720, 160, [(0, 0, 500, 300)]),  # a motion region smaller than a tile: one look
    ((1500, 1000), 720, 160, [(0, 0, 720, 720), (390, 0, 1110, 720), (780, 0, 1500, 720),
                              (0, 280, 720, 1000), (390, 280, 1110, 1000), (780, 280, 1500, 1000)]),
    ((0, 720), 720, 160, []),  # empty
])
def test_tiles_cover_the_image_with_at_least_the_overlap(size: tuple[int, int], side: int, overlap: int,
                                                         expected: list[tuple[int, int, int, int]]) -> None:
    assert tile_regions(*size, side, overlap) == expected


def test_a_tile_no_larger_than_its_overlap_is_refused() -> None:
    with pytest.raises(ValueError, match="larger than its overlap"):
        tile_regions(1280, 720, 160, 160)


def test_frame_detector_looks_at_the_whole_frame_and_its_tiles(blazeface: CameraFaceEngine) -> None:
    detector = BlazeFaceFrameDetector(80)
    # an 80 px face: 720 px tiles (the face is ~28 px of the 256 px input), and the whole frame first
    assert detector.tile_px == 720 and detector.overlap_px == 160
    assert detector.looks(1280, 720) == [(0, 0, 1280, 720), (0, 0, 720, 720), (560, 0, 1280, 720)]
    assert detector.looks(400, 300) == [(0, 0, 400, 300)]


def test_blazeface_boxes_move_into_hogs_convention() -> None:
    boxes = np.array([[100, 100, 200, 200]], np.float32)
    hog = to_hog_boxes(boxes)
    # a little left and up, 6.5 % larger, as measured against HOG on real frames
    centre = (hog[0, :2] + hog[0, 2:]) / 2
    assert centre[0] == pytest.approx(148.4) and centre[1] == pytest.approx(146.5)
    assert hog[0, 2] - hog[0, 0] == pytest.approx(106.5)
    assert to_hog_boxes(np.zeros((0, 4), np.float32)).shape == (0, 4)


def test_finds_the_same_people_as_hog_in_t1_at_720p_with_the_same_embeddings(
        photo: Callable[[str], Image], engine: FaceEngine, blazeface: CameraFaceEngine) -> None:
    # given the group photo of six on a 720p frame
    frame = in_frame(photo("t1.jpg"))
    # when HOG and BlazeFace each look for faces
    hog = engine.detect(frame)
    found = blazeface.detect(frame)
    # then both find the six, one to one, in nearly the same boxes
    assert len(hog) == 6 and len(found) == 6
    pairs = match(hog.xyxy, found.xyxy, 0.5)
    assert len(pairs) == 6
    # with dlib's 5 landmarks inside each box, and the same embedding of each face from either box
    assert found.landmarks is not None and found.landmarks.shape == (6, 5, 2)
    for box, points in zip(found.xyxy, found.landmarks, strict=True):
        assert (points >= box[:2] - 2).all() and (points <= box[2:] + 2).all()
    vectors_hog = engine.embed(frame, hog)
    vectors_blaze = blazeface.embed(frame, found)
    cosines = [float(vectors_hog[i] @ vectors_blaze[j]) for i, j in pairs]
    assert min(cosines) > 0.97


def test_a_face_in_the_right_hand_tile_maps_back_to_frame_pixels(
        photo: Callable[[str], Image], engine: FaceEngine, blazeface: CameraFaceEngine) -> None:
    # given a portrait whose face lies only in the second tile (x 720..1280) of a 720p frame
    frame = in_frame(photo("obama.jpg"), height=400, left=900)
    hog = engine.detect(frame)
    assert len(hog) == 1 and hog.xyxy[0, 0] > 720
    # when BlazeFace looks at the whole frame and its tiles, then its one face is where HOG's is
    found = blazeface.detect(frame)
    assert len(found) == 1
    assert iou_matrix(found.xyxy, hog.xyxy)[0, 0] > 0.6
    # and the same face shifted 300 px to the left (now seen by both tiles) moves by 300 px
    shifted = np.ascontiguousarray(np.roll(frame, -300, axis=1))
    moved = blazeface.detect(shifted)
    assert len(moved) == 1
    assert iou_matrix(moved.xyxy + np.array([300, 0, 300, 0], np.float32), found.xyxy)[0, 0] > 0.9


def test_faces_well_below_min_face_px_are_dropped(photo: Callable[[str], Image]) -> None:
    # given t1's six faces shrunk to about 40 px on a 720p frame
    frame = in_frame(photo("t1.jpg"), height=300)
    # then a detector tuned for 80 px faces returns none of them, and one tuned for 40 px finds the six
    assert len(BlazeFaceFrameDetector(80).detect(frame)) == 0
    small = BlazeFaceFrameDetector(40, BlazeFaceFramesConfig(min_face_ratio=0.65))
    assert small.tile_px == 360 and len(small.detect(frame)) >= 6


def looked_at_one_by_one(detector: BlazeFaceFrameDetector, image: Image) -> Detections:
    """The frame rule written out plainly: every look cut from the full-resolution image and letterboxed into
    the model on its own, boxes clipped to the look, merged, moved into HOG's convention, small faces dropped."""
    config = detector.config
    model = BlazeFaceDetector(BlazeFaceConfig(model=config.model, score_threshold=config.score_threshold,
                                              nms_iou=config.nms_iou, onnx_threads=config.onnx_threads))
    height, width = image.shape[:2]
    boxes, points, scores = [], [], []
    for x1, y1, x2, y2 in detector.looks(width, height):
        found = model.detect(np.ascontiguousarray(image[y1:y2, x1:x2]))
        assert found.landmarks is not None
        boxes.append(found.xyxy + np.array([x1, y1, x1, y1], np.float32))
        points.append(found.landmarks + np.array([x1, y1], np.float32))
        scores.append(found.score)
    merged = weighted_nms(np.concatenate(boxes), np.concatenate(points), np.concatenate(scores), config.nms_iou)
    hog = to_hog_boxes(merged[0])
    hog[:, [0, 2]] = hog[:, [0, 2]].clip(0, width - 1)
    hog[:, [1, 3]] = hog[:, [1, 3]].clip(0, height - 1)
    keep = np.minimum(hog[:, 2] - hog[:, 0], hog[:, 3] - hog[:, 1]) >= config.min_face_ratio * detector.min_face_px
    return Detections(hog[keep], merged[2][keep], merged[1][keep])


@pytest.mark.parametrize(("name", "height", "left", "count"), [
    ("t1.jpg", 720, None, 6),  # six faces across both tiles and their overlap
    ("t1.jpg", 400, 900, 3),  # cut by the right edge: the faces left lie only in the second tile
    ("obama.jpg", 400, 900, 1),
    ("biden.jpg", 720, 40, 1),  # one large face, found mostly by the whole-frame look
])
def test_tiles_cut_from_one_shrunk_frame_find_what_each_look_resized_on_its_own_finds(
        photo: Callable[[str], Image], name: str, height: int, left: int | None, count: int) -> None:
    # given a real photo on a 720p frame, and the detector that cuts its tiles from one copy of the frame
    # shrunk to the tile scale
    frame = in_frame(photo(name), height=height, left=left)
    detector = BlazeFaceFrameDetector(80)
    # when it and the plain rule (each look resized from full resolution) look for faces
    found = detector.detect(frame)
    reference = looked_at_one_by_one(detector, frame)
    # then both find the same faces, in boxes within 2 px, with scores within 0.02 and keypoints within 3 px
    # (on 161 faces of 72 frames of real photos: boxes within 1.3 px, scores within 0.016)
    assert len(reference) == count and len(found) == count
    pairs = match(reference.xyxy, found.xyxy, 0.5)
    assert len(pairs) == count
    assert found.landmarks is not None and reference.landmarks is not None
    for i, j in pairs:
        assert np.abs(found.xyxy[j] - reference.xyxy[i]).max() <= 2.0
        assert abs(float(found.score[j] - reference.score[i])) <= 0.02
        assert np.abs(found.landmarks[j] - reference.landmarks[i]).max() <= 3.0


def test_a_region_no_larger_than_a_tile_is_one_look_as_before(photo: Callable[[str], Image]) -> None:
    # given a motion region of a 720p frame smaller than a tile
    region = np.ascontiguousarray(in_frame(photo("t1.jpg"))[200:720, 100:700])
    detector = BlazeFaceFrameDetector(80)
    assert detector.looks(600, 520) == [(0, 0, 600, 520)]
    # then its one look gives exactly what the plain rule gives
    found, reference = detector.detect(region), looked_at_one_by_one(detector, region)
    assert len(found) == len(reference) >= 2
    np.testing.assert_allclose(found.xyxy, reference.xyxy, atol=1e-3)
    np.testing.assert_allclose(found.score, reference.score, atol=1e-5)


@pytest.mark.parametrize("image", [np.zeros((0, 0, 3), np.uint8), np.zeros((720, 1280, 3), np.uint8),
                                   np.full((720, 1280, 3), 127, np.uint8)])
def test_no_face_in_empty_or_blank_frames(image: Image, blazeface: CameraFaceEngine) -> None:
    found = blazeface.detect(image)
    assert len(found) == 0 and found.landmarks is not None


@pytest.mark.parametrize("name", ["cnn", "", "HOG"])
def test_an_unknown_detector_is_refused_by_name(name: str, engine: FaceEngine) -> None:
    with pytest.raises(EngineConfigError, match="unknown face detector"):
        build_camera_engine(engine, name)


def test_hog_keeps_the_engine_as_it_is(engine: FaceEngine) -> None:
    assert build_camera_engine(engine, "hog") is engine
