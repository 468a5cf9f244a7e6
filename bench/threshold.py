"""Measure the cosine-score distribution of the default face engine on a labelled face set and
pick the voter threshold for a target false-match rate.

    python -m bench.threshold --root ../shared/data/faces/east_asian --json OUT.json

Every photo is embedded once (largest face; images padded by 30% so tight crops still detect).
Genuine pairs are all same-identity pairs; impostor pairs are all cross-identity pairs.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import cv2
import numpy as np

from vision.engines.base import DlibEngineConfig, build_engine
from vision.imageio import decode_image


def embed_set(root: Path, min_face_px: int) -> tuple[list[str], np.ndarray, float]:
    engine = build_engine(DlibEngineConfig(min_face_px=min_face_px))
    labels: list[str] = []
    vectors: list[np.ndarray] = []
    times: list[float] = []
    with (root / "manifest.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        image = decode_image((root / row["file"]).read_bytes())
        pad = int(0.3 * max(image.shape[:2]))
        image = np.asarray(cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE), np.uint8)
        t0 = time.perf_counter()
        dets = engine.detect(image)
        if len(dets) == 0:
            continue
        biggest = int(np.argmax(dets.widths * dets.heights))
        vectors.append(engine.embed(image, dets[np.array([biggest])])[0])
        times.append(time.perf_counter() - t0)
        labels.append(row["identity"])
    return labels, np.stack(vectors), float(np.median(times) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--min-face-px", type=int, default=40)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    labels, vectors, ms = embed_set(args.root, args.min_face_px)
    sims = vectors @ vectors.T
    ids = np.array(labels)
    same = ids[:, None] == ids[None, :]
    upper = np.triu(np.ones_like(same, dtype=bool), k=1)
    genuine = sims[same & upper]
    impostor = sims[~same & upper]
    result: dict[str, float | int] = {"n_images": len(labels), "n_genuine": int(genuine.size),
                                      "n_impostor": int(impostor.size), "ms_per_image": ms}
    print(f"{'target FMR':>12} {'threshold':>10} {'TAR':>7}")
    for fmr in (1e-2, 1e-3, 1e-4):
        thr = float(np.quantile(impostor, 1 - fmr))
        tar = float((genuine >= thr).mean())
        result[f"threshold_at_fmr_{fmr:g}"] = thr
        result[f"tar_at_fmr_{fmr:g}"] = tar
        print(f"{fmr:>12g} {thr:>10.4f} {tar:>7.3f}")
    args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
