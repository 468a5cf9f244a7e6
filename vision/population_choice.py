"""How much to adapt: the same label-free decision at the box and in ``smartbranch eval faces --adapt``.

Whitening with the population's covariance helps when that covariance is mostly variation the model does not use
to tell people apart: on a population the model knows poorly its strangers are packed together (genuine and
impostor scores close), and the dominant directions are shared by everyone. On the model's native population the
same directions carry identity, and whitening them away costs accuracy and open-set search (on LFW, FNIR@FPIR 1e-2
rose from 0.18 to 0.28). How far a population departs from the native geometry is read from the aggregates alone,
at the box's calibrated threshold ``T``:

- Two strangers ``x``, ``y`` drawn from a population of mean ``m`` and covariance ``C`` score ``s = x . y`` with
  mean ``m . m`` and variance ``tr(C^2) + 2 m' C m`` (exact for independent draws, whatever the distribution).
- The estimated **stranger-pair match rate** is the normal tail of ``s`` above ``T``: how often two strangers of
  this population would be taken for one person at the box's own threshold.
- Below ``min_pair_rate`` the population sits like the model's native one: the box stays unadapted (adapting
  could only move the calibrated operating point). At or above it, the shrunk whitening is used (centring only
  when the shrinkage is 1).

The normal tail overstates the counted rate on real faces (real stranger tails at the threshold are lighter); the
cutoff is therefore a level on this estimate's own scale, chosen on development halves of two labelled sets and
confirmed on the other halves (``python -m bench.face_adapt_guard``), not a promised rate. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vision.population import PopulationStats, Whitening, WhiteningConfig, fit_whitening

# Chosen by python -m bench.face_adapt_guard on the development halves (see the README's population adaptation).
DEFAULT_MIN_PAIR_RATE = 3e-3


@dataclass(frozen=True, slots=True)
class ChoiceConfig:
    """The stranger-pair match rate at the threshold from which a population counts as departing."""

    min_pair_rate: float = DEFAULT_MIN_PAIR_RATE

    def __post_init__(self) -> None:
        if not 0.0 < self.min_pair_rate < 1.0:
            raise ValueError(f"min_pair_rate must be in (0, 1), got {self.min_pair_rate}")


@dataclass(frozen=True, slots=True)
class StrangerPairs:
    """The score of two strangers of a population, estimated from its aggregates, at a threshold."""

    threshold: float
    mean: float
    sd: float
    rate: float  # normal tail above the threshold

    def to_json(self) -> dict[str, float]:
        return {"threshold": self.threshold, "pair_mean": self.mean, "pair_sd": self.sd, "pair_rate": self.rate}


@dataclass(frozen=True, slots=True)
class AdaptationChoice:
    """The branch taken (``unadapted``, ``centre`` or ``whiten``), why, and the transform to use."""

    branch: str
    reason: str
    whitening: Whitening  # the identity (with ``reason``) when unadapted
    pairs: StrangerPairs | None  # None when no transform could be fitted at all
    min_pair_rate: float

    def to_json(self) -> dict[str, object]:
        return {"branch": self.branch, "reason": self.reason, "min_pair_rate": self.min_pair_rate,
                **(self.pairs.to_json() if self.pairs is not None else {})}


def stranger_pairs(stats: PopulationStats, threshold: float) -> StrangerPairs:
    """Mean, spread and normal tail above ``threshold`` of the score of two strangers of ``stats``' population."""
    cov = stats.covariance()
    m = stats.mean
    mean = float(m @ m)
    sd = math.sqrt(max(float(np.sum(cov * cov)) + 2.0 * float(m @ cov @ m), 1e-24))
    rate = 0.5 * math.erfc((threshold - mean) / sd / math.sqrt(2.0))
    return StrangerPairs(float(threshold), mean, sd, rate)


def choose_transform(stats: PopulationStats, whitening: WhiteningConfig, *, threshold: float,
                     config: ChoiceConfig = ChoiceConfig(), version: int = 1) -> AdaptationChoice:
    """Fit ``stats``' transform and decide whether to use it, from the aggregates and the calibrated threshold."""
    fitted = fit_whitening(stats, whitening, version=version)
    if not fitted.adapted:
        reason = fitted.reason or "not fitted"
        return AdaptationChoice("unadapted", reason, fitted, None, config.min_pair_rate)
    pairs = stranger_pairs(stats, threshold)
    if pairs.rate < config.min_pair_rate:
        reason = (f"the population sits like the model's native one: two strangers would match at the threshold "
                  f"{threshold:.4f} at an estimated rate {pairs.rate:.2e} < {config.min_pair_rate:.0e} "
                  f"(pair score {pairs.mean:.3f} ± {pairs.sd:.3f}); adapting could only move the operating point")
        identity = Whitening.identity(stats.model_id, stats.dim, reason, count=stats.count)
        return AdaptationChoice("unadapted", reason, identity, pairs, config.min_pair_rate)
    branch = "centre" if fitted.shrinkage >= 1.0 else "whiten"
    reason = (f"the population departs from the model's native geometry: two strangers would match at the "
              f"threshold {threshold:.4f} at an estimated rate {pairs.rate:.2e} >= {config.min_pair_rate:.0e} "
              f"(pair score {pairs.mean:.3f} ± {pairs.sd:.3f})")
    return AdaptationChoice(branch, reason, fitted, pairs, config.min_pair_rate)
