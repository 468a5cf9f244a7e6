"""SCRFD numpy stages against hand-computed values: letterbox, input tensor, anchors, decoding, NMS."""

from __future__ import annotations

import numpy as np
import pytest

from vision.engines.scrfd import (
    RawFaces,
    anchor_centers,
    decode,
    distance_to_boxes,
    distance_to_points,
    iou_one_to_many,
    letterbox,
    nms,
    to_tensor,
)

STRIDES = (8, 16, 32)


# ---------------------------------------------------------------- letterbox

@pytest.mark.parametrize(
    ("shape", "size", "scale", "content"),
    [
        ((720, 1280), 640, 0.5, (360, 640)),  # landscape: fit the width
        ((1280, 720), 640, 0.5, (640, 360)),  # portrait: fit the height
        ((100, 100), 640, 6.4, (640, 640)),  # small: enlarged
        ((1137, 910), 640, 640 / 1137, (640, 512)),  # obama.jpg: int() truncates the width
        ((640, 640), 640, 1.0, (640, 640)),
        ((3, 1000), 320, 0.32, (1, 320)),  # a sliver keeps at least one row
    ],
)
def test_letterbox_fits_the_image_into_the_top_left(shape: tuple[int, int], size: int, scale: float,
                                                    content: tuple[int, int]) -> None:
    # given a white image, when letterboxed into a black square
    canvas, got_scale = letterbox(np.full((*shape, 3), 255, np.uint8), size, size)
    # then the canvas is the square, the image fills its top-left corner and the rest is black
    assert canvas.shape == (size, size, 3) and canvas.dtype == np.uint8
    assert got_scale == pytest.approx(scale)
    h, w = content
    assert (canvas[:h, :w] == 255).all()
    assert canvas[h:].sum() == 0 and canvas[:, w:].sum() == 0


@pytest.mark.parametrize("shape", [(0, 10, 3), (10, 0, 3), (10, 10)])
def test_letterbox_refuses_an_empty_or_flat_image(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="letterbox"):
        letterbox(np.zeros(shape, np.uint8), 64, 64)


# ---------------------------------------------------------------- input tensor

def _bgr_pixels() -> np.ndarray:
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = (10, 20, 30)  # B, G, R
    image[1, 2] = (255, 128, 0)
    return image


def test_to_tensor_makes_rgb_nchw_normalised_floats() -> None:
    # given a BGR image, when converted as SCRFD wants it (RGB, mean 127.5, std 128, NCHW)
    x = to_tensor([_bgr_pixels()], mean=127.5, std=128.0, colour="RGB", layout="NCHW")
    # then channel 0 holds red, values are (v - 127.5) / 128, and the layout is 1x3xHxW
    assert x.shape == (1, 3, 2, 3) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x[0, :, 0, 0] == pytest.approx([(30 - 127.5) / 128, (20 - 127.5) / 128, (10 - 127.5) / 128])
    assert x[0, :, 1, 2] == pytest.approx([(0 - 127.5) / 128, (128 - 127.5) / 128, (255 - 127.5) / 128])
    assert x[0, :, 0, 1] == pytest.approx([-127.5 / 128] * 3)


def test_to_tensor_keeps_bgr_and_nhwc_when_declared() -> None:
    x = to_tensor([_bgr_pixels(), _bgr_pixels()], mean=0.0, std=1.0, colour="BGR", layout="NHWC")
    assert x.shape == (2, 2, 3, 3)
    assert x[1, 0, 0] == pytest.approx([10, 20, 30])


@pytest.mark.parametrize("images", [[], [np.zeros((2, 2), np.uint8)]], ids=["empty", "grey"])
def test_to_tensor_refuses_bad_input(images: list[np.ndarray]) -> None:
    with pytest.raises(ValueError):
        to_tensor(images, mean=0.0, std=1.0, colour="RGB", layout="NCHW")


# ---------------------------------------------------------------- anchors and distances

def test_anchor_centers_are_row_major_points_repeated_per_anchor() -> None:
    # given a 2x3 feature map at stride 8 with 2 anchors, when its anchor points are laid out
    centers = anchor_centers(2, 3, 8, 2)
    # then they are (x, y) at multiples of the stride, row by row, each twice
    expected = [[0, 0], [0, 0], [8, 0], [8, 0], [16, 0], [16, 0],
                [0, 8], [0, 8], [8, 8], [8, 8], [16, 8], [16, 8]]
    np.testing.assert_array_equal(centers, np.array(expected, np.float32))
    assert anchor_centers(0, 3, 8, 2).shape == (0, 2)


def test_distances_decode_to_boxes_and_points() -> None:
    centers = np.array([[100, 50], [0, 0]], np.float32)
    boxes = distance_to_boxes(centers, np.array([[10, 20, 30, 40], [0, 0, 0, 0]], np.float32))
    np.testing.assert_array_equal(boxes, [[90, 30, 130, 90], [0, 0, 0, 0]])
    points = distance_to_points(centers, np.array([[1, 2, 3, 4], [-1, -2, -3, -4]], np.float32))
    np.testing.assert_array_equal(points, [[[101, 52], [103, 54]], [[-1, -2], [-3, -4]]])


# ---------------------------------------------------------------- decode

def _outputs(size: int, batched: bool = False) -> list[np.ndarray]:
    """SCRFD outputs for a size x size input: all scores 0 except the anchors set by the tests."""
    out: list[np.ndarray] = []
    for width in (1, 4, 10):
        for stride in STRIDES:
            out.append(np.zeros(((size // stride) ** 2 * 2, width), np.float32))
    return [o[None] for o in out] if batched else out


def _decode(outputs: list[np.ndarray], threshold: float = 0.5, size: int = 64) -> RawFaces:
    return decode(outputs, strides=STRIDES, anchors=2, keypoints=5, height=size, width=size, threshold=threshold)


@pytest.mark.parametrize("batched", [False, True], ids=["2d", "batched-3d"])
def test_decode_one_face_by_hand(batched: bool) -> None:
    # given a 64x64 input: stride 16 has 4x4 locations; the anchor at row 1, column 2, anchor 1 is
    # index (1 * 4 + 2) * 2 + 1 = 13, its point is (32, 16)
    outs = _outputs(64, batched)
    outs[1].reshape(-1, 1)[13] = 0.9
    outs[4].reshape(-1, 4)[13] = [1.0, 0.5, 2.0, 1.5]  # left, top, right, bottom in stride units
    outs[7].reshape(-1, 10)[13] = [0.0, 0.0, 1.0, 0.0, 0.5, 0.5, -0.25, 1.0, 1.25, 1.0]
    outs[1].reshape(-1, 1)[14] = 0.49  # just below the threshold
    # when decoded
    faces = _decode(outs)
    # then one face: box (32 - 16, 16 - 8, 32 + 32, 16 + 24), keypoints point + 16 * offset
    assert len(faces) == 1
    np.testing.assert_allclose(faces.boxes, [[16, 8, 64, 40]])
    np.testing.assert_allclose(faces.scores, [0.9])
    np.testing.assert_allclose(faces.points, [[[32, 16], [48, 16], [40, 24], [28, 32], [52, 32]]])


def test_decode_matches_the_full_anchor_grid() -> None:
    # given random outputs for a 96x64 input, when every anchor is decoded (threshold 0)
    rng = np.random.default_rng(3)
    h, w = 64, 96
    outs = [rng.random(((h // s) * (w // s) * 2, k), dtype=np.float32) for k in (1, 4, 10) for s in STRIDES]
    faces = decode(outs, strides=STRIDES, anchors=2, keypoints=5, height=h, width=w, threshold=0.0)
    # then it equals decoding against the explicit anchor grid, stride by stride
    centers = [anchor_centers(h // s, w // s, s, 2) for s in STRIDES]
    grid = list(enumerate(zip(centers, STRIDES, strict=True)))
    boxes = np.concatenate([distance_to_boxes(c, outs[3 + i] * s) for i, (c, s) in grid])
    points = np.concatenate([distance_to_points(c, outs[6 + i] * s) for i, (c, s) in grid])
    np.testing.assert_allclose(faces.boxes, boxes, rtol=1e-6)
    np.testing.assert_allclose(faces.points, points, rtol=1e-6)
    assert len(faces) == sum(len(c) for c in centers) == 2 * (8 * 12 + 4 * 6 + 2 * 3)


def test_decode_with_no_face_is_empty_with_shapes() -> None:
    faces = _decode(_outputs(64))
    assert faces.boxes.shape == (0, 4) and faces.scores.shape == (0,) and faces.points.shape == (0, 5, 2)


@pytest.mark.parametrize(
    ("outs", "message"),
    [(_outputs(64)[:6], "9 outputs"), ([], "9 outputs"), (_outputs(32), "scores for")],
    ids=["six-outputs", "none", "wrong-size"],
)
def test_decode_refuses_outputs_that_do_not_fit(outs: list[np.ndarray], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _decode(outs)


# ---------------------------------------------------------------- NMS

def _boxes(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 4)


@pytest.mark.parametrize(
    ("boxes", "scores", "threshold", "keep"),
    [
        ([], [], 0.4, []),  # empty
        ([[0, 0, 10, 10]], [0.5], 0.4, [0]),
        # B overlaps A with IoU 81 / 119 = 0.68: dropped; C is apart: kept; best first
        ([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], [0.9, 0.8, 0.95], 0.4, [2, 0]),
        ([[0, 0, 10, 10], [1, 1, 11, 11]], [0.9, 0.8], 0.7, [0, 1]),  # 0.68 is under a 0.7 threshold
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.5, 0.6], 1 / 3, [1, 0]),  # IoU exactly 1/3: kept
        ([[0, 0, 10, 10], [0, 0, 10, 10]], [0.7, 0.7], 0.4, [0]),  # a tie keeps the first
        ([[0, 0, 0, 0], [0, 0, 0, 0]], [0.7, 0.6], 0.4, [0, 1]),  # zero area: IoU 0, no division by zero
    ],
)
def test_nms_against_hand_computed_overlaps(boxes: list[list[float]], scores: list[float], threshold: float,
                                            keep: list[int]) -> None:
    got = nms(_boxes(boxes), np.array(scores, np.float32), threshold)
    assert got.dtype == np.int64 and got.tolist() == keep


def test_iou_by_hand() -> None:
    others = _boxes([[0, 0, 10, 10], [5, 5, 15, 15], [10, 10, 20, 20]])
    ious = iou_one_to_many(np.array([0, 0, 10, 10], np.float32), others)
    np.testing.assert_allclose(ious, [1.0, 25 / 175, 0.0], rtol=1e-6)
