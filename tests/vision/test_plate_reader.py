"""The plate reader on real images: CCPD scenes and LPRNet crops from ../shared/data (skipped when absent)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from calibration.zones import PolygonZone
from vision.imageio import decode_image
from vision.plates.ocr import PpOcr
from vision.plates.reader import PlateReader, ReaderConfig


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader(PpOcr.from_pack(), ReaderConfig(fallback_max_side=960))


def _rows(root: Path, kind: str, n: int) -> list[dict[str, str]]:
    with (root / "plates" / "labels.csv").open(encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if r["kind"] == kind][:n]


@pytest.mark.shared_data
def test_reads_real_ccpd_scenes(shared_data: Path, reader: PlateReader) -> None:
    rows = _rows(shared_data, "scene", 8)
    right = 0
    for row in rows:
        reads = reader.read(decode_image((shared_data / "plates" / row["file"]).read_bytes()))
        right += bool(reads) and reads[0].text == row["plate"]
    assert right >= 7


@pytest.mark.shared_data
def test_reads_real_crops(shared_data: Path, reader: PlateReader) -> None:
    rows = _rows(shared_data, "crop", 40)
    images = [decode_image((shared_data / "plates" / r["file"]).read_bytes()) for r in rows]
    reads = reader.read_crops(images)
    right = sum(r is not None and r.text == row["plate"] for r, row in zip(reads, rows, strict=True))
    assert right >= 38


@pytest.mark.shared_data
def test_zone_limits_the_search(shared_data: Path, reader: PlateReader) -> None:
    row = _rows(shared_data, "scene", 20)[-1]
    image = decode_image((shared_data / "plates" / row["file"]).read_bytes())
    x1, y1, x2, y2 = (float(v) for v in row["bbox_x1y1x2y2"].split(","))
    around = PolygonZone("entry", ((x1 - 80, y1 - 80), (x2 + 80, y1 - 80), (x2 + 80, y2 + 80), (x1 - 80, y2 + 80)))
    elsewhere = PolygonZone("sky", ((0, 0), (200, 0), (200, 150), (0, 150)))
    inside = reader.read(image, around)
    assert inside and inside[0].text == row["plate"]
    assert x1 - 80 <= inside[0].box[0] and inside[0].box[2] <= x2 + 80
    assert reader.read(image, elsewhere) == []


def test_blank_image_reads_nothing(reader: PlateReader) -> None:
    assert reader.read(np.full((360, 640, 3), 127, np.uint8)) == []
    assert reader.read_crops([]) == []


@pytest.mark.parametrize("crop", [
    np.zeros((0, 0, 3), np.uint8),  # empty
    np.zeros((24, 0, 3), np.uint8),  # no width
    np.zeros((24, 94), np.uint8),  # grey, not BGR
    np.zeros((24, 94, 4), np.uint8),  # BGRA
])
def test_unusable_crops_read_none(reader: PlateReader, crop: np.ndarray) -> None:
    good = np.full((24, 94, 3), 127, np.uint8)
    reads = reader.read_crops([crop, good])
    assert len(reads) == 2 and reads[0] is None


@pytest.mark.parametrize("pad_y", [(0.0,), (0.2,), (0.0, 0.4)])
def test_crop_margins_keep_one_read_per_crop(reader: PlateReader, pad_y: tuple[float, ...]) -> None:
    crops = [np.full((24, 94, 3), v, np.uint8) for v in (40, 200)]
    assert len(reader.read_crops(crops, pad_y=pad_y)) == 2


def test_read_crops_needs_a_margin(reader: PlateReader) -> None:
    with pytest.raises(ValueError, match="at least one"):
        reader.read_crops([np.full((24, 94, 3), 127, np.uint8)], pad_y=())
