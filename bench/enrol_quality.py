"""Distributions of the enrolment-quality measures on real photos, to set the enrolment limits on data.

    python -m bench.enrol_quality --root ../shared/data/faces --glob 'east_asian/*/*.jpg' --glob 'deepface/*.jpg' \\
        --json enrol_quality.json

For every photo: the face the enrolment finder keeps (:func:`vision.enrolment.default_finder`), which
detector found it and its score, the yaw ratio (:func:`vision.quality.yaw_ratio`), the eye aspect
ratio from dlib's 68 points (:func:`vision.quality.eye_aspect_ratio`) and the chip's sharpness. It
prints percentiles per folder and the photos at the extremes, so that a limit can be chosen that
keeps (say) 99 % of real enrolment-like photos, and then checked by eye on the extremes.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.common import write_json
from vision.engines.base import DlibEngineConfig
from vision.engines.registry import build_engine
from vision.enrolment import default_finder
from vision.errors import BadImageError
from vision.imageio import decode_image
from vision.quality import EyeMeter, sharpness, yaw_ratio

logger = logging.getLogger(__name__)

PERCENTILES = (0.5, 1, 5, 50, 95, 99, 99.5)


def measure(paths: Sequence[Path], root: Path) -> list[dict[str, object]]:
    engine = build_engine(DlibEngineConfig())
    finder = default_finder(engine)
    eyes = EyeMeter()
    rows: list[dict[str, object]] = []
    for path in tqdm(paths, unit="img", mininterval=1.0):
        try:
            image = decode_image(path.read_bytes(), max_bytes=50 * 1024 * 1024)
        except (OSError, BadImageError) as exc:
            logger.warning("%s: %s", path, exc)
            continue
        found = finder.find(image)
        face = found.largest()
        row: dict[str, object] = {"file": str(path.relative_to(root)), "group": str(path.relative_to(root).parts[0]),
                                  "n_faces": len(found.dets), "detector": found.detector}
        if len(face) and face.landmarks is not None:
            chip = engine.chips(found.image, face)[0]
            row.update(score=float(face.score[0]), yaw=yaw_ratio(face.landmarks[0]),
                       ear=eyes.aspect_ratio(found.image, face.xyxy[0]), sharpness=sharpness(chip),
                       size_px=float(min(face.widths[0], face.heights[0])))
        rows.append(row)
    return rows


def _pct(values: list[float]) -> str:
    if not values:
        return "-"
    return " ".join(f"p{p:g}={np.percentile(values, p):.3f}" for p in PERCENTILES)


def report(rows: list[dict[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for group in [*sorted({str(r["group"]) for r in rows}), "all"]:
        sel = [r for r in rows if (group == "all" or r["group"] == group) and "yaw" in r]
        in_group = [r for r in rows if group == "all" or r["group"] == group]
        stats: dict[str, object] = {"n": len(sel), "no_face": sum(1 for r in in_group if "yaw" not in r)}
        print(f"{group}: {stats['n']} faces, {stats['no_face']} without")
        for key, column in (("abs_yaw", "yaw"), ("ear", "ear"), ("sharpness", "sharpness")):
            values = [abs(float(str(r[column]))) for r in sel]
            print(f"  {key:<10} {_pct(values)}")
            stats[key] = {f"p{p:g}": float(np.percentile(values, p)) for p in PERCENTILES} if values else {}
        for det in ("hog", "blazeface"):
            values = [float(str(r["score"])) for r in sel if r["detector"] == det]
            print(f"  {det + ' score':<10} n={len(values)} {_pct(values)}")
            stats[f"{det}_score"] = {f"p{p:g}": float(np.percentile(values, p)) for p in PERCENTILES} if values else {}
        out[group] = stats
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--glob", action="append", required=True, help="photos under --root (repeatable)")
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--extremes", type=int, default=8, help="photos listed at each extreme (8)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    paths = sorted({q for g in args.glob for q in args.root.glob(g)})
    rows = measure(paths, args.root)
    stats = report(rows)
    faces = [r for r in rows if "yaw" in r]
    for key, reverse in (("yaw", True), ("ear", False), ("score", False)):
        ranked = sorted(faces, key=lambda r: abs(float(str(r[key]))), reverse=reverse)[: args.extremes]
        print(f"extreme {key}: " + ", ".join(f"{r['file']} ({float(str(r[key])):.3f}, {r['detector']})"
                                             for r in ranked))
    write_json(args.json, {"root": str(args.root), "globs": args.glob, "stats": stats, "photos": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
