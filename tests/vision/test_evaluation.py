"""Face-recognition metrics on synthetic score arrays with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.fakes import deterministic_vector, noisy
from vision.evaluation import (
    best_threshold,
    det_curve,
    fnir_at_fpir,
    fold_ids,
    kfold_accuracy,
    kfold_accuracy_per_fold,
    open_set_scores,
    roc_curve,
    tar_at_far,
    threshold_for_false_rate,
    upper_bound_95,
)
from vision.gallery import Gallery

INF = float("inf")
NAN = float("nan")


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


@pytest.mark.parametrize(
    ("scores", "labels", "threshold", "accuracy"),
    [
        ([], [], NAN, NAN),  # empty: undefined
        ([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], 0.5, 1.0),  # separable: midway between the classes
        ([0.9, 0.1], [0, 1], 0.1, 0.5),  # inverted: the first best of the equal candidates
        ([-INF, -INF], [0, 1], INF, 0.5),  # nothing comparable: everything is "different"
        ([-INF, 0.2, 0.8], [1, 0, 1], 0.5, 2 / 3),  # a genuine pair without a face is a miss
        ([0.5, 0.5, 0.5], [1, 1, 1], 0.5, 1.0),  # one distinct score
    ],
    ids=["empty", "separable", "inverted", "all-failed", "failed-genuine", "constant"],
)
def test_best_threshold(scores: list[float], labels: list[int], threshold: float, accuracy: float) -> None:
    # given scores and labels, when the best accuracy threshold is searched
    got_threshold, got_accuracy = best_threshold(scores, labels)
    # then it is the known one
    assert same(got_threshold, threshold) and same(got_accuracy, accuracy)


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.1, NAN], [0, 1], "NaN"),
        ([0.1, 0.2], [0, 2], "labels"),
        ([0.1, 0.2], [0], "labels for"),
    ],
    ids=["nan-score", "bad-label", "length-mismatch"],
)
def test_bad_inputs_are_refused(scores: list[float], labels: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kfold_accuracy(scores, labels)


@pytest.mark.parametrize(
    ("scores", "labels", "folds", "mean", "std", "n_folds"),
    [
        ([], [], None, NAN, NAN, 0),
        ([0.9], [1], None, NAN, NAN, 0),  # one pair cannot be cross-validated
        ([0.1, 0.9], [0, 1], [0, 0], NAN, NAN, 0),  # a single fold id: nothing to train on
        # fold 0 trains the threshold 0.3 for fold 1 and fold 1 trains 0.6 for fold 0: each misses one
        ([0.1, 0.5, 0.3, 0.9], [0, 1, 0, 1], [0, 0, 1, 1], 0.5, 0.0, 2),
        # separable data: every held-out fold is perfect
        (list(np.r_[np.linspace(0, 0.4, 10), np.linspace(0.6, 1, 10)]), [0] * 10 + [1] * 10, None, 1.0, 0.0, 10),
    ],
    ids=["empty", "one-pair", "one-fold", "lfw-style-folds", "separable-shuffled"],
)
def test_kfold_accuracy(scores: list[float], labels: list[int], folds: list[int] | None, mean: float, std: float,
                        n_folds: int) -> None:
    result = kfold_accuracy(scores, labels, folds=folds)
    assert same(result.mean, mean) and same(result.std, std) and result.n_folds == n_folds


def test_kfold_thresholds_come_from_the_other_folds() -> None:
    # given the two-fold table above, when cross-validated, then each fold used the other's threshold
    result = kfold_accuracy([0.1, 0.5, 0.3, 0.9], [0, 1, 0, 1], folds=[0, 0, 1, 1])
    assert result.fold_threshold == pytest.approx((0.6, 0.3))
    assert result.fold_accuracy == (0.5, 0.5)


def test_per_fold_scores_are_used_for_their_own_fold_only() -> None:
    # given the two-fold table, with fold 1's row scoring fold 0's pairs differently (its own fit)
    labels, folds = [0, 1, 0, 1], [0, 0, 1, 1]
    rows = [[0.1, 0.5, 0.3, 0.9],  # fold 0 held out: the threshold comes from fold 1's pairs in this row
            [0.1, 0.8, 0.3, 0.9]]  # fold 1 held out: fold 0's pairs now separate at 0.45
    result = kfold_accuracy_per_fold(rows, labels, folds)
    # then fold 0 is scored as before and fold 1 gains from its row's threshold
    assert result.fold_threshold == pytest.approx((0.6, 0.45))
    assert result.fold_accuracy == (0.5, 1.0)
    # and one row repeated for every fold is plain k-fold accuracy
    same_rows = kfold_accuracy_per_fold([rows[0], rows[0]], labels, folds)
    assert same_rows == kfold_accuracy(rows[0], labels, folds=folds)


@pytest.mark.parametrize(
    ("rows", "labels", "folds", "message"),
    [
        ([[0.1, 0.9]], [0, 1], [0, 1], "1 rows of scores for 2 folds"),
        ([[0.1, 0.9, 0.5]] * 2, [0, 1], [0, 1], "fold ids for scores"),
        ([0.1, 0.9], [0, 1], [0, 1], "fold ids for scores"),
        ([[0.1, np.nan]] * 2, [0, 1], [0, 1], "NaN"),
        ([[0.1, 0.9]] * 2, [0, 2], [0, 1], "labels"),
    ],
    ids=["rows-vs-folds", "columns-vs-pairs", "one-dimensional", "nan", "bad-label"],
)
def test_per_fold_bad_inputs_are_refused(rows: list[list[float]], labels: list[int], folds: list[int],
                                         message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kfold_accuracy_per_fold(rows, labels, folds)


@pytest.mark.parametrize(("n", "k", "sizes"), [(0, 10, []), (3, 10, [1, 1, 1]), (25, 10, [3] * 5 + [2] * 5)])
def test_fold_ids_are_balanced_and_seeded(n: int, k: int, sizes: list[int]) -> None:
    folds = fold_ids(n, k, seed=7)
    assert sorted(np.bincount(folds).tolist(), reverse=True) == sizes if n else folds.size == 0
    assert np.array_equal(folds, fold_ids(n, k, seed=7))


def test_roc_curve_known_points() -> None:
    # given two genuine (0.9, 0.7) and two impostor (0.8, 0.6) scores
    roc = roc_curve([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
    # then thresholds descend from +inf and FAR/TAR step at each score
    assert roc.threshold.tolist() == [INF, 0.9, 0.8, 0.7, 0.6]
    assert roc.tar.tolist() == [0, 0.5, 0.5, 1, 1]
    assert roc.far.tolist() == [0, 0, 0.5, 0.5, 1]


def test_roc_curve_without_impostors_has_no_far() -> None:
    roc = roc_curve([0.9, -INF], [1, 1])
    assert np.isnan(roc.far).all() and roc.tar.tolist() == [0, 0.5]  # the faceless pair is never accepted


IMPOSTORS_1000 = np.arange(1000) / 1000.0  # 0.000 .. 0.999


@pytest.mark.parametrize(
    ("genuine", "impostor", "far", "tar", "resolved", "resolution"),
    [
        # 1000 impostors allow one false accept at 1e-3: the threshold sits just above 0.998
        ([0.9985, 0.999, 0.5], IMPOSTORS_1000, 1e-3, 2 / 3, True, 1e-3),
        ([0.9985, 0.999, 0.5], IMPOSTORS_1000, 1e-2, 2 / 3, True, 1e-3),
        # 999 impostors cannot resolve 1e-3: NaN, never an extrapolation
        ([0.9985], IMPOSTORS_1000[:999], 1e-3, NAN, False, 1 / 999),
        ([0.9], [], 1e-3, NAN, False, NAN),  # no impostors at all
        ([], IMPOSTORS_1000, 1e-3, NAN, False, 1e-3),  # no genuine pairs
        # impostors that could not be compared: every comparable genuine pair is accepted
        ([0.5, -INF], [-INF] * 100, 1e-2, 0.5, True, 1e-2),
    ],
    ids=["1e-3-of-1000", "1e-2-of-1000", "999-unresolved", "no-impostors", "no-genuine", "faceless-impostors"],
)
def test_tar_at_far(genuine: list[float], impostor: np.ndarray, far: float, tar: float, resolved: bool,
                    resolution: float) -> None:
    scores = np.r_[genuine, impostor]
    labels = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))].astype(int)
    point = tar_at_far(scores, labels, far)
    assert same(point.rate, tar) and point.resolved is resolved and same(point.resolution, resolution)
    if resolved:
        assert point.achieved <= far and point.false_accepts <= far * point.n_negatives + 1e-9


def test_the_threshold_is_the_lowest_that_keeps_the_false_rate() -> None:
    # given 1000 impostors, when 1 false accept is allowed, then 0.999 is accepted and 0.998 is not
    threshold = threshold_for_false_rate(IMPOSTORS_1000, 1e-3)
    assert 0.998 < threshold <= 0.999
    assert math.isnan(threshold_for_false_rate(IMPOSTORS_1000[:10], 1e-2))
    with pytest.raises(ValueError, match="target"):
        threshold_for_false_rate(IMPOSTORS_1000, 0.0)


@pytest.mark.parametrize(
    ("errors", "trials", "bound"),
    [(0, 0, NAN), (5, 5, 1.0), (0, 3000, 1 - 0.05 ** (1 / 3000)), (1, 100, 0.0466), (0, 1, 0.95)],
)
def test_upper_bound_95(errors: int, trials: int, bound: float) -> None:
    got = upper_bound_95(errors, trials)
    assert (math.isnan(got) and math.isnan(bound)) or got == pytest.approx(bound, abs=1e-4)


@pytest.mark.parametrize(
    ("mated", "truth", "hit"),
    [
        ([[0.9, 0.2, 0.1]], [0], [0.9]),  # correct template ranks first
        ([[0.5, 0.6, 0.1]], [0], [-INF]),  # another template ranks first: a miss at any threshold
        ([[0.5, 0.5]], [0], [-INF]),  # a tie is not a rank-1 hit
        ([[-INF, -INF]], [1], [-INF]),  # no face in the probe
        ([[-INF, 0.3]], [0], [-INF]),  # its identity failed to enrol
        ([[0.4]], [0], [0.4]),  # a one-person gallery
        (np.zeros((0, 3)), [], []),  # no mated searches
    ],
    ids=["rank1", "rank2", "tie", "no-face", "failed-enrol", "one-template", "empty"],
)
def test_open_set_mated_hits(mated: list[list[float]], truth: list[int], hit: list[float]) -> None:
    scores = open_set_scores(mated, truth, np.zeros((0, len(mated[0]) if len(mated) else 3)))
    assert scores.mated_hit.tolist() == hit


def test_open_set_top_nonmated_scores_and_errors() -> None:
    scores = open_set_scores([[0.9, 0.1, 0.2]], [0], [[0.1, 0.7, 0.3], [-INF, -INF, -INF]])
    assert scores.nonmated_top.tolist() == [0.7, -INF]
    assert scores.rank1_hit_rate == 1.0
    with pytest.raises(ValueError, match="index"):
        open_set_scores([[0.9, 0.1]], [2], [[0.1, 0.2]])
    with pytest.raises(ValueError, match="shape"):
        open_set_scores([[0.9, 0.1]], [0], [[0.1, 0.2, 0.3]])


@pytest.mark.parametrize(
    ("fpir", "fnir", "resolved"),
    [(1e-2, 0.5, True), (2e-2, 0.5, True), (1e-3, NAN, False)],
)
def test_fnir_at_fpir_known_answer(fpir: float, fnir: float, resolved: bool) -> None:
    # given 100 non-mated searches topping at 0.00 .. 0.99 and four mated searches
    tops = np.arange(100) / 100.0
    mated = np.array([[0.995, 0.0], [0.985, 0.0], [0.5, 0.0], [-INF, -INF]])
    nonmated = np.c_[tops, np.zeros(100)]
    scores = open_set_scores(mated, [0, 0, 0, 0], nonmated)
    # when FNIR is read at FPIR 1e-2 (one false positive allowed: threshold just above 0.98)
    point = fnir_at_fpir(scores, fpir)
    # then the two mated searches above 0.98 are hits, the others misses
    assert same(point.rate, fnir) and point.resolved is resolved
    if resolved:
        assert point.achieved <= fpir and point.threshold > 0.97


def test_det_curve_runs_from_no_false_positive_to_all() -> None:
    scores = open_set_scores([[0.9, 0.1], [0.2, 0.8]], [0, 0], [[0.5, 0.3], [0.95, 0.0]])
    det = det_curve(scores)
    assert det.threshold[0] == INF and det.fpir[0] == 0 and det.fnir[0] == 1
    assert det.fpir[-1] == 1 and det.fnir[-1] == 0.5  # the rank-2 mated search never hits
    assert np.all(np.diff(det.fpir) >= 0) and np.all(np.diff(det.fnir) <= 0)


def test_open_set_scores_agree_with_the_faiss_gallery() -> None:
    # given a FAISS gallery of 20 persons and noisy probes of them
    people = [deterministic_vector(f"p{i}") for i in range(20)]
    gallery = Gallery("test", 128)
    for i, v in enumerate(people):
        gallery.add(f"p{i}", v[None, :])
    probes = np.stack([noisy(people[i % 20], 0.3, seed=i) for i in range(40)])
    truth = np.arange(40) % 20
    # when the same search is reduced by open_set_scores on the score matrix
    matrix = probes @ np.stack(people).T
    hits = open_set_scores(matrix, truth, np.zeros((0, 20))).mated_hit
    # then hit/miss and the hit scores match the gallery's best answers
    for i, result in enumerate(gallery.search(probes, k=2)):
        assert result.best is not None
        if result.best.person_id == f"p{truth[i]}":
            assert hits[i] == pytest.approx(result.best.score, abs=1e-5)
        else:
            assert hits[i] == -INF
