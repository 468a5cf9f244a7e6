"""BlazeFace on a motion-gated camera's regions, packed several to a model call: the packing itself, and the same
faces as the frame detector finds on real photos, in fewer calls."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from bench.face_detect_match import iou_matrix, match
from vision.engines.base import FaceEngine
from vision.engines.blazeface_frames import BlazeFaceFrameDetector, Region
from vision.engines.blazeface_pack import PackedRegions, shelf_pack
from vision.engines.camera_faces import CameraFaceEngine
from vision.engines.registry import build_camera_engine
from vision.motion import grow, merge_regions
from vision.types import Detections, Image


def in_frame(image: Image, height: int = 720, left: int = 0) -> Image:
    scale = height / image.shape[0]
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)[:, :1280 - left]
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[720 - small.shape[0]:, left:left + small.shape[1]] = small
    return frame


class Counting(BlazeFaceFrameDetector):
    """The frame detector, counting the model's calls."""

    def __init__(self) -> None:
        super().__init__(80)
        self.calls = 0
        model = self.model
        run = model.detect_unclipped

        def counted(image: Image) -> Detections:
            self.calls += 1
            return run(image)
        model.detect_unclipped = counted  # type: ignore[method-assign]


def regions_around(boxes: np.ndarray, pad: int = 48, side: int = 192) -> list[Region]:
    """The regions the motion gate would give for these boxes (padded, grown, merged)."""
    return merge_regions([grow(b.tolist(), pad, side, 1280, 720) for b in boxes])


@pytest.mark.parametrize("sizes", [
    [(100, 80), (60, 120), (256, 40), (30, 30), (120, 120), (120, 100), (200, 200)],
    [(256, 256)] * 3,
    [(10, 10)] * 40,
])
def test_every_box_is_placed_once_inside_a_canvas_apart_from_the_others(sizes: list[tuple[int, int]]) -> None:
    canvases = shelf_pack(sizes, 256, gap=8)
    placed = sorted(i for canvas in canvases for i, _, _ in canvas)
    assert placed == list(range(len(sizes)))
    for canvas in canvases:
        rects = [(x, y, x + sizes[i][0], y + sizes[i][1]) for i, x, y in canvas]
        for x1, y1, x2, y2 in rects:
            assert min(x1, y1) >= 0 and max(x2, y2) <= 256
        for a in range(len(rects)):
            for b in range(a + 1, len(rects)):
                ra, rb = rects[a], rects[b]
                apart = (ra[2] + 8 <= rb[0] or rb[2] + 8 <= ra[0] or ra[3] + 8 <= rb[1] or rb[3] + 8 <= ra[1])
                assert apart, (ra, rb)
    # small boxes share a canvas
    if all(w * h <= 100 for w, h in sizes):
        assert len(canvases) == 1


def test_a_box_larger_than_the_canvas_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        shelf_pack([(300, 10)], 256)


def test_packed_regions_find_the_faces_the_whole_frame_look_finds_in_fewer_calls(
        photo: Callable[[str], Image]) -> None:
    # given the six of t1.jpg on a 720p frame, and the regions a motion gate would give around each face (a
    # small padding, so that they stay apart)
    frame = in_frame(photo("t1.jpg"), left=100)
    detector = Counting()
    whole = detector.detect(frame)
    assert len(whole) == 6
    regions = regions_around(whole.xyxy, pad=24, side=150)
    assert len(regions) >= 4
    # when the regions are packed
    detector.calls = 0
    packed = PackedRegions(detector).detect(frame, regions)
    # then the same six faces are found, in nearly the same boxes, with fewer model calls than regions
    assert len(packed) == 6
    pairs = match(whole.xyxy, packed.xyxy, 0.5)
    assert len(pairs) == 6
    assert min(iou_matrix(whole.xyxy[i:i + 1], packed.xyxy[j:j + 1])[0, 0] for i, j in pairs) > 0.75
    assert detector.calls < len(regions)
    assert packed.landmarks is not None and packed.landmarks.shape == (6, 6, 2)


def test_a_region_larger_than_a_tile_is_looked_at_as_a_frame(photo: Callable[[str], Image]) -> None:
    frame = in_frame(photo("t1.jpg"))
    detector = Counting()
    whole = detector.detect(frame)
    packed = PackedRegions(detector).detect(frame, [(0, 0, 1280, 720)])
    assert len(match(whole.xyxy, packed.xyxy, 0.9)) == len(whole) == 6


def test_no_region_no_face(photo: Callable[[str], Image]) -> None:
    detector = Counting()
    assert len(PackedRegions(detector).detect(in_frame(photo("t1.jpg")), [])) == 0
    assert detector.calls == 0


def test_the_camera_engine_fits_its_landmarks_on_the_packed_faces(
        photo: Callable[[str], Image], engine: FaceEngine) -> None:
    camera = build_camera_engine(engine, "blazeface")
    assert isinstance(camera, CameraFaceEngine)
    frame = in_frame(photo("t1.jpg"), left=100)
    whole = camera.detect(frame)
    found = camera.detect_regions(frame, regions_around(whole.xyxy))
    assert len(match(whole.xyxy, found.xyxy, 0.75)) == len(whole) == 6
    assert found.landmarks is not None and found.landmarks.shape == (6, 5, 2)
    assert len(camera.detect_regions(frame, [])) == 0
