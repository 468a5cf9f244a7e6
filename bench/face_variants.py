"""Face-pipeline accuracy variants side by side, in one run: finders, chip borders and padding, flip and
jitter test-time augmentation, quality-gated probes and several enrolment photos per person.

    python -m bench.face_variants --root ../shared/data/faces/east_asian \\
        --pairs ../shared/data/faces/east_asian/pairs.csv --manifest ../shared/data/faces/east_asian/manifest.csv \\
        --by source --json ea_variants.json --workers 2

Every photo is read once; each finder runs once and each chip is embedded once
(:mod:`bench.face_variant_embed`); a TTA variant is the renormalised mean of its chips' embeddings.
Metrics are those of ``smartbranch eval faces`` (:func:`edge.evaluation.eval_faces.evaluate`, same seed and
folds). ``ms/img`` per variant = its finder's detection time + its chips x (chip cut + embedding
time per chip, batched), medians over the photos of this run: on a shared 2-core box they are noisy.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.common import write_json
from bench.face_variant_embed import N_JITTERS, PhotoResult, init_worker, run_photo
from bench.face_variant_extra import enrolment_rows, gated_rows, summary
from edge.evaluation.eval_faces import EvalInput, evaluate, load_inputs, positive_int
from edge.evaluation.face_data import Embeddings
from edge.evaluation.face_protocol import json_safe
from vision.engines.base import DlibEngineConfig

logger = logging.getLogger(__name__)

JIT = tuple(f"def_j{i}" for i in range(N_JITTERS))


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    options: tuple[tuple[str, ...], ...]  # the first option whose chips all exist is used
    finders: tuple[str, ...]  # finders that run, in order, until one finds a face
    note: str


VARIANTS: tuple[Variant, ...] = (
    Variant("finder=hog", (("hog",),), ("hog",), "HOG on the photo as it is"),
    Variant("finder=hog_pad", (("hogpad",),), ("hogpad",), "HOG on the photo padded 25 %"),
    Variant("finder=hog_pad+blazeface", (("def",),), ("hogpad", "blaze"), "the previous default"),
    Variant("finder=blazeface", (("blaze",),), ("blaze",), "BlazeFace box + dlib 5 points"),
    Variant("finder=blazeface+hog_pad", (("blaze",), ("hogpad",)), ("blaze", "hogpad"), "BlazeFace first"),
    Variant("chip_padding=0.10", (("def_p10",),), ("hogpad", "blaze"), "dlib get_face_chip padding"),
    Variant("chip_padding=0.15", (("def_p15",),), ("hogpad", "blaze"), "dlib get_face_chip padding"),
    Variant("chip_padding=0.20", (("def_p20",),), ("hogpad", "blaze"), "dlib get_face_chip padding"),
    Variant("chip_padding=0.30", (("def_p30",),), ("hogpad", "blaze"), "dlib get_face_chip padding"),
    Variant("border=constant", (("def_const",),), ("hogpad", "blaze"), "black photo border, landmarks refitted"),
    Variant("border=reflect", (("def_refl",),), ("hogpad", "blaze"), "mirrored photo border, landmarks refitted"),
    Variant("tta=flip", (("def", "def_flip"),), ("hogpad", "blaze"), "mean of chip and mirror"),
    Variant(f"tta=jitter{N_JITTERS}", (JIT,), ("hogpad", "blaze"), "dlib-like jitters, half mirrored"),
    Variant(f"tta=flip+jitter{N_JITTERS}", (("def", "def_flip", *JIT),), ("hogpad", "blaze"), "all of them"),
    Variant("border=constant+tta=flip", (("def_const", "def_const_flip"),), ("hogpad", "blaze"), ""),
    Variant("chip_padding=0.15+tta=flip", (("def_p15", "def_p15_flip"),), ("hogpad", "blaze"), ""),
    Variant("chip_padding=0.20+tta=flip", (("def_p20", "def_p20_flip"),), ("hogpad", "blaze"), ""),
    Variant("border=reflect+tta=flip", (("def_refl", "def_refl_flip"),), ("hogpad", "blaze"), ""),
    Variant("finder=hog_pad+tta=flip", (("hogpad", "hogpad_flip"),), ("hogpad",), ""),
    Variant("finder=blazeface+tta=flip", (("blaze", "blaze_flip"),), ("blaze",), ""),
    Variant("finder=blazeface+hog_pad+tta=flip", (("blaze", "blaze_flip"), ("hogpad", "hogpad_flip")),
            ("blaze", "hogpad"), ""),
)
BY_NAME = {v.name: v for v in VARIANTS}


def run_photos(paths: Sequence[Path], config: DlibEngineConfig, workers: int) -> Iterator[PhotoResult]:
    if workers <= 1:
        init_worker(config)
        yield from map(run_photo, paths)
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=init_worker, initargs=(config,))
    try:
        yield from pool.map(run_photo, paths, chunksize=4)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def variant_embeddings(files: Sequence[str], results: Sequence[PhotoResult], variant: Variant,
                       dim: int) -> Embeddings:
    vectors = np.zeros((len(files), 1, dim), np.float32)
    found = np.zeros((len(files), 1), bool)
    ms = np.zeros(len(files), np.float64)
    for i, r in enumerate(results):
        used: tuple[str, ...] = ()
        for option in variant.options:
            if all(k in r.vectors for k in option):
                used = option
                break
        finder_ms = 0.0
        for name in variant.finders:
            finder_ms += r.ms.get(f"find_{name}", 0.0)
            if name in r.vectors:
                break
        per_chip = r.ms.get("chip", 0.0) + r.ms.get("embed_per_chip", 0.0)
        ms[i] = finder_ms + per_chip * max(len(used), 1)
        if used:
            mean = np.mean([r.vectors[k] for k in used], axis=0)
            vectors[i, 0] = mean / max(float(np.linalg.norm(mean)), 1e-12)
            found[i, 0] = True
    return Embeddings(tuple(files), vectors, found, ms)


def _f(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) and math.isfinite(value) else "-"


def print_table(rows: list[dict[str, object]], groups: list[str]) -> None:
    head = ["variant", "acc", *groups, "TAR@1e-3", "FNIR@1e-2", "FNIR@1e-3", "no face", "ms/img", "cover"]
    table = [head]
    for r in rows:
        g = r.get("groups") or {}
        assert isinstance(g, dict)
        table.append([str(r["variant"]), _f(r["accuracy"]), *(_f(g.get(x)) for x in groups), _f(r["tar_at_far_1e-3"]),
                      _f(r["fnir_at_fpir_1e-2"]), _f(r["fnir_at_fpir_1e-3"]), f"{r['no_face']}/{r['n_images']}",
                      _f(r["ms_per_image"], 1), _f(r.get("coverage", 1.0))])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                             strict=True))))


def run(args: argparse.Namespace) -> int:
    data: EvalInput = load_inputs(args.root, args.pairs, args.manifest, args.identity_column, args.by, args.limit,
                                  args.seed)
    files = sorted(set(data.pairs.files) | set(data.open_files))
    config = DlibEngineConfig(onnx_threads=1 if args.workers > 1 else None, tta="none")  # TTA is done here
    results: list[PhotoResult] = []
    paths = [data.root / f for f in files]
    for r in tqdm(run_photos(paths, config, args.workers), total=len(paths), desc="variants", unit="img",
                  mininterval=1.0):
        if r.error is not None:
            raise SystemExit(f"unreadable image: {r.error}")
        results.append(r)
    chosen = VARIANTS if args.variants == "all" else tuple(BY_NAME[n] for n in args.variants.split(","))
    rows: list[dict[str, object]] = []
    group_names: list[str] = []
    best_emb: dict[str, Embeddings] = {}
    for variant in chosen:
        emb = variant_embeddings(files, results, variant, 128)
        overall, groups, _ = evaluate(data, emb, seed=args.seed, folds=args.folds)
        group_names = sorted(groups)
        rows.append(summary(variant.name, overall, groups, float(np.median(emb.ms)), variant.note))
        best_emb[variant.name] = emb
    gate_on = [n for n in args.gate_variants.split(",") if n in best_emb]
    quality = [r.quality for r in results]
    for name in gate_on:
        rows.extend(gated_rows(data, best_emb[name], quality, name, args.gates, seed=args.seed, folds=args.folds))
    print_table(rows, group_names)
    enrol = {name: enrolment_rows(data, best_emb[name], seed=args.seed) for name in gate_on}
    for name, table in enrol.items():
        print(f"\nopen set, several enrolment photos per person ({name}):")
        for e in table:
            print(f"  {e['gallery']:<12} n_enrolled {e['n_enrolled']:>3}  mated {e['n_mated']:>4}  "
                  f"non-mated {e['n_nonmated']:>4}  rank-1 {_f(e['rank1'])}  FNIR@1e-2 {_f(e['fnir_at_fpir_1e-2'])}"
                  f"  FNIR@1e-3 {_f(e['fnir_at_fpir_1e-3'])}")
    write_json(args.json, {"root": str(data.root), "pairs": str(data.pairs.path), "by": args.by,
                           "seed": args.seed, "rows": json_safe(rows), "enrolment": json_safe(enrol),
                           "quality": json_safe(dict(zip(files, quality, strict=True)))})
    print(f"\nwritten {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--pairs", type=Path, required=True)
    p.add_argument("--manifest", type=Path, default=None)
    p.add_argument("--identity-column", default="identity")
    p.add_argument("--by", default=None)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--workers", type=positive_int, default=1)
    p.add_argument("--limit", type=positive_int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=positive_int, default=10)
    p.add_argument("--variants", default="all", help=f"comma list of: {', '.join(BY_NAME)} (all)")
    p.add_argument("--gate-variants", default="finder=hog_pad+blazeface,tta=flip",
                   help="variants to repeat with quality-gated probes and several enrolment photos")
    p.add_argument("--gates", type=lambda s: [float(x) for x in s.split(",")], default=[0.4, 0.5, 0.6],
                   help="quality scores below which a probe is flagged (vision.quality.assess)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
