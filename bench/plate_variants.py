"""Crop-reading variants side by side on the labelled LPRNet crops (input geometry, contrast, decoding).

    python -m bench.plate_variants --json OUT.json [--variants py0.2,lin+legacy_pad] [--timing-crops 60]

Every variant is one or more reads of each crop (``+`` joins reads). Each read is decoded three ways:
greedy (RapidOCR's own), grammar-constrained Viterbi, and CTC-likelihood rescoring (several reads:
log-likelihoods summed). Crops are split by index parity: tune on A (even), report B (odd), then all.
ms per crop: one crop at a time (its reads batched), median over the first ``--timing-crops`` crops.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.common import print_table, write_json
from vision.imageio import decode_image
from vision.plates.ctc import CtcDecoder, Probs
from vision.plates.grammar import normalise
from vision.plates.ocr import PpOcr
from vision.plates.rescore import rescore
from vision.types import Image

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "plates"
Prep = Callable[[Image], Image]


def _margin(pad_y: float = 0.0, pad_x: float = 0.0, border: int = cv2.BORDER_REPLICATE) -> Prep:
    def prep(crop: Image) -> Image:
        py, px = round(crop.shape[0] * pad_y / 2), round(crop.shape[1] * pad_x / 2)
        return crop if not (py or px) else np.asarray(cv2.copyMakeBorder(crop, py, py, px, px, border), np.uint8)
    return prep


def _legacy(crop: Image) -> Image:  # the reader's former second read: 25% taller, a little wider
    pad = max(1, round(crop.shape[0] * 0.25 / 2))
    return np.asarray(cv2.copyMakeBorder(crop, pad, pad, max(1, pad // 3), max(1, pad // 3),
                                         cv2.BORDER_REPLICATE), np.uint8)


def _clahe(crop: Image) -> Image:
    lab = cv2.cvtColor(crop, cv2.COLOR_BGR2LAB)
    lab[:, :, 0] = cv2.createCLAHE(2.0, (4, 2)).apply(lab[:, :, 0])
    return np.asarray(cv2.cvtColor(lab, cv2.COLOR_LAB2BGR), np.uint8)


def _stretch(crop: Image) -> Image:
    lo, hi = np.percentile(crop, (1, 99))
    return np.asarray(np.clip((crop.astype(np.float32) - lo) * 255.0 / max(hi - lo, 1.0), 0, 255), np.uint8)


# name -> (preprocessing, resize interpolation, width scale, pad to rec width 320)
READS: dict[str, tuple[Prep, int, float, bool]] = {
    "lin": (_margin(), cv2.INTER_LINEAR, 1.0, True),
    "lin_nopad320": (_margin(), cv2.INTER_LINEAR, 1.0, False),
    "cubic": (_margin(), cv2.INTER_CUBIC, 1.0, True),
    "w1.25": (_margin(), cv2.INTER_LINEAR, 1.25, True),
    "legacy_pad": (_legacy, cv2.INTER_LINEAR, 1.0, True),
    "py0.1": (_margin(0.1), cv2.INTER_LINEAR, 1.0, True),
    "py0.2": (_margin(0.2), cv2.INTER_LINEAR, 1.0, True),
    "py0.3": (_margin(0.3), cv2.INTER_LINEAR, 1.0, True),
    "py0.4": (_margin(0.4), cv2.INTER_LINEAR, 1.0, True),
    "py0.5": (_margin(0.5), cv2.INTER_LINEAR, 1.0, True),
    "py0.2_const": (_margin(0.2, border=cv2.BORDER_CONSTANT), cv2.INTER_LINEAR, 1.0, True),
    "py0.3x0.1": (_margin(0.3, 0.1), cv2.INTER_LINEAR, 1.0, True),
    "clahe": (_clahe, cv2.INTER_LINEAR, 1.0, True),
    "stretch": (_stretch, cv2.INTER_LINEAR, 1.0, True),
}
DEFAULT = ("lin,lin_nopad320,cubic,w1.25,clahe,stretch,legacy_pad,py0.1,py0.2,py0.3,py0.4,py0.5,py0.2_const,"
           "py0.3x0.1,lin+legacy_pad,lin+py0.2,py0.2+py0.3,py0.1+py0.3,py0.2+clahe,py0.1+py0.2+py0.3")


def _recognise(ocr: PpOcr, crops: list[Image], name: str) -> list[Probs]:
    prep, interp, w_scale, pad320 = READS[name]
    images = [prep(c) for c in crops]
    widths = [max(8, math.ceil(48 * im.shape[1] / im.shape[0] * w_scale)) for im in images]
    batch = np.zeros((len(images), 3, 48, max(max(widths), 320 if pad320 else 0)), np.float32)
    for i, (im, w) in enumerate(zip(images, widths, strict=True)):
        resized = cv2.resize(im, (w, 48), interpolation=interp)
        batch[i, :, :, :w] = ((resized.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
    out = np.asarray(ocr._rec.run(None, {"x": batch})[0], np.float32)  # a bench may poke inside
    return [out[i, :max(1, math.ceil(w / 8))] for i, w in enumerate(widths)]


def _decode(dec: CtcDecoder, probs: list[Probs], how: str) -> str:
    if how == "greedy":
        return normalise(dec.greedy(probs[0]).text)
    decoded = dec.constrained(probs[0]) if how == "constrained" else rescore(dec, probs)
    return decoded.text if decoded else ""


def _chars_right(truth: str, read: str) -> int:
    if len(truth) == len(read):
        return sum(a == b for a, b in zip(truth, read, strict=True))
    return sum(m.size for m in difflib.SequenceMatcher(None, truth, read).get_matching_blocks())


def run(root: Path, names: list[str], timing_crops: int) -> list[dict[str, Any]]:
    with (root / "labels.csv").open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"] == "crop"]
    crops = [decode_image((root / r["file"]).read_bytes()) for r in rows]
    truth = [normalise(r["plate"]) for r in rows]
    ocr = PpOcr.from_pack(threads=2)
    dec = ocr.decoder
    cache: dict[str, list[Probs]] = {}
    out: list[dict[str, Any]] = []
    for name in names:
        reads = name.split("+")
        for r in reads:
            if r not in cache:
                cache[r] = [p for s in range(0, len(crops), 32) for p in _recognise(ocr, crops[s:s + 32], r)]
        hows = ("greedy", "constrained", "rescored") if len(reads) == 1 else ("rescored",)
        ms: list[float] = []
        for crop in crops[:timing_crops]:
            t0 = time.perf_counter()
            probs = [p for r in reads for p in _recognise(ocr, [crop], r)]
            rescore(dec, probs)
            ms.append((time.perf_counter() - t0) * 1000)
        for how in hows:
            preds = [_decode(dec, [cache[r][i] for r in reads], how) for i in range(len(crops))]
            ok = [p == t for p, t in zip(preds, truth, strict=True)]
            out.append({"variant": name, "decode": how,
                        "exact_A": f"{sum(ok[0::2])}/{len(ok[0::2])}", "exact_B": f"{sum(ok[1::2])}/{len(ok[1::2])}",
                        "exact": round(sum(ok) / len(ok), 4), "right": sum(ok),
                        "char_accuracy": round(sum(_chars_right(t, p) for t, p in zip(truth, preds, strict=True))
                                               / sum(len(t) for t in truth), 4),
                        "ms_per_crop": round(statistics.median(ms), 1),
                        "misses": [f"{rows[i]['file']}:{preds[i]}" for i in range(len(crops)) if not ok[i]]})
            print(f"{name:22s} {how:12s} A {out[-1]['exact_A']} B {out[-1]['exact_B']} all {out[-1]['exact']} "
                  f"char {out[-1]['char_accuracy']} {out[-1]['ms_per_crop']} ms", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--variants", default=DEFAULT)
    parser.add_argument("--timing-crops", type=int, default=60)
    args = parser.parse_args()
    table = run(args.root, args.variants.split(","), args.timing_crops)
    print_table([(f"{t['variant']} / {t['decode']}", f"A {t['exact_A']}  B {t['exact_B']}  all {t['exact']}",
                  f"char {t['char_accuracy']}  {t['ms_per_crop']} ms") for t in table])
    write_json(args.json, {"variants": table})


if __name__ == "__main__":
    main()
