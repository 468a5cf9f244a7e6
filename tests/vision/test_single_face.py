"""The single-face finder on real photos: tight crops that HOG misses, no face, two faces, box mapping."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from vision.engines.base import FaceEngine
from vision.single_face import STRATEGIES, SingleFaceFinder, blaze_to_hog_boxes
from vision.types import Image


@pytest.fixture(scope="module")
def tight_crop(engine: FaceEngine, photo: Callable[[str], Image]) -> Image:
    """Biden's face cut inside HOG's own box, 15 % off its top and sides (an ID-style tight crop, 263x217)."""
    image = photo("biden.jpg")
    x1, y1, x2, y2 = engine.detect(image).xyxy[0]
    w, h = x2 - x1, y2 - y1
    return np.ascontiguousarray(image[int(y1 + 0.15 * h):int(y2), int(x1 + 0.15 * w):int(x2 - 0.15 * w)])


def test_hog_misses_the_tight_crop_but_blazeface_finds_it(engine: FaceEngine, tight_crop: Image) -> None:
    # given a tight crop that HOG cannot find, even padded
    assert len(SingleFaceFinder(engine, "hog_pad").find(tight_crop).dets) == 0
    # when the default finder looks at it
    found = SingleFaceFinder(engine, "hog_pad+blazeface").find(tight_crop)
    # then BlazeFace finds the one face and dlib's 5 points are fitted inside its box
    assert found.detector == "blazeface" and len(found.dets) == 1
    assert found.dets.landmarks is not None and found.dets.landmarks.shape == (1, 5, 2)
    x1, y1, x2, y2 = found.dets.xyxy[0]
    pts = found.dets.landmarks[0]
    assert np.all((pts[:, 0] > x1) & (pts[:, 0] < x2) & (pts[:, 1] > y1) & (pts[:, 1] < y2))


def test_tight_crop_embeds_close_to_the_full_photo(engine: FaceEngine, tight_crop: Image,
                                                   photo: Callable[[str], Image]) -> None:
    finder = SingleFaceFinder(engine, "hog_pad+blazeface")
    crop_vec = finder.embed_largest(tight_crop)
    full_vec = finder.embed_largest(photo("biden.jpg"))
    other = finder.embed_largest(photo("obama.jpg"))
    assert crop_vec is not None and full_vec is not None and other is not None
    assert float(crop_vec @ full_vec) > float(crop_vec @ other)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_no_face_below_the_chin(strategy: str, engine: FaceEngine, photo: Callable[[str], Image]) -> None:
    image = photo("obama.jpg")
    suit = np.ascontiguousarray(image[int(image.shape[0] * 0.62):, :])
    finder = SingleFaceFinder(engine, strategy)  # type: ignore[arg-type]
    assert len(finder.find(suit).dets) == 0
    assert finder.embed_largest(suit) is None


@pytest.mark.parametrize("strategy", ["hog_pad", "hog_pad+blazeface"])
def test_two_faces_are_counted(strategy: str, engine: FaceEngine, photo: Callable[[str], Image]) -> None:
    import cv2

    obama, biden = photo("obama.jpg"), photo("biden.jpg")
    h = obama.shape[0]
    both = np.hstack([obama, cv2.resize(biden, (int(biden.shape[1] * h / biden.shape[0]), h))])
    assert len(SingleFaceFinder(engine, strategy).find(both).dets) == 2  # type: ignore[arg-type]


@pytest.mark.parametrize(("boxes", "expected"), [
    (np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32)),
    (np.array([[100, 100, 200, 200]], np.float32), np.array([[99.25, 97.4, 199.35, 197.4]], np.float32)),
])
def test_blaze_to_hog_mapping(boxes: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(blaze_to_hog_boxes(boxes), expected, atol=0.1)


def test_unknown_strategy_is_refused(engine: FaceEngine) -> None:
    with pytest.raises(ValueError, match="unknown single-face strategy"):
        SingleFaceFinder(engine, "magic")  # type: ignore[arg-type]
