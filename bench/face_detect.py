"""Camera face detectors side by side at 720p: dlib HOG against BlazeFace on tiles (``face.detector``).

    python -m bench.face_detect --scenes ../shared/data/scenes --json OUT.json [--repeats 5] [--arrivals 20]
                                [--offline-arrivals 20]

Every photo (and 8 frames of each video) of the scenes folder is scaled to fit a 1280x720 frame and
centred on black, so each detector works on a real 720p frame with the pipeline's ``min_face_px`` (80).
Both detectors return the engine's 5 landmarks (HOG: dlib's own detection; BlazeFace: dlib's landmarks
fitted on its boxes), so their times compare like with like.

- **Labelled photos** (dlib's hand-drawn boxes in ``testing.xml`` / ``training.xml``, 43 faces): a face is
  found when a detection overlaps it with IoU >= 0.3 (each detection counts once); recall is given for the
  faces of at least ``min_face_px`` (what the pipeline is tuned to find) and for all. A detection matching no
  labelled face is listed as unmatched (not every face of those photos is labelled).
- **Other photos and frames**: the reference is every face at least two of three detectors agree on (HOG,
  BlazeFace, and HOG with one upsampling step, slower but finding smaller faces); a detection no other
  detector confirms is listed for a hand check.
- **Calibration**: for faces both detectors found, the HOG box's centre offset and size relative to the
  BlazeFace box (0 and 1 when the box calibration holds), and the cosine between the embeddings of the same
  face from either box.
- **Arrivals** (:mod:`bench.face_detect_arrivals`): the entrance benchmark's VIP walk-in video once per
  detector through the real edge service in real time (``--arrivals N``: alerts and latency, which depend on
  how busy the machine is), and offline with every frame processed, whole-frame and motion-gated
  (``--offline-arrivals N``: visits decided). 0 skips either.

Skips with a message (exit 0) when the scenes folder is absent.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench import face_detect_arrivals
from bench.common import median_ms, print_table, write_json
from bench.face_detect_match import agreed_faces, calibration, match, unmatched_boxes
from bench.persons import labelled_faces
from vision.engines.base import DlibEngineConfig, FaceEngine
from vision.engines.registry import build_camera_engine, build_engine
from vision.types import Detections, FloatArray, Image

FRAME_W, FRAME_H = 1280, 720
VIDEO_FRAMES = 8
DETECTORS = ("hog", "blazeface")


@dataclass(slots=True)
class Scene:
    name: str
    frame: Image
    labels: FloatArray | None  # hand-labelled face boxes in frame pixels; None: not labelled


@dataclass(slots=True)
class Tally:
    found: int = 0
    faces: int = 0
    found_min: int = 0
    faces_min: int = 0
    unmatched: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"found": self.found, "faces": self.faces, "found_at_least_min_face": self.found_min,
                "faces_at_least_min_face": self.faces_min,
                "recall_at_least_min_face": self.found_min / self.faces_min if self.faces_min else None,
                "unmatched": len(self.unmatched), "unmatched_boxes": self.unmatched}


def to_frame(image: Image) -> tuple[Image, float, int, int]:
    """``image`` scaled to fit 1280x720 and centred on black; the scale and the offset."""
    height, width = image.shape[:2]
    scale = min(FRAME_W / width, FRAME_H / height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    frame = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)
    left, top = (FRAME_W - size[0]) // 2, (FRAME_H - size[1]) // 2
    frame[top:top + size[1], left:left + size[0]] = resized
    return frame, scale, left, top


def load_scenes(folder: Path) -> list[Scene]:
    labels = {}
    for xml_dir in sorted({p.parent for p in folder.rglob("testing.xml")}):
        labels.update({(xml_dir / name).resolve(): boxes for name, boxes in labelled_faces(xml_dir).items()})
    scenes: list[Scene] = []
    for path in sorted(folder.rglob("*.jpg")) + sorted(folder.rglob("*.png")):
        image = cv2.imread(str(path))
        if image is None:
            continue
        frame, scale, left, top = to_frame(np.asarray(image, np.uint8))
        boxes = labels.get(path.resolve())
        mapped = None if boxes is None else (boxes * scale + np.array([left, top, left, top])).astype(np.float32)
        scenes.append(Scene(str(path.relative_to(folder)), frame, mapped))
    for path in sorted(folder.rglob("*.mp4")):
        capture = cv2.VideoCapture(str(path))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        for index in np.linspace(0, max(count - 1, 0), VIDEO_FRAMES).round().astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, image = capture.read()
            if ok:
                frame = to_frame(np.asarray(image, np.uint8))[0]
                scenes.append(Scene(f"{path.relative_to(folder)}#{index}", frame, None))
        capture.release()
    return scenes


def detectors(min_face_px: int) -> tuple[FaceEngine, dict[str, FaceEngine], FaceEngine]:
    """The dlib engine, the camera engine of each detector, and the upsampling HOG of the agreement reference."""
    engine = build_engine(DlibEngineConfig(min_face_px=min_face_px))
    cams = {name: build_camera_engine(engine, name) for name in DETECTORS}
    reference = build_engine(DlibEngineConfig(min_face_px=max(20, min_face_px // 2)))
    return engine, cams, reference


def evaluate(scenes: list[Scene], min_face_px: int, repeats: int) -> dict[str, Any]:
    engine, cams, reference = detectors(min_face_px)
    labelled = {name: Tally() for name in DETECTORS}
    agreed = {name: Tally() for name in DETECTORS}
    unconfirmed: dict[str, list[dict[str, Any]]] = {name: [] for name in DETECTORS}
    times: dict[str, list[float]] = {name: [] for name in DETECTORS}
    pairs: list[tuple[Image, Detections, Detections]] = []
    for scene in scenes:
        found = {name: cams[name].detect(scene.frame) for name in DETECTORS}
        for name in DETECTORS:
            times[name].append(median_ms(lambda n=name, f=scene.frame: cams[n].detect(f), repeats))  # type: ignore[misc]
        pairs += [(scene.frame, found["hog"][np.array([h])], found["blazeface"][np.array([b])])
                  for h, b in match(found["hog"].xyxy, found["blazeface"].xyxy, 0.4)]
        if scene.labels is not None:
            truth = scene.labels
            tallies = labelled
        else:
            extra = reference.detect(scene.frame).xyxy
            truth = agreed_faces([found["hog"].xyxy, found["blazeface"].xyxy, extra])
            tallies = agreed
            for name in DETECTORS:
                others = [found[o].xyxy for o in DETECTORS if o != name] + [extra]
                unconfirmed[name] += [{"scene": scene.name, "box": b}
                                      for b in unmatched_boxes(found[name].xyxy, np.concatenate(others))]
        sides = np.minimum(truth[:, 2] - truth[:, 0], truth[:, 3] - truth[:, 1]) if len(truth) else np.zeros(0)
        for name in DETECTORS:
            hit_rows = [t for t, _ in match(truth, found[name].xyxy, 0.3)]
            tally = tallies[name]
            tally.faces += len(truth)
            tally.found += len(hit_rows)
            tally.faces_min += int((sides >= min_face_px).sum())
            tally.found_min += sum(1 for r in hit_rows if sides[r] >= min_face_px)
            if scene.labels is not None:
                tally.unmatched += [{"scene": scene.name, "box": b} for b in unmatched_boxes(found[name].xyxy, truth)]
    cal = calibration(engine, pairs)
    return {
        "frames": len(scenes), "min_face_px": min_face_px,
        "labelled": {name: labelled[name].as_dict() for name in DETECTORS},
        "agreement": {name: {**agreed[name].as_dict(), "unconfirmed": len(unconfirmed[name]),
                             "unconfirmed_boxes": unconfirmed[name]} for name in DETECTORS},
        "ms_per_720p_frame": {name: {"median": statistics.median(times[name]), "mean": statistics.fmean(times[name])}
                              for name in DETECTORS},
        "calibration": cal,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=Path, required=True, help="the scenes folder (../shared/data/scenes)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats per frame (median)")
    parser.add_argument("--arrivals", type=int, default=20,
                        help="VIP visits per detector in the real-time entrance run; 0 skips")
    parser.add_argument("--offline-arrivals", type=int, default=20,
                        help="VIP visits per detector with every frame processed (whole-frame and gated); 0 skips")
    parser.add_argument("--min-face-px", type=int, default=80, help="the engine's min_face_px at 720p")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.scenes.is_dir():
        print(f"skipped: no scenes folder at {args.scenes}")
        sys.exit(0)
    scenes = load_scenes(args.scenes)
    if not scenes:
        print(f"skipped: no photos or videos in {args.scenes}")
        sys.exit(0)
    result = evaluate(scenes, args.min_face_px, args.repeats)
    if args.offline_arrivals > 0:
        result["arrivals_offline"] = face_detect_arrivals.offline(DETECTORS, args.offline_arrivals)
    if args.arrivals > 0:
        result["arrivals"] = face_detect_arrivals.realtime(DETECTORS, args.arrivals)
    rows = []
    for name in DETECTORS:
        lab, agr, ms = result["labelled"][name], result["agreement"][name], result["ms_per_720p_frame"][name]
        rows += [
            (f"{name} labelled", f"{lab['found_at_least_min_face']}/{lab['faces_at_least_min_face']}",
             f">= {args.min_face_px} px; all sizes {lab['found']}/{lab['faces']}, unmatched {lab['unmatched']}"),
            (f"{name} agreement", f"{agr['found_at_least_min_face']}/{agr['faces_at_least_min_face']}",
             f"all sizes {agr['found']}/{agr['faces']}, unconfirmed {agr['unconfirmed']}"),
            (f"{name} ms/frame", f"{ms['median']:.1f}", "1280x720, 5 landmarks included, median over frames"),
        ]
        if "arrivals" in result:
            arr = result["arrivals"][name]
            latency = f"alert latency p50 {arr['alert_latency_p50_s']:.3f} s, p95 {arr['alert_latency_p95_s']:.3f} s"
            rows.append((f"{name} arrivals", f"{arr['arrivals_alerted']}/{arr['arrivals']}", latency))
        for key, off in result.get("arrivals_offline", {}).items():
            if key.startswith(name):
                note = f"visits decided, every frame; VIP outside a visit {off['vip_sightings_outside_visits']}"
                rows.append((f"{key} offline", f"{off['decided']}/{off['visits']}", note))
    cal = result["calibration"]
    rows.append(("embedding cosine", f"{cal['cosine_median']:.4f}",
                 f"same face, HOG box vs BlazeFace box; p10 {cal['cosine_p10']:.4f}, min {cal['cosine_min']:.4f}, "
                 f"{cal['pairs']} faces"))
    print_table(rows)
    write_json(args.json, result)
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
