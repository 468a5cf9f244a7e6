"""BlazeFace on real photos: anchors, decoding, and faces found in group photos, portraits and tight crops."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from models.manifest import TensorInput
from vision.engines.base import FaceEngine
from vision.engines.blazeface import (
    ANCHOR_SPECS,
    BlazeFaceConfig,
    BlazeFaceDetector,
    decode,
    input_tensor,
    letterbox,
    ssd_anchors,
    weighted_nms,
)
from vision.types import Image


@pytest.fixture(scope="module")
def short_range() -> BlazeFaceDetector:
    return BlazeFaceDetector(BlazeFaceConfig(model="short_range"))


@pytest.fixture(scope="module")
def full_range() -> BlazeFaceDetector:
    return BlazeFaceDetector(BlazeFaceConfig(model="full_range"))


@pytest.mark.parametrize(("model", "count", "first", "last"), [
    ("short_range", 896, (0.5 / 16, 0.5 / 16), (7.5 / 8, 7.5 / 8)),
    ("back", 896, (0.5 / 16, 0.5 / 16), (7.5 / 8, 7.5 / 8)),
    ("full_range", 2304, (0.5 / 48, 0.5 / 48), (47.5 / 48, 47.5 / 48)),
])
def test_anchors_match_the_model_outputs(model: str, count: int, first: tuple[float, float],
                                         last: tuple[float, float]) -> None:
    anchors = ssd_anchors(ANCHOR_SPECS[model])
    assert anchors.shape == (count, 2)
    np.testing.assert_allclose(anchors[0], first)
    np.testing.assert_allclose(anchors[-1], last)


def test_decode_and_nms_merge_overlapping_boxes_and_handle_none() -> None:
    # given two anchors predicting nearly the same face and one below threshold
    anchors = np.array([[0.5, 0.5], [0.5, 0.5], [0.1, 0.1]], np.float32)
    reg = np.zeros((3, 16), np.float32)
    reg[:, 2:4] = 64.0  # 0.5 x 0.5 of a 128 px input
    reg[1, 0] = 2.0
    logits = np.array([3.0, 2.0, -5.0], np.float32)
    boxes, points, scores = decode(reg, logits, anchors, 128, 0.5)
    assert boxes.shape == (2, 4) and points.shape == (2, 6, 2)
    merged = weighted_nms(boxes, points, scores, 0.3)
    assert merged[0].shape == (1, 4)
    assert 0.25 < merged[0][0, 0] < 0.27 and merged[2][0] == pytest.approx(scores.max())
    # and nothing in, nothing out
    empty = weighted_nms(boxes[:0], points[:0], scores[:0], 0.3)
    assert [e.shape[0] for e in empty] == [0, 0, 0]


def test_full_range_finds_the_six_faces_of_the_group_photo(full_range: BlazeFaceDetector,
                                                           photo: Callable[[str], Image]) -> None:
    dets = full_range.detect(photo("t1.jpg"))
    assert len(dets) == 6
    assert dets.landmarks is not None and dets.landmarks.shape == (6, 6, 2)


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg"])
def test_one_face_in_a_portrait_with_its_keypoints_inside_the_box(name: str, short_range: BlazeFaceDetector,
                                                                  engine: FaceEngine,
                                                                  photo: Callable[[str], Image]) -> None:
    image = photo(name)
    dets = short_range.detect(image)
    assert len(dets) == 1
    hog = engine.detect(image)
    # the box lies on HOG's face (IoU well above chance) and the eyes, nose and mouth lie in it
    x1, y1, x2, y2 = dets.xyxy[0]
    hx1, hy1, hx2, hy2 = hog.xyxy[0]
    inter = max(0.0, min(x2, hx2) - max(x1, hx1)) * max(0.0, min(y2, hy2) - max(y1, hy1))
    union = (x2 - x1) * (y2 - y1) + (hx2 - hx1) * (hy2 - hy1) - inter
    assert inter / union > 0.5
    assert dets.landmarks is not None
    inner = dets.landmarks[0, :4]
    assert np.all((inner[:, 0] > x1) & (inner[:, 0] < x2) & (inner[:, 1] > y1) & (inner[:, 1] < y2))


def test_tight_crop_of_a_face_is_found(short_range: BlazeFaceDetector, engine: FaceEngine,
                                       photo: Callable[[str], Image]) -> None:
    image = photo("obama.jpg")
    x1, y1, x2, y2 = engine.detect(image).xyxy[0].astype(int)
    dets = short_range.detect(np.ascontiguousarray(image[y1:y2, x1:x2]))
    assert len(dets) == 1


@pytest.mark.parametrize("image", [np.zeros((0, 0, 3), np.uint8), np.full((200, 300, 3), 128, np.uint8)])
def test_no_face_in_empty_or_blank_images(image: Image, short_range: BlazeFaceDetector) -> None:
    dets = short_range.detect(image)
    assert len(dets) == 0
    assert dets.landmarks is not None and dets.landmarks.shape == (0, 6, 2)


@pytest.mark.parametrize(("colour", "size"), [("RGB", 256), ("BGR", 128)])
def test_input_tensor_is_the_letterboxed_photo_in_model_order_scaled_to_minus_one_one(
        colour: str, size: int, photo: Callable[[str], Image]) -> None:
    # given a real photo letterboxed into the model's square
    canvas, _ = letterbox(photo("t1.jpg"), size)
    spec = TensorInput.model_validate({"name": "input", "shape": [1, size, size, 3], "layout": "NHWC",
                                       "colour": colour, "mean": 127.5, "std": 127.5})
    # then its tensor is the plain (pixel - mean) / std of the channels in the model's order
    ordered = canvas[:, :, ::-1] if colour == "RGB" else canvas
    expected = ((ordered.astype(np.float32) - 127.5) / 127.5)[None]
    got = input_tensor(canvas, spec)
    assert got.shape == (1, size, size, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_letterbox_of_a_square_input_is_the_input_itself(photo: Callable[[str], Image]) -> None:
    square = np.ascontiguousarray(photo("t1.jpg")[:256, :256])
    canvas, box = letterbox(square, 256)
    assert canvas is square and (box.scale_x, box.scale_y, box.left, box.top) == (1.0, 1.0, 0, 0)
    # and a smaller one is centred on black at its own scale
    canvas, box = letterbox(square[:, :128], 256)
    assert canvas.shape == (256, 256, 3) and (box.left, box.top, box.scale_x) == (64, 0, 1.0)
    assert not canvas[:, :64].any() and np.array_equal(canvas[:, 64:192], square[:, :128])
