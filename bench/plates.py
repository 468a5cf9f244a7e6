"""Plate reading benchmark: ms per 1280x720 frame with a plate in the parking camera's entry zone.

    python -m bench.plates --json OUT.json [--repeats 20] [--threads 2]

The frame is a real CCPD car from ../shared/data/plates (a rendered plate when that is absent),
placed in an 800x600 entry zone. Figures are medians (the frame's also with quartiles and extremes);
the target is 150 ms on 2 cores. A frame costs detection + one recognition per candidate (up to
``max_candidates``, each padded to ``rec_min_width``) + decoding.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import print_table, write_json
from calibration.zones import PolygonZone
from vision.imageio import decode_image
from vision.plates.ocr import PpOcr, warp_quad
from vision.plates.reader import PlateReader, ReaderConfig
from vision.plates.rescore import rescore

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "plates" / "scenes"
ZONE = ((240.0, 120.0), (1040.0, 120.0), (1040.0, 720.0), (240.0, 720.0))


def frame_with_plate() -> tuple[np.ndarray, str]:
    frame = np.full((720, 1280, 3), 90, np.uint8)
    path = SHARED / "ccpd_039.jpg"
    if path.is_file():
        car = decode_image(path.read_bytes())[300:720, :]
        frame[200:620, 280:1000] = car
        return frame, "皖APV930"
    raise SystemExit(f"{path} is absent: bench.plates needs ../shared/data/plates")


def _samples_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    return statistics.median(_samples_ms(fn, repeats))


def _spread(samples: list[float]) -> dict[str, float]:
    """Median, quartiles and extremes: the machine is shared, so the spread says how noisy a run was."""
    q1, _, q3 = statistics.quantiles(samples, n=4) if len(samples) > 1 else (samples[0],) * 3
    return {"median": round(statistics.median(samples), 1), "q1": round(q1, 1), "q3": round(q3, 1),
            "min": round(min(samples), 1), "max": round(max(samples), 1)}


def run(repeats: int, threads: int) -> dict[str, Any]:
    ocr = PpOcr.from_pack(threads=threads)
    reader = PlateReader(ocr, ReaderConfig())
    frame, truth = frame_with_plate()
    zone = PolygonZone("entry", ZONE)
    reads = reader.read(frame, zone)
    quads = reader.candidates(frame, zone)
    crop_h, crop_w = 60, 200
    crop = np.full((crop_h, crop_w, 3), 120, np.uint8)
    crops = [warp_quad(frame, q, pad_x=0.02) for q in quads]
    probs = ocr.recognise_probs(crops, min_width=reader.config.rec_min_width)
    frame_ms = _samples_ms(lambda: reader.read(frame, zone), repeats)
    return {
        "read_correct": bool(reads) and reads[0].text == truth,
        "ms_per_frame_zone": statistics.median(frame_ms),
        "ms_per_frame_zone_spread": _spread(frame_ms),
        "ms_detect_zone": _median_ms(lambda: reader.candidates(frame, zone), repeats),
        # the frame's candidates, recognised in one batch (each padded to rec_min_width)
        "ms_recognise_candidates": _median_ms(
            lambda: ocr.recognise_probs(crops, min_width=reader.config.rec_min_width), repeats),
        "ms_decode_candidates": _median_ms(lambda: [rescore(ocr.decoder, [p]) for p in probs], repeats),
        "ms_recognise_crop": _median_ms(lambda: reader.read_crops([crop], pad_y=(0.0,)), repeats),
        "ms_per_frame_full_no_zone": _median_ms(lambda: reader.read(frame), max(3, repeats // 4)),
        "ms_full_frame_detector_736": _median_ms(
            lambda: ocr.detect(frame, max_side=1280), max(3, repeats // 4)),
        "candidates": len(quads), "threads": threads, "repeats": repeats, "target_ms": 150.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    result = run(args.repeats, args.threads)
    print_table([(k, f"{v:.1f}" if isinstance(v, float) else str(v),
                  "median ms" if k.startswith("ms") and not k.endswith("spread") else "")
                 for k, v in result.items()])
    write_json(args.json, result)


if __name__ == "__main__":
    main()
