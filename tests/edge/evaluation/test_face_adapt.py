"""Population adaptation of an embedded face set: what the fit sees, what moves, and the fold-honest check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.evaluation.face_adapt import Choosing, adapt, choose, fold_honest, population_of
from edge.evaluation.face_data import Embeddings, PairList
from edge.evaluation.face_protocol import evaluate_set
from vision.population import WhiteningConfig, fit_whitening
from vision.population_choice import ChoiceConfig

MODEL = "dlib_resnet_v1_flip"


def face_set(identities: int = 30, photos: int = 4, dim: int = 8, seed: int = 0) -> tuple[Embeddings, PairList,
                                                                                          dict[str, str]]:
    """Noisy photos around one centre per identity, all offset alike; genuine and impostor pairs."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, dim)) + 2.0
    files, vectors = [], []
    for i in range(identities):
        for j in range(photos):
            files.append(f"id{i:02d}/{j}.jpg")
            v = centres[i] + rng.normal(scale=0.8, size=dim)
            vectors.append(v / np.linalg.norm(v))
    found = np.ones((len(files), 1), bool)
    found[3] = False  # one photo without a face
    arr = np.asarray(vectors, np.float32)[:, None, :]
    arr[3] = 0.0
    emb = Embeddings(tuple(files), arr, found, np.zeros(len(files)))
    genuine = [(f"id{i:02d}/0.jpg", f"id{i:02d}/1.jpg", True) for i in range(identities)]
    impostor = [(f"id{i:02d}/2.jpg", f"id{(i + 1) % identities:02d}/2.jpg", False) for i in range(identities)]
    left, right, same = zip(*genuine, *impostor, strict=True)
    pairs = PairList(Path("pairs.csv"), left, right, np.asarray(same), None)
    return emb, pairs, {f: f.split("/")[0] for f in files}


def test_the_fit_sees_only_found_faces_outside_the_excluded_photos() -> None:
    emb, _, _ = face_set()
    assert population_of(emb, MODEL).count == len(emb.files) - 1
    excluded = {"id00/0.jpg", "id00/1.jpg", "id00/3.jpg"}  # id00/3 has no face: it was never counted
    assert population_of(emb, MODEL, excluded).count == len(emb.files) - 3


def test_adapting_moves_found_faces_and_leaves_missing_ones_empty() -> None:
    emb, _, _ = face_set()
    transform = fit_whitening(population_of(emb, MODEL), WhiteningConfig(min_faces=10))
    moved = adapt(emb, transform, MODEL)
    assert not moved.vectors[3].any() and (moved.found == emb.found).all()
    np.testing.assert_allclose(moved.vectors[0], transform.apply(MODEL, emb.vectors[0]), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(moved.vectors[emb.found], axis=1), 1.0, atol=1e-5)


def test_fold_honest_with_unadapted_folds_equals_the_plain_evaluation() -> None:
    # given a fit that can never be made (more faces needed than the set has)
    emb, pairs, identity = face_set()
    never = WhiteningConfig(min_faces=10_000)
    # when measured fold-honestly
    honest = fold_honest(emb, pairs, emb.files, identity, MODEL, never, seed=0, folds=5, use_singletons=True)
    plain = evaluate_set(emb, pairs, emb.files, identity, seed=0, folds=5, use_singletons=True)
    # then every fold fell back to the identity, and the figures are the plain ones
    assert honest.unadapted_folds == honest.n_pair_folds + honest.n_identity_folds == 10
    assert honest.accuracy.mean == pytest.approx(plain.accuracy)
    assert honest.tar[0].rate == pytest.approx(plain.tar[0].rate, nan_ok=True)
    assert [op.rate for op in honest.fnir] == pytest.approx([op.rate for op in plain.fnir], nan_ok=True)


def test_fold_honest_fits_every_fold_without_its_own_photos() -> None:
    # given a set whose population is offset, adapted fold by fold
    emb, pairs, identity = face_set()
    honest = fold_honest(emb, pairs, emb.files, identity, MODEL, WhiteningConfig(min_faces=10), seed=0, folds=5,
                         use_singletons=True)
    # then every fold was adapted and the metrics are real rates
    assert honest.unadapted_folds == 0 and honest.n_pair_folds == 5 and honest.n_identity_folds == 5
    assert 0.5 <= honest.accuracy.mean <= 1.0
    # and a fold's transform differs from the one fitted on everything (its photos were left out)
    whole = fit_whitening(population_of(emb, MODEL), WhiteningConfig(min_faces=10))
    held = {pairs.left[0], pairs.right[0]}
    part = fit_whitening(population_of(emb, MODEL, held), WhiteningConfig(min_faces=10))
    assert part.count == whole.count - 2 and part.digest != whole.digest


def test_the_whole_set_and_every_fold_go_through_the_boxs_choice() -> None:
    # given an offset set (strangers score 0.71 ± 0.16), and the box's choice at two thresholds: one that
    # strangers crowd (half of them pass 0.7) and one they rarely reach (3.6 % pass 0.9999, below a 10 % cutoff)
    emb, pairs, identity = face_set()
    config = WhiteningConfig(min_faces=10)
    crowded = Choosing(threshold=0.7, config=ChoiceConfig(min_pair_rate=0.1))
    native = Choosing(threshold=0.9999, config=ChoiceConfig(min_pair_rate=0.1))
    # when the choice is made on the whole set
    chosen, kept = choose(emb, MODEL, config, crowded), choose(emb, MODEL, config, native)
    # then strangers crowding the threshold get the whitening, and strangers far below it stay unadapted
    assert chosen.branch == "whiten" and chosen.whitening.adapted
    assert kept.branch == "unadapted" and not kept.whitening.adapted and "native" in kept.reason
    # and fold-honestly every fold makes the same choice on its own fit
    plain = evaluate_set(emb, pairs, emb.files, identity, seed=0, folds=5, use_singletons=True)
    stays = fold_honest(emb, pairs, emb.files, identity, MODEL, config, seed=0, folds=5, use_singletons=True,
                        choosing=native)
    assert stays.unadapted_folds == 10 and stays.accuracy.mean == pytest.approx(plain.accuracy)
    moves = fold_honest(emb, pairs, emb.files, identity, MODEL, config, seed=0, folds=5, use_singletons=True,
                        choosing=crowded)
    assert moves.unadapted_folds == 0
