"""The real dlib engine: HOG scale contract, detection, landmarks, embeddings, and the engine registry."""

from __future__ import annotations

import math
from collections.abc import Callable

import dlib
import numpy as np
import pytest

from vision.engines.base import DlibEngineConfig, FaceEngine, l2_normalise
from vision.engines.dlib_engine import HOG_WINDOW_PX, detection_scale
from vision.engines.registry import build_engine
from vision.errors import EngineConfigError
from vision.tracker import iou_matrix
from vision.types import Detections, Image


def _one_face(engine: FaceEngine, image: Image) -> Detections:
    dets = engine.detect(image)
    assert len(dets) == 1
    return dets


# ---------------------------------------------------------------- detection_scale

@pytest.mark.parametrize(
    ("min_face_px", "max_upsample", "scale", "upsample"),
    [
        (80, 2, 1.0, 0),  # the HOG window: native size
        (40, 2, 1.0, 1),  # half the window: one 2x upsample
        (20, 2, 1.0, 2),  # a quarter: two upsamples
        (160, 2, 0.5, 0),  # twice the window: shrink the frame first
        (1000, 2, 0.08, 0),
        (60, 2, 2 / 3, 1),  # upsample once, then shrink by 2/3: a 60 px face fills 80 px
        (30, 2, 2 / 3, 2),
        # max_upsample caps the pyramid; the frame is then never enlarged by resizing (scale stays 1),
        # so faces smaller than 80 / 2**max_upsample px are out of reach
        (20, 1, 1.0, 1),
        (40, 0, 1.0, 0),
        (20, 0, 1.0, 0),
    ],
)
def test_detection_scale(min_face_px: int, max_upsample: int, scale: float, upsample: int) -> None:
    # given a minimum face size and an upsample cap, when the HOG scale is derived
    got_scale, got_upsample = detection_scale(min_face_px, max_upsample)
    # then it matches the table
    assert got_upsample == upsample
    assert got_scale == pytest.approx(scale)


@pytest.mark.parametrize("min_face_px", [20, 25, 33, 40, 50, 64, 79, 80, 81, 120, 160, 999])
def test_detection_scale_maps_the_minimum_face_onto_the_hog_window(min_face_px: int) -> None:
    # given an uncapped pyramid, when the scale is derived
    scale, upsample = detection_scale(min_face_px, max_upsample=3)
    # then the frame is never enlarged by resizing, upsampling is the fewest doublings needed,
    # and a min_face_px face ends up exactly HOG-window sized
    assert 0 < scale <= 1.0
    assert upsample == max(0, math.ceil(math.log2(HOG_WINDOW_PX / min_face_px) - 1e-9))
    assert min_face_px * scale * 2**upsample == pytest.approx(HOG_WINDOW_PX)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"min_face_px": 19}, "min_face_px"), ({"min_face_px": 0}, "min_face_px"), ({"max_upsample": 4}, "max_upsample"),
     ({"max_upsample": -1}, "max_upsample"), ({"colour": "red"}, "colour")],
)
def test_engine_config_rejects_bad_values(kwargs: dict[str, object], error: str) -> None:
    # given out-of-range or unknown settings, when the config is built, then pydantic names the field
    with pytest.raises(ValueError, match=error):
        DlibEngineConfig(**kwargs)  # type: ignore[arg-type]


def test_build_engine_refuses_an_unknown_type() -> None:
    # given a config whose type is not registered, when built, then EngineConfigError lists the known ones
    class Other(DlibEngineConfig):
        type: str = "onnx-magic"  # type: ignore[assignment]

    with pytest.raises(EngineConfigError, match="dlib"):
        build_engine(Other())


# ---------------------------------------------------------------- the real engine

def test_model_id_and_dim(engine: FaceEngine, engine_small_faces: FaceEngine) -> None:
    # given the real engines, then they share the pack's model id and 128-d vectors, with their own min face
    assert engine.model_id == engine_small_faces.model_id == "dlib_resnet_v1_flip"
    assert engine.dim == 128
    assert (engine.min_face_px, engine_small_faces.min_face_px) == (80, 40)


def test_obama_gives_one_face_with_five_landmarks_inside_the_box(photo: Callable[[str], Image],
                                                                 engine: FaceEngine) -> None:
    # given obama.jpg
    image = photo("obama.jpg")
    before = image.copy()
    # when the real engine detects
    dets = engine.detect(image)
    # then exactly one face, with a positive score, landmarks of shape (1, 5, 2) inside its box
    assert len(dets) == 1
    assert dets.xyxy.dtype == np.float32 and dets.score[0] > 0
    assert dets.landmarks is not None and dets.landmarks.shape == (1, 5, 2)
    x1, y1, x2, y2 = dets.xyxy[0]
    assert ((dets.landmarks[0, :, 0] >= x1) & (dets.landmarks[0, :, 0] <= x2)).all()
    assert ((dets.landmarks[0, :, 1] >= y1) & (dets.landmarks[0, :, 1] <= y2)).all()
    # and the face is big (> 200 px), inside the image, and the image was not modified
    assert dets.widths[0] > 200 and x2 < image.shape[1] and y2 < image.shape[0]
    np.testing.assert_array_equal(image, before)


def test_detection_is_deterministic(photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given the same image twice, when detected, then the boxes, scores and landmarks are equal
    image = photo("obama2.jpg")
    a, b = engine.detect(image), engine.detect(image)
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)


def test_group_photo_finds_six_faces(photo: Callable[[str], Image], engine_small_faces: FaceEngine) -> None:
    # given t1.jpg, a group of six people
    image = photo("t1.jpg")
    # when the 40 px engine detects
    dets = engine_small_faces.detect(image)
    # then it finds six distinct faces
    assert len(dets) == 6
    iou = iou_matrix(dets.xyxy, dets.xyxy)
    assert (iou[~np.eye(6, dtype=bool)] < 0.1).all()


def test_a_larger_minimum_face_shrinks_the_frame_and_keeps_boxes_in_original_pixels(
        photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given an engine tuned for 160 px faces (it halves the frame before HOG)
    big_only = build_engine(DlibEngineConfig(min_face_px=160))
    # when it detects obama.jpg (a 258 px face) and tom_hanks.png (a 86 px face)
    obama = photo("obama.jpg")
    native = engine.detect(obama)
    halved = big_only.detect(obama)
    # then the big face is found at the same place, in original-image pixels
    assert len(halved) == 1
    assert iou_matrix(native.xyxy, halved.xyxy)[0, 0] > 0.7
    # and the small face is below its reach while the 80 px engine finds it
    hanks = photo("tom_hanks.png")
    assert len(big_only.detect(hanks)) == 0
    assert len(engine.detect(hanks)) == 1


@pytest.mark.parametrize(
    "image",
    [
        np.full((480, 640, 3), 128, np.uint8),  # blank grey
        np.zeros((0, 0, 3), np.uint8),  # empty
        np.zeros((10, 10, 3), np.uint8),  # smaller than the HOG window
        np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8),  # noise
    ],
    ids=["grey", "empty", "tiny", "noise"],
)
def test_no_face_gives_empty_detections_with_landmarks(engine: FaceEngine, image: Image) -> None:
    # given an image without a face, when detected, then the result is empty with a landmarks column
    dets = engine.detect(image)
    assert len(dets) == 0
    assert dets.landmarks is not None and dets.landmarks.shape == (0, 5, 2)


def test_embeddings_are_128d_unit_vectors(photo: Callable[[str], Image], engine_small_faces: FaceEngine) -> None:
    # given the six faces of t1.jpg
    image = photo("t1.jpg")
    dets = engine_small_faces.detect(image)
    # when embedded in one batch
    vectors = engine_small_faces.embed(image, dets)
    # then there are six float32 128-d unit vectors, all different people (cosine well below 1)
    assert vectors.shape == (6, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cos = vectors @ vectors.T
    assert (cos[~np.eye(6, dtype=bool)] < 0.99).all()


def test_chips_are_aligned_150px_bgr_and_embed_like_embed(photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given obama.jpg and its detection
    image = photo("obama.jpg")
    dets = _one_face(engine, image)
    # when chips are cut and embedded separately
    chips = engine.chips(image, dets)
    # then they are 150x150 BGR uint8 and give the same vector as embed()
    assert len(chips) == 1 and chips[0].shape == (150, 150, 3) and chips[0].dtype == np.uint8
    np.testing.assert_allclose(engine.embed_chips(chips), engine.embed(image, dets), atol=1e-6)
    # and they are exactly the BGR of dlib's chip of the RGB image (the warp treats each channel alike)
    boxes = [dlib.rectangle(*(int(v) for v in b)) for b in dets.xyxy]
    assert dets.landmarks is not None
    shapes = dlib.full_object_detections()
    for box, points in zip(boxes, dets.landmarks, strict=True):
        shapes.append(dlib.full_object_detection(box, [dlib.point(int(x), int(y)) for x, y in points]))
    rgb_chip = np.asarray(dlib.get_face_chips(np.ascontiguousarray(image[:, :, ::-1]), shapes, size=150,
                                              padding=0.25)[0], np.uint8)
    assert np.array_equal(chips[0], rgb_chip[:, :, ::-1])


def test_same_person_is_closer_than_a_different_person(photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given embeddings of obama.jpg, obama2.jpg and biden.jpg
    vec = {}
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg"):
        image = photo(name)
        vec[name] = engine.embed(image, _one_face(engine, image))[0]
    # when cosines are compared
    same = float(vec["obama.jpg"] @ vec["obama2.jpg"])
    different = float(vec["obama.jpg"] @ vec["biden.jpg"])
    # then the same person is closer by at least 0.05
    assert same > different + 0.05


def test_embedding_a_swapped_channel_image_changes_the_vector(photo: Callable[[str], Image],
                                                              engine: FaceEngine) -> None:
    # given obama.jpg as BGR (correct) and with its channels swapped (an RGB mistake)
    image = photo("obama.jpg")
    dets = _one_face(engine, image)
    good = engine.embed(image, dets)[0]
    swapped = engine.embed(np.ascontiguousarray(image[:, :, ::-1]), dets)[0]
    # when compared, then colour order matters (the engine converts BGR to RGB itself)
    assert float(good @ swapped) < 0.999


@pytest.mark.parametrize("with_landmarks", [True, False])
def test_embed_on_empty_detections(photo: Callable[[str], Image], engine: FaceEngine, with_landmarks: bool) -> None:
    # given no detections, when embedded, then the result is an empty (0, 128) float32 array
    out = engine.embed(photo("obama.jpg"), Detections.empty(with_landmarks=with_landmarks))
    assert out.shape == (0, 128) and out.dtype == np.float32
    assert engine.chips(photo("obama.jpg"), Detections.empty()) == []
    assert engine.embed_chips([]).shape == (0, 128)


def test_embed_without_landmarks_is_refused(photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given a detection stripped of its landmarks, when embedded, then ValueError says why
    image = photo("obama.jpg")
    dets = _one_face(engine, image)
    with pytest.raises(ValueError, match="landmarks"):
        engine.embed(image, Detections(dets.xyxy, dets.score))


@pytest.mark.parametrize(
    ("vectors", "norms"),
    [(np.zeros((0, 3), np.float32), []), (np.array([[3, 4]], np.float32), [1.0]),
     (np.array([[0, 0], [1, 1]], np.float32), [0.0, 1.0])],
    ids=["empty", "one", "zero-row-kept"],
)
def test_l2_normalise(vectors: np.ndarray, norms: list[float]) -> None:
    # given vectors, when normalised, then each row is unit length (zero rows stay zero) as float32
    out = l2_normalise(vectors)
    assert out.dtype == np.float32 and out.shape == vectors.shape
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), norms, atol=1e-6)
