"""NanoDet persons on real photos (skipped with a reason when `make install` could not fetch the pack)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.errors import ModelPackError
from vision.engines.nanodet import INPUT_SIZE, REG_BINS, NanoDetConfig, NanoDetPersonDetector, gfl_decode
from vision.imageio import decode_image


@pytest.mark.parametrize(("photo", "people"), [
    ("face_recognition__two_people.jpg", 2),
    ("face_recognition__obama_and_biden.jpg", 3),
    ("dlib_examples_faces/2007_007763.jpg", 7),
    ("dlib_examples_faces/2008_001322.jpg", 3),
])
def test_given_real_group_photos_when_detected_then_counts_match(person_detector: NanoDetPersonDetector,
                                                                 shared_data: Path, photo: str, people: int) -> None:
    dets = person_detector.detect(decode_image((shared_data / "scenes" / photo).read_bytes()))
    assert len(dets) == people
    assert (dets.widths > 0).all() and (dets.heights > 0).all()


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_both_input_modes_give_boxes_in_image_pixels(shared_data: Path, resize: str) -> None:
    # Given a wide photo of two people and the detector in either input mode
    try:
        detector = NanoDetPersonDetector(NanoDetConfig(resize=resize))  # type: ignore[arg-type]
    except ModelPackError as exc:
        pytest.skip(f"person detector not installed: {exc}")
    image = decode_image((shared_data / "scenes" / "face_recognition__two_people.jpg").read_bytes())
    # When detected
    dets = detector.detect(image)
    # Then both people are found, left and right halves, inside the image
    assert len(dets) == 2
    h, w = image.shape[:2]
    assert (dets.xyxy[:, 2] <= w).all() and (dets.xyxy[:, 3] <= h).all() and (dets.xyxy >= 0).all()
    centres = sorted(((dets.xyxy[:, 0] + dets.xyxy[:, 2]) / 2 / w).tolist())
    assert centres[0] < 0.5 < centres[1]


def test_given_an_empty_or_blank_frame_then_no_one(person_detector: NanoDetPersonDetector) -> None:
    assert len(person_detector.detect(np.zeros((0, 0, 3), np.uint8))) == 0
    assert len(person_detector.detect(np.full((360, 640, 3), 128, np.uint8))) == 0


def test_gfl_decode_places_a_box_around_its_cell() -> None:
    side = INPUT_SIZE // 32
    scores = np.zeros(side * side, np.float32)
    scores[side + 2] = 0.9  # row 1, column 2
    regs = np.full((side * side, 4 * REG_BINS), -50.0, np.float32)
    regs[side + 2].reshape(4, REG_BINS)[:, 1] = 50.0  # one bin each side: 1 * stride
    boxes, kept = gfl_decode(scores, regs, 32, 0.5)
    np.testing.assert_allclose(boxes, [[2.5 * 32 - 32, 1.5 * 32 - 32, 2.5 * 32 + 32, 1.5 * 32 + 32]], atol=1e-3)
    assert kept.tolist() == pytest.approx([0.9])
    with pytest.raises(ValueError, match="do not match"):
        gfl_decode(scores, regs[:, :10], 32, 0.5)
