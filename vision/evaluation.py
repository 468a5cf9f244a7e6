"""Face-recognition metrics on score arrays: verification (k-fold accuracy, ROC, TAR@FAR) and open-set
identification (FNIR@FPIR, NIST FRVT 1:N). Pure numpy, no I/O.

Conventions
- A score is a similarity: higher means more alike, and a pair or a search is accepted when
  ``score >= threshold``.
- ``-inf`` means "no comparison was possible" (no face found, failure to enrol): it is never
  accepted at any finite threshold, so it counts as a non-match, never as a dropped sample.
  NaN scores are refused.
- A rate that the data cannot resolve is NaN, never an extrapolation. A false-accept target
  ``f`` over ``N`` negatives is resolved only when ``f * N >= 1``, i.e. when at least one false
  accept is allowed. ``1 / N`` is reported as the resolution, together with the exact one-sided
  95 % upper confidence bound of the rate that was measured.
- Empty inputs give NaN results (and ``n_* = 0``), not exceptions; malformed inputs (shapes that
  disagree, labels other than 0/1) raise ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NAN = float("nan")


def _scores(scores: npt.ArrayLike, name: str = "scores") -> FloatArray:
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if np.isnan(arr).any():
        raise ValueError(f"{name} contain NaN; use -inf for a failed comparison")
    return arr


def _labels(labels: npt.ArrayLike, n: int) -> BoolArray:
    arr = np.asarray(labels).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{arr.shape[0]} labels for {n} scores")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError("labels must be 0 (different) or 1 (same)")
    return arr.astype(bool)


def upper_bound_95(errors: int, trials: int) -> float:
    """Exact (Clopper-Pearson) one-sided 95 % upper bound of a rate seen ``errors`` times in ``trials``."""
    if trials <= 0:
        return NAN
    if errors >= trials:
        return 1.0

    def cdf(p: float) -> float:  # P(X <= errors) for X ~ Binomial(trials, p)
        total = 0.0
        for k in range(errors + 1):
            log_term = (math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
                        + k * math.log(p) + (trials - k) * math.log1p(-p))
            total += math.exp(log_term)
        return total

    lo, hi = 0.0, 1.0
    for _ in range(60):  # bisection: cdf falls as p rises
        mid = (lo + hi) / 2
        if cdf(mid) > 0.05:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """The lowest threshold whose measured false rate is at most ``target``, and the rate there.

    ``rate`` is TAR (verification) or FNIR (open set); ``achieved`` is the measured FAR or FPIR.
    When the target is below the resolution (``target * n_negatives < 1``) or a class is empty,
    ``resolved`` is False and ``threshold``, ``rate`` and ``achieved`` are NaN.
    """

    target: float
    threshold: float
    rate: float
    achieved: float
    false_accepts: int
    n_negatives: int
    n_positives: int
    resolution: float
    upper95: float
    resolved: bool


def allowed_false_accepts(target: float, n_negatives: int) -> int:
    """How many false accepts a rate of ``target`` allows among ``n_negatives`` (0 when unresolved)."""
    return math.floor(target * n_negatives + 1e-9) if n_negatives > 0 else 0


def threshold_for_false_rate(negatives: npt.ArrayLike, target: float) -> float:
    """The lowest threshold at which at most ``floor(target * N)`` negatives score ``>= threshold``.

    NaN when ``target * N < 1``. ``-inf`` when fewer negatives than allowed were comparable at all.
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target rate must be in (0, 1], got {target}")
    neg = np.sort(_scores(negatives, "negatives"))[::-1]
    allowed = allowed_false_accepts(target, neg.size)
    if allowed < 1:
        return NAN
    if allowed >= neg.size or not np.isfinite(neg[allowed]):
        return float("-inf")
    return float(np.nextafter(neg[allowed], np.inf))


def _accepted(scores: FloatArray, threshold: float) -> BoolArray:
    accepted: BoolArray = np.isfinite(scores) & (scores >= threshold)
    return accepted


def operating_point(positives: npt.ArrayLike, negatives: npt.ArrayLike, target: float,
                    *, positive_rate_is_miss: bool = False) -> OperatingPoint:
    """Accept rate of ``positives`` (or their miss rate) at the threshold for a ``target`` false rate."""
    pos = _scores(positives, "positives")
    neg = _scores(negatives, "negatives")
    threshold = threshold_for_false_rate(neg, target)
    resolution = 1.0 / neg.size if neg.size else NAN
    if math.isnan(threshold) or pos.size == 0:
        return OperatingPoint(target, NAN, NAN, NAN, 0, int(neg.size), int(pos.size), resolution, NAN, False)
    false_accepts = int(_accepted(neg, threshold).sum())
    accept = float(_accepted(pos, threshold).mean())
    return OperatingPoint(target, threshold, 1.0 - accept if positive_rate_is_miss else accept,
                          false_accepts / neg.size, false_accepts, int(neg.size), int(pos.size), resolution,
                          upper_bound_95(false_accepts, int(neg.size)), True)


# ----------------------------------------------------------------------------------------- verification


def best_threshold(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[float, float]:
    """(threshold, accuracy) that maximises accuracy of ``score >= threshold`` predicting same.

    Candidates sit between consecutive distinct finite scores (and below the lowest, above the
    highest); the first best one, in ascending order, wins. NaN, NaN for empty input.
    """
    s = _scores(scores)
    same = _labels(labels, s.size)
    if s.size == 0:
        return NAN, NAN
    finite = np.unique(s[np.isfinite(s)])
    if finite.size == 0:
        return float("inf"), float((~same).mean())
    mids = (finite[:-1] + finite[1:]) / 2
    candidates = np.concatenate([[finite[0]], mids, [np.nextafter(finite[-1], np.inf)]])
    acc = _sweep_accuracy(s, same, candidates)
    best = int(np.argmax(acc))
    return float(candidates[best]), float(acc[best])


def _sweep_accuracy(s: FloatArray, same: BoolArray, candidates: FloatArray) -> FloatArray:
    """Accuracy at each ascending candidate threshold, in O(n log n)."""
    finite = np.isfinite(s)
    gen = np.sort(s[finite & same])
    imp = np.sort(s[finite & ~same])
    n_gen_total = int(same.sum())
    n_imp_total = int((~same).sum())
    gen_accepted = gen.size - np.searchsorted(gen, candidates, side="left")
    imp_accepted = imp.size - np.searchsorted(imp, candidates, side="left")
    correct = gen_accepted + (n_imp_total - imp_accepted)
    out: FloatArray = correct / float(n_gen_total + n_imp_total)
    return out


@dataclass(frozen=True, slots=True)
class KFoldAccuracy:
    """Cross-validated verification accuracy: the threshold is chosen on the other folds."""

    mean: float
    std: float
    fold_accuracy: tuple[float, ...]
    fold_threshold: tuple[float, ...]
    n_folds: int
    n_pairs: int


def fold_ids(n: int, k: int = 10, seed: int = 0) -> IntArray:
    """Fold index per pair: ``min(k, n)`` folds over a permutation drawn with ``seed``."""
    if n == 0:
        return np.zeros(0, np.int64)
    k = max(1, min(k, n))
    order = np.random.default_rng(seed).permutation(n)
    folds = np.empty(n, np.int64)
    for i, part in enumerate(np.array_split(order, k)):
        folds[part] = i
    return folds


def kfold_accuracy(scores: npt.ArrayLike, labels: npt.ArrayLike, *, folds: npt.ArrayLike | None = None,
                   k: int = 10, seed: int = 0) -> KFoldAccuracy:
    """Mean and (population) std of held-out fold accuracy.

    ``folds`` gives each pair's fold (LFW's 10 folds); without it, ``k`` folds are drawn over the
    shuffled pairs with ``seed``. Fewer than two folds cannot cross-validate: NaN.
    """
    s = _scores(scores)
    f = fold_ids(s.size, k, seed) if folds is None else np.asarray(folds).reshape(-1)
    return kfold_accuracy_per_fold(np.broadcast_to(s, (max(np.unique(f).size, 1), s.size)), labels, f)


def kfold_accuracy_per_fold(scores_by_fold: npt.ArrayLike, labels: npt.ArrayLike,
                            folds: npt.ArrayLike) -> KFoldAccuracy:
    """k-fold accuracy where each held-out fold comes with its own scores of every pair.

    Row ``j`` of the (F, N) ``scores_by_fold`` holds the scores made for the ``j``-th fold id in
    ascending order, by something fitted without that fold (a population transform, say): the
    threshold is chosen on row ``j``'s other folds and applied to its own fold.
    """
    rows = np.asarray(scores_by_fold, dtype=np.float64)
    f = np.asarray(folds).reshape(-1)
    if rows.ndim != 2 or rows.shape[1] != f.size:
        raise ValueError(f"{f.size} fold ids for scores of shape {rows.shape}")
    ids = np.unique(f)
    same = _labels(labels, f.size)
    if ids.size < 2:
        return KFoldAccuracy(NAN, NAN, (), (), 0, int(f.size))
    if rows.shape[0] != ids.size:
        raise ValueError(f"{rows.shape[0]} rows of scores for {ids.size} folds")
    accs: list[float] = []
    thresholds: list[float] = []
    for row, fold in zip(rows, ids, strict=True):
        s = _scores(row)
        test = f == fold
        threshold, _ = best_threshold(s[~test], same[~test])
        accs.append(float((_accepted(s[test], threshold) == same[test]).mean()))
        thresholds.append(threshold)
    return KFoldAccuracy(float(np.mean(accs)), float(np.std(accs)), tuple(accs), tuple(thresholds),
                         int(ids.size), int(f.size))


@dataclass(frozen=True, slots=True)
class RocCurve:
    """FAR and TAR at each threshold, thresholds descending (the first, +inf, accepts nothing)."""

    threshold: FloatArray
    far: FloatArray
    tar: FloatArray
    n_genuine: int
    n_impostor: int


def _accept_rates(values: FloatArray, thresholds: FloatArray) -> FloatArray:
    if values.size == 0:
        return np.full(thresholds.shape, np.nan)
    ordered = np.sort(values[np.isfinite(values)])
    accepted = ordered.size - np.searchsorted(ordered, thresholds, side="left")
    out: FloatArray = accepted / float(values.size)
    return out


def roc_curve(scores: npt.ArrayLike, labels: npt.ArrayLike) -> RocCurve:
    s = _scores(scores)
    same = _labels(labels, s.size)
    finite = np.unique(s[np.isfinite(s)])[::-1]
    thresholds = np.concatenate([[np.inf], finite]).astype(np.float64)
    return RocCurve(thresholds, _accept_rates(s[~same], thresholds), _accept_rates(s[same], thresholds),
                    int(same.sum()), int((~same).sum()))


def tar_at_far(scores: npt.ArrayLike, labels: npt.ArrayLike, far: float) -> OperatingPoint:
    s = _scores(scores)
    same = _labels(labels, s.size)
    return operating_point(s[same], s[~same], far)


# ----------------------------------------------------------------------------------------- open set


@dataclass(frozen=True, slots=True)
class OpenSetScores:
    """Per mated search: the correct template's score when it is strictly rank 1, else -inf.
    Per non-mated search: the top score over the gallery (-inf when nothing could be compared)."""

    mated_hit: FloatArray
    nonmated_top: FloatArray

    @property
    def rank1_hit_rate(self) -> float:
        """Closed-set rank-1 identification rate of the mated searches (no threshold)."""
        return float(np.isfinite(self.mated_hit).mean()) if self.mated_hit.size else NAN


def _matrix(scores: npt.ArrayLike, columns: int | None, name: str) -> FloatArray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2 or (columns is not None and arr.shape[1] != columns):
        raise ValueError(f"{name} must have shape (N, {columns if columns is not None else 'G'}), got {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contain NaN; use -inf for a failed comparison")
    return arr


def open_set_scores(mated: npt.ArrayLike, mated_truth: npt.ArrayLike, nonmated: npt.ArrayLike) -> OpenSetScores:
    """Reduce search score matrices (probes x gallery templates, one template per identity).

    ``mated_truth[i]`` is the gallery column of mated probe ``i``'s identity. A probe whose face
    was not found has a row of -inf; a template that failed to enrol has a column of -inf. A mated
    search hits only when its correct template scores strictly above every other template.
    """
    m = _matrix(mated, None, "mated scores")
    g = m.shape[1]
    n = _matrix(nonmated, g, "non-mated scores") if np.asarray(nonmated).size else np.zeros((0, g))
    truth = np.asarray(mated_truth, np.int64).reshape(-1)
    if truth.shape[0] != m.shape[0]:
        raise ValueError(f"{truth.shape[0]} mated identities for {m.shape[0]} mated searches")
    if truth.size and (truth.min() < 0 or truth.max() >= g):
        raise ValueError(f"mated identities must index the {g} gallery templates")
    rows = np.arange(m.shape[0])
    correct = m[rows, truth] if m.shape[0] else np.zeros(0)
    others = m.copy()
    if m.shape[0]:
        others[rows, truth] = -np.inf
    best_other = others.max(axis=1) if g > 1 else np.full(m.shape[0], -np.inf)
    hit = np.where(np.isfinite(correct) & (correct > best_other), correct, -np.inf)
    top = n.max(axis=1) if g > 0 else np.full(n.shape[0], -np.inf)
    return OpenSetScores(hit.astype(np.float64), top.astype(np.float64))


def fnir_at_fpir(scores: OpenSetScores, fpir: float) -> OperatingPoint:
    """FNIR at the lowest threshold whose FPIR (non-mated searches with top score >= t) <= ``fpir``."""
    return operating_point(scores.mated_hit, scores.nonmated_top, fpir, positive_rate_is_miss=True)


@dataclass(frozen=True, slots=True)
class DetCurve:
    """FPIR and FNIR at each threshold, thresholds descending."""

    threshold: FloatArray
    fpir: FloatArray
    fnir: FloatArray


def det_curve(scores: OpenSetScores) -> DetCurve:
    both = np.concatenate([scores.mated_hit, scores.nonmated_top])
    thresholds = np.concatenate([[np.inf], np.unique(both[np.isfinite(both)])[::-1]]).astype(np.float64)
    return DetCurve(thresholds, _accept_rates(scores.nonmated_top, thresholds),
                    1.0 - _accept_rates(scores.mated_hit, thresholds))
