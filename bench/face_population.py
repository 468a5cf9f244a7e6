"""Choose the whitening shrinkage of the population transform on one half of a labelled set's
identities and confirm it on the other half.

    python -m bench.face_population --root ../shared/data/faces/east_asian \\
        --pairs ../shared/data/faces/east_asian/pairs.csv --manifest ../shared/data/faces/east_asian/manifest.csv \\
        --splits 10 --json population.json --cache ~/.cache/smartbranch/eval --workers 1

Each split cuts the identities in two halves with its own seed: a **dev** half and a **confirm** half.
In each half the transform is fitted on that half's photos only (labels unused), and the half's own
pairs (both photos inside it) and open-set searches are scored with and without it.

- The criterion, on the dev halves: the mean over splits of the change in 10-fold pair accuracy, the
  figure the targets of ``eval faces --adapt`` are stated in. Ties go to the larger shrinkage (the
  smaller change). TAR at FAR 1e-2 and FNIR at FPIR 1e-2 are reported beside it; a half may hold
  too few negatives to resolve them, and such splits are left out of their means.
- Confirmation: the same changes on the confirm halves at the chosen shrinkage, and, per split, the
  shrinkage that split's dev half alone would choose, scored on its confirm half (nested: nothing
  about the confirm half is used to choose).

Half a set is a smaller population than a branch sees, so the noise of a fitted covariance weighs
more here than at a box; that favours more shrinkage, never less.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import write_json
from edge.evaluation.eval_faces import EvalInput, load_inputs, positive_int
from edge.evaluation.face_adapt import adapt, fit
from edge.evaluation.face_data import Embeddings, embed_images
from edge.evaluation.face_protocol import SetReport, evaluate_set, json_safe
from vision.engines.base import DlibEngineConfig
from vision.engines.registry import build_engine
from vision.population import WhiteningConfig

logger = logging.getLogger(__name__)

GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True, slots=True)
class Change:
    """Points gained in accuracy, TAR@FAR 1e-2 and lost in FNIR@FPIR 1e-2 (positive = better)."""

    accuracy: float
    tar: float
    fnir: float


def _change(before: SetReport, after: SetReport) -> Change:
    return Change(100 * (after.accuracy - before.accuracy), 100 * (after.tar[0].rate - before.tar[0].rate),
                  100 * (before.fnir[0].rate - after.fnir[0].rate))


def half_changes(data: EvalInput, emb: Embeddings, model_id: str, names: set[str],
                 grid: tuple[float, ...]) -> list[Change]:
    """The changes of every shrinkage in ``grid`` on the half of the set whose identities are ``names``."""
    files = [f for f in data.open_files if data.identity[f] in names]
    inside = np.array([i for i, (a, b) in enumerate(zip(data.pairs.left, data.pairs.right, strict=True))
                       if data.identity.get(a) in names and data.identity.get(b) in names], np.int64)
    pairs = data.pairs.subset(inside)
    outside = set(emb.files) - set(files) - set(pairs.files)
    before = evaluate_set(emb, pairs, files, data.identity, seed=0, folds=10, use_singletons=True)
    out = []
    for shrinkage in grid:
        transform = fit(emb, model_id, WhiteningConfig(shrinkage=shrinkage, min_faces=2), exclude=outside)
        if not transform.adapted:  # a degenerate covariance (no shrinkage): the guard falls back
            logger.warning("shrinkage %s: %s", shrinkage, transform.reason)
            out.append(Change(np.nan, np.nan, np.nan))
            continue
        after = evaluate_set(adapt(emb, transform, model_id), pairs, files, data.identity, seed=0, folds=10,
                             use_singletons=True)
        out.append(_change(before, after))
    return out


def _mean(changes: list[Change]) -> Change:
    """Means over the splits where a figure was resolved (a half may hold too few negatives for 1e-2)."""
    def mean(key: str) -> float:
        values = [getattr(c, key) for c in changes if np.isfinite(getattr(c, key))]
        return float(np.mean(values)) if values else float("nan")
    return Change(mean("accuracy"), mean("tar"), mean("fnir"))


def _best(changes: list[Change], grid: tuple[float, ...]) -> int:
    """The shrinkage with the largest accuracy change (ties: the larger shrinkage); a fallback never wins."""
    def key(i: int) -> tuple[float, float]:
        gain = changes[i].accuracy
        return (round(gain, 9) if np.isfinite(gain) else -np.inf, grid[i])
    return max(range(len(grid)), key=key)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--pairs", type=Path, required=True)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--splits", type=positive_int, default=10)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--workers", type=positive_int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    data = load_inputs(args.root, args.pairs, args.manifest, "identity", None, None, 0)
    config = DlibEngineConfig()
    engine = build_engine(config)
    files = sorted(set(data.pairs.files) | set(data.open_files))
    emb = embed_images(data.root, files, config, engine=engine, workers=args.workers, desc="embedding",
                       cache=args.cache)
    names = sorted({data.identity[f] for f in data.open_files})
    dev: list[list[Change]] = []
    confirm: list[list[Change]] = []
    for split in range(args.splits):
        order = np.random.default_rng(1000 + split).permutation(len(names))
        half = len(names) // 2
        dev.append(half_changes(data, emb, engine.model_id, {names[i] for i in order[:half]}, GRID))
        confirm.append(half_changes(data, emb, engine.model_id, {names[i] for i in order[half:]}, GRID))
    dev_mean = [_mean([d[i] for d in dev]) for i in range(len(GRID))]
    confirm_mean = [_mean([c[i] for c in confirm]) for i in range(len(GRID))]
    chosen = _best(dev_mean, GRID)
    nested = [confirm[s][_best(dev[s], GRID)] for s in range(args.splits)]
    print(f"{'shrinkage':>9}  {'dev: acc':>9} {'TAR':>6} {'-FNIR':>6}  {'confirm: acc':>12} {'TAR':>6} {'-FNIR':>6}"
          "   (mean change in points over the splits; positive = better; -FNIR = fall of FNIR)")
    for i, shrinkage in enumerate(GRID):
        d, c = dev_mean[i], confirm_mean[i]
        if not np.isfinite(d.accuracy):
            print(f"{shrinkage:>9.1f}  the guard refused the fit in every half (degenerate covariance): unadapted")
            continue
        mark = "  <- chosen on dev" if i == chosen else ""
        print(f"{shrinkage:>9.1f}  {d.accuracy:>+9.2f} {d.tar:>+6.2f} {d.fnir:>+6.2f}  {c.accuracy:>+12.2f} "
              f"{c.tar:>+6.2f} {c.fnir:>+6.2f}{mark}")
    n = _mean(nested)
    print(f"nested (each split's own dev choice, scored on its confirm half): accuracy {n.accuracy:+.2f}, "
          f"TAR@FAR 1e-2 {n.tar:+.2f}, FNIR@FPIR 1e-2 {-n.fnir:+.2f} points; choices "
          f"{[GRID[_best(d, GRID)] for d in dev]}")
    write_json(args.json, json_safe({
        "grid": list(GRID), "splits": args.splits, "chosen_shrinkage": GRID[chosen],
        "dev": [vars_of(c) for c in dev_mean], "confirm": [vars_of(c) for c in confirm_mean],
        "nested": {"mean": vars_of(n), "choices": [GRID[_best(d, GRID)] for d in dev]},
    }))  # type: ignore[arg-type]
    return 0


def vars_of(change: Change) -> dict[str, float]:
    return {"accuracy_points": change.accuracy, "tar_at_far_1e-2_points": change.tar,
            "fnir_at_fpir_1e-2_fall_points": change.fnir}


if __name__ == "__main__":
    raise SystemExit(main())
