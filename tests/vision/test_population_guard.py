"""The adaptation guard: the score map keeps strangers' scores on the calibrated scale, and a transform that
would move the operating point (more strangers over the threshold, two enrolled persons colliding) is refused."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from vision.errors import PopulationInputError
from vision.population import PopulationStats, Whitening, WhiteningConfig, fit_whitening
from vision.population_guard import GuardConfig, ScoreMap, check_transform, score_map

MODEL = "dlib_resnet_v1_flip"
FloatArray = npt.NDArray[np.float64]


def population(n: int, d: int = 16, seed: int = 0) -> FloatArray:
    """Unit vectors around a common offset with a few dominant directions, like a face population."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.linspace(3.0, 0.3, d) + 0.5
    out: FloatArray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def fitted(n: int = 4000, seed: int = 0) -> tuple[PopulationStats, Whitening]:
    stats = PopulationStats.of(MODEL, population(n, seed=seed))
    return stats, fit_whitening(stats, WhiteningConfig(shrinkage=0.5, min_faces=256))


def test_the_score_map_gives_adapted_stranger_scores_the_unadapted_mean_and_spread() -> None:
    # given a transform fitted on one sample, templates and strangers drawn from the same population
    stats, whitening = fitted()
    templates = population(5, seed=1)
    strangers = population(20000, seed=2)
    # when strangers are scored against the templates unadapted, and adapted then mapped
    mapping = score_map(stats, whitening, templates)
    raw = strangers @ templates.T
    adapted = whitening.apply(MODEL, strangers).astype(np.float64) @ whitening.apply(MODEL, templates).T.astype(
        np.float64)
    mapped = mapping.offset + mapping.scale * adapted
    # then the pooled mean and spread agree (the map is estimated from the aggregates, not from these scores)
    assert mapping != ScoreMap()
    assert abs(float(mapped.mean()) - float(raw.mean())) < 0.05 * float(raw.std())
    assert float(mapped.std()) == pytest.approx(float(raw.std()), rel=0.1)


def test_a_transform_that_keeps_the_operating_point_is_accepted() -> None:
    # given separated templates and the calibrated threshold in the strangers' upper tail
    stats, whitening = fitted()
    templates = population(4, seed=3)
    raw = population(20000, seed=4) @ templates.T
    threshold = float(np.quantile(raw.max(axis=1), 0.99))
    # when the guard checks the transform
    verdict = check_transform(stats, whitening, templates, ["a", "b", "c", "d"], threshold,
                              GuardConfig(max_fpir_ratio=2.0))
    # then it is accepted, and both estimates are reported
    assert verdict.accepted and verdict.reason is None, verdict.reason
    assert verdict.fpir_before is not None and verdict.fpir_after is not None
    assert 0 < verdict.fpir_before < 0.2


def test_a_rise_of_the_estimated_stranger_match_rate_is_refused() -> None:
    stats, whitening = fitted()
    templates = population(4, seed=3)
    verdict = check_transform(stats, whitening, templates, ["a", "b", "c", "d"], 0.9,
                              GuardConfig(max_fpir_ratio=1e-6))
    assert not verdict.accepted
    assert verdict.reason is not None and "stranger match rate" in verdict.reason


def test_two_persons_brought_together_by_the_transform_are_refused() -> None:
    # given two templates that differ mostly along the population's dominant direction, which whitening shrinks
    stats, whitening = fitted()
    base = stats.mean / np.linalg.norm(stats.mean)
    axis = np.zeros(16)
    axis[0] = 1.0
    a, b = base + 0.3 * axis, base - 0.3 * axis
    templates = np.stack([a / np.linalg.norm(a), b / np.linalg.norm(b)])
    mapping = score_map(stats, whitening, templates)
    adapted = whitening.apply(MODEL, templates).astype(np.float64)
    raw_score = float(templates[0] @ templates[1])
    mapped_score = mapping(float(adapted[0] @ adapted[1]))
    assert mapped_score > raw_score  # the construction does what it says
    threshold = (raw_score + mapped_score) / 2
    # when the guard checks it at a threshold between the two scores (the rate check made lenient)
    verdict = check_transform(stats, whitening, templates, ["a", "b"], threshold, GuardConfig(max_fpir_ratio=1e9))
    # then it is refused for the collision; the same vectors of one person are no collision
    assert not verdict.accepted and verdict.reason is not None and "two enrolled persons" in verdict.reason
    same = check_transform(stats, whitening, templates, ["a", "a"], threshold, GuardConfig(max_fpir_ratio=1e9))
    assert same.accepted


@pytest.mark.parametrize(("case", "fragment"), [
    ("identity", "too few faces"),
    ("no_templates", "no enrolled templates"),
])
def test_nothing_to_adapt_or_measure_stays_unadapted(case: str, fragment: str) -> None:
    stats, whitening = fitted()
    if case == "identity":
        few = PopulationStats.of(MODEL, population(10))
        verdict = check_transform(few, fit_whitening(few), population(2), ["a", "b"], 0.9)
    else:
        verdict = check_transform(stats, whitening, np.zeros((0, 16)), [], 0.9)
    assert not verdict.accepted and verdict.reason is not None and fragment in verdict.reason
    assert verdict.score_map == ScoreMap()


@pytest.mark.parametrize(("templates", "owners", "fragment"), [
    (np.zeros((2, 8)), ["a", "b"], "shape"),
    (np.zeros(16), ["a"], "shape"),
    (population(2), ["a"], "owners"),
])
def test_bad_templates_are_refused(templates: FloatArray, owners: list[str], fragment: str) -> None:
    stats, whitening = fitted()
    with pytest.raises(PopulationInputError, match=fragment):
        check_transform(stats, whitening, templates, owners, 0.9)
