"""How much the box adapts: a population whose strangers sit as far below the calibrated threshold as the model's
native one stays unadapted; a compressed one (strangers close to the threshold) is whitened; each with its reason."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from vision.population import PopulationStats, WhiteningConfig
from vision.population_choice import ChoiceConfig, choose_transform, stranger_pairs

MODEL = "dlib_resnet_v1_flip"
FloatArray = npt.NDArray[np.float64]


def population(n: int, offset: float, d: int = 32, seed: int = 0) -> FloatArray:
    """Unit vectors around a common direction; a larger ``offset`` packs the strangers closer together."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.linspace(1.5, 0.5, d)
    x[:, 0] += offset
    out: FloatArray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def test_the_stranger_pair_scores_estimated_from_the_aggregates_match_the_counted_ones() -> None:
    # given the aggregates of one sample and two other samples of the same population
    stats = PopulationStats.of(MODEL, population(4000, offset=6.0))
    a, b = population(3000, offset=6.0, seed=1), population(3000, offset=6.0, seed=2)
    counted = (a * b).sum(axis=1)  # 3000 independent stranger pairs
    # when the pair score distribution is estimated from mean and covariance alone
    pairs = stranger_pairs(stats, threshold=float(np.quantile(counted, 0.99)))
    # then its mean and spread are the counted ones, and the tail estimate is of the right order
    assert pairs.mean == pytest.approx(float(counted.mean()), abs=0.1 * float(counted.std()))
    assert pairs.sd == pytest.approx(float(counted.std()), rel=0.1)
    assert 0.002 < pairs.rate < 0.05


def test_a_population_whose_strangers_sit_far_below_the_threshold_stays_unadapted_with_the_reason() -> None:
    stats = PopulationStats.of(MODEL, population(2000, offset=3.0))
    choice = choose_transform(stats, WhiteningConfig(), threshold=0.95, config=ChoiceConfig(min_pair_rate=1e-3))
    assert choice.branch == "unadapted" and not choice.whitening.adapted
    assert choice.pairs is not None and choice.pairs.rate < 1e-3
    assert "native" in choice.reason and choice.whitening.reason == choice.reason


def test_a_population_whose_strangers_crowd_the_threshold_is_whitened() -> None:
    stats = PopulationStats.of(MODEL, population(2000, offset=12.0))
    choice = choose_transform(stats, WhiteningConfig(shrinkage=0.8), threshold=0.95,
                              config=ChoiceConfig(min_pair_rate=1e-3))
    assert choice.branch == "whiten" and choice.whitening.adapted and choice.whitening.shrinkage == 0.8
    assert choice.pairs is not None and choice.pairs.rate >= 1e-3
    assert "departs" in choice.reason


def test_centring_only_is_named_as_such() -> None:
    stats = PopulationStats.of(MODEL, population(2000, offset=12.0))
    choice = choose_transform(stats, WhiteningConfig(shrinkage=1.0), threshold=0.95,
                              config=ChoiceConfig(min_pair_rate=1e-3))
    assert choice.branch == "centre" and choice.whitening.adapted


def test_too_few_faces_stay_unadapted_before_any_estimate() -> None:
    stats = PopulationStats.of(MODEL, population(100, offset=12.0))
    choice = choose_transform(stats, WhiteningConfig(min_faces=256), threshold=0.95)
    assert choice.branch == "unadapted" and choice.pairs is None and "too few faces" in choice.reason


@pytest.mark.parametrize("rate", [0.0, -1.0, 1.5])
def test_an_impossible_cutoff_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="min_pair_rate"):
        ChoiceConfig(min_pair_rate=rate)
