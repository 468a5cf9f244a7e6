"""Choose, on development halves, the stranger-pair rate from which the box adapts; confirm it on the other
halves; and check the guard's estimates against counted stranger scores on real faces.

    python -m bench.face_adapt_guard --faces ../shared/data/faces --splits 5 --json guard.json \\
        --cache ~/.cache/smartbranch/eval --workers 1

Two labelled sets: the East-Asian set (``east_asian/``, manifest identities) and LFW View 1 (``pairs.csv``,
folder identities). Each split cuts each set's identities in two halves with its own seed: a **dev** half and a
**confirm** half. In a half, the population statistics are those of the half's photos only (labels unused), and
the half's own pairs and open-set searches are scored unadapted and through the shrunk whitening.

- The decision (:func:`vision.population_choice.choose_transform`) adapts when the estimated stranger-pair match
  rate at the threshold is at least ``min_pair_rate``. The cutoff is chosen on the dev halves of both sets
  together: the grid value with the largest total gain of the branch it picks (accuracy points plus the fall of
  FNIR@FPIR 1e-2 in points; unadapted gains 0); ties go to the middle of the tied run. The confirm halves are
  then scored with that cutoff.
- Guard check (on each whole set, at the threshold): the stranger-pair match rate and the per-search stranger
  match rate (FPIR against the open-set gallery), estimated from the aggregates (normal tails, as the guard does)
  beside the counted ones, unadapted and through the transform with the guard's score map.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import write_json
from edge.evaluation.eval_faces import EvalInput, load_inputs, positive_int
from edge.evaluation.face_adapt import adapt, population_of
from edge.evaluation.face_data import Embeddings, embed_images
from edge.evaluation.face_protocol import build_protocol, evaluate_set, json_safe
from vision.engines.base import DlibEngineConfig
from vision.engines.registry import build_engine
from vision.population import WhiteningConfig, fit_whitening
from vision.population_choice import stranger_pairs
from vision.population_guard import check_transform
from vision.voter import VoterConfig

logger = logging.getLogger(__name__)

GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
DEFAULT_THRESHOLD = 0.9585  # face.voter.threshold's default


@dataclass(frozen=True, slots=True)
class Half:
    """One half of one set: its estimated stranger-pair rate and what whitening does to it (points)."""

    set: str
    split: int
    role: str  # dev or confirm
    faces: int
    pair_rate: float
    accuracy: float  # change, points
    fnir_fall: float  # fall of FNIR@FPIR 1e-2, points (nan when unresolved)

    def gain(self) -> float:
        return self.accuracy + (self.fnir_fall if np.isfinite(self.fnir_fall) else 0.0)


def score_half(name: str, data: EvalInput, emb: Embeddings, model_id: str, names: set[str], split: int, role: str,
               threshold: float, shrinkage: float) -> Half:
    files = [f for f in data.open_files if data.identity[f] in names]
    inside = np.array([i for i, (a, b) in enumerate(zip(data.pairs.left, data.pairs.right, strict=True))
                       if data.identity.get(a) in names and data.identity.get(b) in names], np.int64)
    pairs = data.pairs.subset(inside)
    stats = population_of(emb, model_id, set(emb.files) - set(files) - set(pairs.files))
    transform = fit_whitening(stats, WhiteningConfig(shrinkage=shrinkage, min_faces=2))
    before = evaluate_set(emb, pairs, files, data.identity, seed=0, folds=10, use_singletons=True)
    after = evaluate_set(adapt(emb, transform, model_id), pairs, files, data.identity, seed=0, folds=10,
                         use_singletons=True)
    return Half(name, split, role, stats.count, stranger_pairs(stats, threshold).rate,
                100 * (after.accuracy - before.accuracy), 100 * (before.fnir[0].rate - after.fnir[0].rate))


def choose_cutoff(dev: list[Half]) -> float:
    """The grid cutoff whose branches gain most on the dev halves; ties: the middle of the tied run."""
    totals = [round(sum(h.gain() for h in dev if h.pair_rate >= c), 9) for c in GRID]
    best = max(totals)
    tied = [i for i, t in enumerate(totals) if t == best]
    return GRID[tied[len(tied) // 2]]


def guard_check(name: str, data: EvalInput, emb: Embeddings, model_id: str, threshold: float,
                shrinkage: float) -> dict[str, object]:
    """Estimated against counted stranger match rates at ``threshold`` on a whole set."""
    index = {f: i for i, f in enumerate(emb.files)}
    found = [f for f in data.open_files if emb.found[index[f], 0]]
    vec = emb.vectors[[index[f] for f in found], 0].astype(np.float64)
    ids = np.asarray([data.identity[f] for f in found], dtype=object)
    stats = population_of(emb, model_id)
    upper = np.triu(ids[:, None] != ids[None, :], k=1)
    pair_scores = (vec @ vec.T)[upper]
    protocol = build_protocol(data.open_files, data.identity, seed=0, use_singletons=True)
    gallery = np.stack([emb.vectors[index[f], 0] for f in protocol.gallery]).astype(np.float64)
    probes = np.stack([emb.vectors[index[f], 0] for f in protocol.nonmated if emb.found[index[f], 0]])
    transform = fit_whitening(stats, WhiteningConfig(shrinkage=shrinkage))
    verdict = check_transform(stats, transform, gallery, list(protocol.gallery), threshold)
    mapped = verdict.score_map
    adapted = mapped.offset + mapped.scale * (transform.apply(model_id, probes).astype(np.float64)
                                              @ transform.apply(model_id, gallery).astype(np.float64).T)
    raw = probes.astype(np.float64) @ gallery.T
    estimate = stranger_pairs(stats, threshold)
    return {"set": name, "threshold": threshold, "faces": stats.count, "stranger_pairs": int(pair_scores.size),
            "pair_rate_estimated": estimate.rate, "pair_rate_counted": float((pair_scores >= threshold).mean()),
            "pair_mean_estimated": estimate.mean, "pair_mean_counted": float(pair_scores.mean()),
            "pair_sd_estimated": estimate.sd, "pair_sd_counted": float(pair_scores.std()),
            "gallery": len(protocol.gallery), "stranger_searches": int(probes.shape[0]),
            "fpir_estimated_unadapted": verdict.fpir_before, "fpir_counted_unadapted": float(
                (raw.max(axis=1) >= threshold).mean()),
            "fpir_estimated_adapted": verdict.fpir_after, "fpir_counted_adapted": float(
                (adapted.max(axis=1) >= threshold).mean()),
            "guard_accepts": verdict.accepted, "guard_reason": verdict.reason}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faces", type=Path, required=True, help="folder with pairs.csv, lfw/ and east_asian/")
    p.add_argument("--splits", type=positive_int, default=5)
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    p.add_argument("--shrinkage", type=float, default=WhiteningConfig().shrinkage)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--workers", type=positive_int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    VoterConfig(args.threshold, 0.0, 1, 1)
    ea = args.faces / "east_asian"
    sets = {"east_asian": load_inputs(ea, ea / "pairs.csv", ea / "manifest.csv", "identity", None, None, 0),
            "lfw": load_inputs(args.faces, args.faces / "pairs.csv", None, "identity", None, None, 0)}
    config = DlibEngineConfig()
    engine = build_engine(config)
    halves: list[Half] = []
    checks = []
    for name, data in sets.items():
        files = sorted(set(data.pairs.files) | set(data.open_files))
        emb = embed_images(data.root, files, config, engine=engine, workers=args.workers, desc=name,
                           cache=args.cache)
        names = sorted({data.identity[f] for f in data.open_files})
        for split in range(args.splits):
            order = np.random.default_rng(1000 + split).permutation(len(names))
            cut = len(names) // 2
            for role, chosen in (("dev", order[:cut]), ("confirm", order[cut:])):
                halves.append(score_half(name, data, emb, engine.model_id, {names[i] for i in chosen}, split, role,
                                         args.threshold, args.shrinkage))
        checks.append(guard_check(name, data, emb, engine.model_id, args.threshold, args.shrinkage))
    cutoff = choose_cutoff([h for h in halves if h.role == "dev"])
    print(f"threshold {args.threshold}, shrinkage {args.shrinkage}; cutoff chosen on the dev halves: {cutoff:.0e}")
    print(f"{'set':<11} {'split':>5} {'half':<8} {'faces':>5} {'pair rate':>9} {'branch':<9} "
          f"{'acc':>6} {'-FNIR':>6}   (whitening's change in points; the branch's change is 0 when unadapted)")
    summary: dict[str, dict[str, float]] = {}
    for h in halves:
        branch = "whiten" if h.pair_rate >= cutoff else "unadapted"
        print(f"{h.set:<11} {h.split:>5} {h.role:<8} {h.faces:>5} {h.pair_rate:>9.2e} {branch:<9} "
              f"{h.accuracy:>+6.2f} {h.fnir_fall:>+6.2f}")
        key = f"{h.set}/{h.role}"
        taken = branch == "whiten"
        row = summary.setdefault(key, {"halves": 0, "adapted": 0, "accuracy_points": 0.0, "fnir_fall_points": 0.0,
                                       "fnir_resolved": 0})
        row["halves"] += 1
        row["adapted"] += taken
        row["accuracy_points"] += h.accuracy if taken else 0.0
        if np.isfinite(h.fnir_fall):  # a half may hold too few strangers to resolve FPIR 1e-2: left out of the mean
            row["fnir_resolved"] += 1
            row["fnir_fall_points"] += h.fnir_fall if taken else 0.0
    for row in summary.values():
        row["accuracy_points"] /= row["halves"]
        row["fnir_fall_points"] /= max(row["fnir_resolved"], 1)
    for key, row in summary.items():
        print(f"{key:<20} adapted in {row['adapted']}/{row['halves']} halves; mean change with the choice: accuracy "
              f"{row['accuracy_points']:+.2f}, FNIR@FPIR 1e-2 {-row['fnir_fall_points']:+.2f} points")
    for c in checks:
        print(f"guard check {c['set']}: stranger-pair rate estimated {c['pair_rate_estimated']:.2e}, counted "
              f"{c['pair_rate_counted']:.2e}; FPIR unadapted estimated {c['fpir_estimated_unadapted']:.3f}, counted "
              f"{c['fpir_counted_unadapted']:.3f}; adapted (score map) estimated {c['fpir_estimated_adapted']:.3f}, "
              f"counted {c['fpir_counted_adapted']:.3f}; guard {'accepts' if c['guard_accepts'] else 'refuses'}"
              f"{'' if c['guard_accepts'] else ': ' + str(c['guard_reason'])}")
    write_json(args.json, json_safe({  # type: ignore[arg-type]
        "threshold": args.threshold, "shrinkage": args.shrinkage, "grid": list(GRID), "chosen_min_pair_rate": cutoff,
        "halves": [vars_of(h, cutoff) for h in halves], "summary": summary, "guard_check": checks}))
    return 0


def vars_of(h: Half, cutoff: float) -> dict[str, object]:
    return {"set": h.set, "split": h.split, "role": h.role, "faces": h.faces, "pair_rate": h.pair_rate,
            "branch": "whiten" if h.pair_rate >= cutoff else "unadapted", "whiten_accuracy_points": h.accuracy,
            "whiten_fnir_fall_points": h.fnir_fall}


if __name__ == "__main__":
    raise SystemExit(main())
