"""Whether a fitted population transform may be used, and the score map that keeps the calibrated threshold.

A box fits its transform without labels, but its voter threshold was calibrated on unadapted scores. Whitening
moves every score (strangers and genuine visitors alike score lower), so the threshold would not mean the same
thing after it. The guard therefore measures, from the aggregates and the enrolled templates only, how the
transform moves the stranger-vs-template score distribution, and maps adapted scores back onto the unadapted
scale:

- A stranger's score against template ``g`` is ``g . x`` unadapted: its mean ``g . m`` and variance ``g' C g``
  follow exactly from the population's mean ``m`` and covariance ``C``. Adapted, it is ``h . y / |y|`` with
  ``y = W (x - m)`` and ``h`` the adapted template; ``|y|`` is taken at its root mean square, so the mean is 0
  and the variance ``h' W C W' h / tr(W C W')``.
- :func:`score_map`: one affine map ``a + b s`` for the whole gallery that gives the adapted stranger scores the
  pooled mean and spread of the unadapted ones. Scores after it are on the calibrated scale; the voter keeps its
  threshold and margin.
- :func:`check_transform` refuses (the box stays unadapted, with the reason) when there are no templates to
  measure against, when the stranger match rate at the calibrated threshold, estimated with a normal tail per
  template, would rise above ``max_fpir_ratio`` times the unadapted estimate, or when two enrolled persons'
  templates that are apart at the threshold would score above it against each other.

The normal tail compares the two spaces on the same footing rather than promising a rate, and on real faces it
is not a good estimate of either (``python -m bench.face_adapt_guard``, at the threshold 0.9585): it overstates the
unadapted level (East-Asian: estimated 0.49 of stranger searches over the threshold, counted 0.145; LFW 0.050
against 0.000), and it misses the rise the score map brings, because the map keeps the pooled mean and spread of
stranger scores but not their tail (East-Asian counted 0.145 -> 0.393 where the estimate fell, 0.489 -> 0.463;
LFW counted 0.000 -> 0.177). That is why ``face.adaptation.apply`` stays off by default. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vision.errors import PopulationInputError
from vision.population import PopulationStats, Whitening

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ScoreMap:
    """``calibrated = offset + scale * adapted``; the identity map is (0, 1)."""

    offset: float = 0.0
    scale: float = 1.0

    def __call__(self, score: float) -> float:
        return self.offset + self.scale * score


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """What the guard tolerates."""

    max_fpir_ratio: float = 1.0  # estimated stranger match rate after / before, at the calibrated threshold

    def __post_init__(self) -> None:
        if not self.max_fpir_ratio > 0:
            raise ValueError(f"max_fpir_ratio must be > 0, got {self.max_fpir_ratio}")


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """The guard's answer: ``accepted`` with the score map, or refused with the ``reason``."""

    accepted: bool
    reason: str | None
    score_map: ScoreMap
    fpir_before: float | None = None  # estimated stranger match rate at the threshold, unadapted
    fpir_after: float | None = None  # the same, adapted and mapped


def _normal_tail(z: FloatArray) -> FloatArray:
    out: FloatArray = np.array([0.5 * math.erfc(float(v) / math.sqrt(2.0)) for v in z.ravel()]).reshape(z.shape)
    return out


def _fpir(threshold: float, means: FloatArray, sds: FloatArray) -> float:
    """P(a stranger scores >= threshold against at least one template), templates taken as independent."""
    tails = _normal_tail((threshold - means) / np.maximum(sds, 1e-12))
    return float(1.0 - np.prod(1.0 - tails))


def _moments(stats: PopulationStats, whitening: Whitening,
             templates: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per template: stranger score mean and sd unadapted, then adapted (before any score map)."""
    cov = stats.covariance()
    raw_means = templates @ stats.mean
    raw_sds = np.sqrt(np.maximum(np.einsum("id,de,ie->i", templates, cov, templates), 0.0))
    if whitening.mean is None or whitening.matrix is None:
        return raw_means, raw_sds, raw_means, raw_sds
    adapted = whitening.apply(stats.model_id, templates).astype(np.float64)
    cov_y = whitening.matrix @ cov @ whitening.matrix.T
    rms = math.sqrt(max(float(np.trace(cov_y)), 1e-24))
    ad_sds = np.sqrt(np.maximum(np.einsum("id,de,ie->i", adapted, cov_y, adapted), 0.0)) / rms
    return raw_means, raw_sds, np.zeros_like(raw_means), ad_sds


def _pooled(means: FloatArray, sds: FloatArray) -> tuple[float, float]:
    mean = float(means.mean())
    return mean, math.sqrt(float((sds ** 2 + (means - mean) ** 2).mean()))


def score_map(stats: PopulationStats, whitening: Whitening, templates: npt.ArrayLike) -> ScoreMap:
    """The affine map that puts ``whitening``'s scores on the unadapted scale (identity when not adapted)."""
    arr = _templates(stats, templates)
    if not whitening.adapted or arr.shape[0] == 0:
        return ScoreMap()
    raw_means, raw_sds, ad_means, ad_sds = _moments(stats, whitening, arr)
    raw_mu, raw_sd = _pooled(raw_means, raw_sds)
    ad_mu, ad_sd = _pooled(ad_means, ad_sds)
    scale = raw_sd / max(ad_sd, 1e-12)
    return ScoreMap(raw_mu - scale * ad_mu, scale)


def _templates(stats: PopulationStats, templates: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(templates, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != stats.dim:
        raise PopulationInputError(f"templates must have shape (N, {stats.dim}), got {arr.shape}")
    return arr


def check_transform(stats: PopulationStats, whitening: Whitening, templates: npt.ArrayLike,
                    owners: list[str], threshold: float, config: GuardConfig = GuardConfig()) -> GuardVerdict:
    """Whether ``whitening`` (fitted from ``stats``) may replace the unadapted space for this gallery.

    ``templates`` (N, d) are the enrolled vectors, unadapted, and ``owners`` the person of each row;
    ``threshold`` is the voter's calibrated threshold.
    """
    if not whitening.adapted:
        return GuardVerdict(False, whitening.reason, ScoreMap())
    arr = _templates(stats, templates)
    if len(owners) != arr.shape[0]:
        raise PopulationInputError(f"{len(owners)} owners for {arr.shape[0]} templates")
    if arr.shape[0] == 0:
        return GuardVerdict(False, "no enrolled templates to measure the operating point against", ScoreMap())
    mapping = score_map(stats, whitening, arr)
    raw_means, raw_sds, ad_means, ad_sds = _moments(stats, whitening, arr)
    before = _fpir(threshold, raw_means, raw_sds)
    after = _fpir(threshold, mapping.offset + mapping.scale * ad_means, mapping.scale * ad_sds)
    if after > before * config.max_fpir_ratio + 1e-12:
        return GuardVerdict(False, f"the estimated stranger match rate at the threshold {threshold:.4f} would rise "
                            f"from {before:.2e} to {after:.2e} (more than x{config.max_fpir_ratio:g})",
                            mapping, before, after)
    collision = _collision(stats, whitening, arr, owners, threshold, mapping)
    if collision is not None:
        return GuardVerdict(False, collision, mapping, before, after)
    return GuardVerdict(True, None, mapping, before, after)


def _collision(stats: PopulationStats, whitening: Whitening, templates: FloatArray, owners: list[str],
               threshold: float, mapping: ScoreMap) -> str | None:
    """Two persons' templates below the threshold unadapted that reach it adapted, if any (one is named)."""
    raw = templates @ templates.T
    adapted = whitening.apply(stats.model_id, templates).astype(np.float64)
    mapped = mapping.offset + mapping.scale * (adapted @ adapted.T)
    labels = np.asarray(owners, dtype=object)
    hits = np.argwhere(np.triu(labels[:, None] != labels[None, :], k=1) & (raw < threshold) & (mapped >= threshold))
    if hits.shape[0] == 0:
        return None
    i, j = (int(v) for v in hits[0])
    return (f"the templates of two enrolled persons would match each other at the threshold "
            f"{threshold:.4f} ({raw[i, j]:.4f} unadapted, {mapped[i, j]:.4f} adapted)")
