"""Person-detector benchmark on the real photos of ../shared/data/scenes: counts against truth, ms per frame.

    python -m bench.persons [--scenes DIR] [--threshold 0.4] [--repeats 5] [--json OUT.json]

Truth: for the 9 PASCAL VOC photos, dlib's hand-labelled face boxes (testing.xml, training.xml) — the
people whose faces are visible; for the other photos, people counted by eye (below). ``faces_covered``
counts labelled faces whose centre lies in the upper half of some detected person box, which is what
face-to-person association needs. The collage ``bald_guys.jpg`` is not a scene and is left out.
"""

from __future__ import annotations

import argparse
import os
import re
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.common import median_ms, write_json
from vision.engines.nanodet import NanoDetConfig, NanoDetPersonDetector
from vision.imageio import decode_image
from vision.types import Image

DEFAULT_SCENES = Path(__file__).resolve().parents[2] / "shared" / "data" / "scenes"
BY_EYE = {"deepface__couple.jpg": 2, "deepface__selfie-many-people.jpg": 7,
          "face_recognition__kit_with_rose.jpg": 2, "face_recognition__obama_and_biden.jpg": 3,
          "face_recognition__two_people.jpg": 2}


def labelled_faces(folder: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for xml in ("testing.xml", "training.xml"):
        text = (folder / xml).read_text(encoding="latin-1")
        for m in re.finditer(r"<image file='([^']+)'[^>]*>(.*?)</image>", text, re.S):
            boxes = [[int(b[1]), int(b[0]), int(b[1]) + int(b[2]), int(b[0]) + int(b[3])] for b in
                     re.findall(r"top='(\d+)' left='(\d+)' width='(\d+)' height='(\d+)'", m.group(2))]
            out[m.group(1)] = np.asarray(boxes, np.float32).reshape(-1, 4)
    return out


def covered(faces: np.ndarray, persons: np.ndarray) -> int:
    n = 0
    for f in faces:
        cx, cy = (f[0] + f[2]) / 2, (f[1] + f[3]) / 2
        upper = (persons[:, 0] <= cx) & (cx <= persons[:, 2]) & (persons[:, 1] <= cy) & \
                (cy <= (persons[:, 1] + persons[:, 3]) / 2)
        n += int(upper.any())
    return n


def run(scenes: Path, threshold: float, repeats: int, threads: int, resize: str = "stretch") -> dict[str, Any]:
    detector = NanoDetPersonDetector(NanoDetConfig(score_threshold=threshold, onnx_threads=threads,
                                                   resize=resize))  # type: ignore[arg-type]
    faces = labelled_faces(scenes / "dlib_examples_faces")
    rows = []
    for path in sorted(scenes.rglob("*.jpg")):
        if path.name == "bald_guys.jpg":
            continue
        image = decode_image(path.read_bytes())
        dets = detector.detect(image)
        truth = len(faces[path.name]) if path.name in faces else BY_EYE.get(path.name)
        if truth is None:
            continue
        small: Image = np.ascontiguousarray(cv2.resize(image, (1280, 720)), np.uint8)
        rows.append({"photo": path.name, "truth": truth, "found": len(dets),
                     "faces_covered": covered(faces[path.name], dets.xyxy) if path.name in faces else None,
                     "ms_1280x720": round(median_ms(partial(detector.detect, small), repeats), 1)})
    return {"threshold": threshold, "threads": threads, "resize": resize, "photos": rows,
            "truth_total": sum(r["truth"] for r in rows), "found_total": sum(r["found"] for r in rows),
            "exact_counts": sum(r["found"] == r["truth"] for r in rows),
            "faces_labelled": sum(len(v) for v in faces.values()),
            "faces_covered": sum(r["faces_covered"] or 0 for r in rows),
            "median_ms": float(np.median([r["ms_1280x720"] for r in rows])),
            "load_avg_1m": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=Path, default=DEFAULT_SCENES)
    parser.add_argument("--threshold", type=float, default=NanoDetConfig().score_threshold)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = {mode: run(args.scenes, args.threshold, args.repeats, args.threads, mode)
               for mode in ("stretch", "letterbox")}
    stretch, letterbox = results["stretch"], results["letterbox"]
    print(f"{'photo':42s} truth | stretch found, faces covered, ms | letterbox found, faces covered, ms")
    for a, b in zip(stretch["photos"], letterbox["photos"], strict=True):
        print(f"{a['photo']:42s} {a['truth']:5d} | {a['found']:3d} {a['faces_covered']!s:>4} {a['ms_1280x720']:6.1f} "
              f"| {b['found']:3d} {b['faces_covered']!s:>4} {b['ms_1280x720']:6.1f}")
    for mode, result in results.items():
        print(f"{mode:9s}: total truth {result['truth_total']} found {result['found_total']}; exact counts "
              f"{result['exact_counts']}/{len(result['photos'])}; labelled faces covered {result['faces_covered']}/"
              f"{result['faces_labelled']}; median {result['median_ms']:.1f} ms (load {result['load_avg_1m']:.2f})")
    result = {"threshold": args.threshold, "threads": args.threads, "modes": results}
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
