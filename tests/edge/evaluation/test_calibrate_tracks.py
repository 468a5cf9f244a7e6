"""Enrolment from several photos for the track-level calibration: who is enrolled, which photos are
tracks, and how templates are built and moved into the adapted space."""

from __future__ import annotations

import numpy as np
import pytest

from edge.evaluation.calibrate_tracks import enrol_protocol, templates
from edge.evaluation.face_data import Embeddings
from vision.population import PopulationStats, WhiteningConfig, fit_whitening

MODEL = "dlib_resnet_v1_flip"
# identity -> number of photos: a and b can enrol 3 photos and keep tracks, c has exactly 3, d has 1
COUNTS = {"a": 6, "b": 4, "c": 3, "d": 1, "e": 5}
FILES = tuple(f"{ident}/{i}.jpg" for ident, n in COUNTS.items() for i in range(n))
IDENTITY = {f: f.split("/")[0] for f in FILES}


@pytest.mark.parametrize("photos", [1, 2, 3])
def test_every_count_enrols_the_same_people_and_searches_the_same_tracks(photos: int) -> None:
    protocol = enrol_protocol(FILES, IDENTITY, seed=0, photos=photos, probes_from=3)
    reference = enrol_protocol(FILES, IDENTITY, seed=0, photos=1, probes_from=3)
    # identities with more than 3 photos (a, b, e): half of them, rounded up, are enrolled
    enrolled = [IDENTITY[g[0]] for g in protocol.gallery]
    assert len(enrolled) == 2 and set(enrolled) <= {"a", "b", "e"}
    assert all(len(g) == photos and g == tuple(f"{IDENTITY[g[0]]}/{i}.jpg" for i in range(photos))
               for g in protocol.gallery)
    # mated tracks are the photos after the third; strangers are every photo of everyone else
    assert protocol.mated == reference.mated and protocol.nonmated == reference.nonmated
    assert all(int(f.split("/")[1][0]) >= 3 for f in protocol.mated)
    assert [enrolled[t] for t in protocol.mated_truth] == [IDENTITY[f] for f in protocol.mated]
    strangers = {IDENTITY[f] for f in protocol.nonmated}
    assert strangers == set(COUNTS) - set(enrolled)
    assert sum(COUNTS[s] for s in strangers) == len(protocol.nonmated)


@pytest.mark.parametrize(("photos", "probes_from"), [(0, 3), (4, 3)])
def test_impossible_counts_are_refused(photos: int, probes_from: int) -> None:
    with pytest.raises(ValueError):
        enrol_protocol(FILES, IDENTITY, seed=0, photos=photos, probes_from=probes_from)


def test_templates_are_normalised_means_then_transformed() -> None:
    # given four photos, one without a face
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4, 1, 8))
    vectors /= np.linalg.norm(vectors, axis=2, keepdims=True)
    found = np.array([[True], [True], [False], [True]])
    vectors[2] = 0.0
    emb = Embeddings(("p0", "p1", "p2", "p3"), vectors.astype(np.float32), found, np.zeros(4))
    gallery = [("p0", "p1"), ("p2",), ("p2", "p3")]
    # when templates are built in the raw space
    raw, ok = templates(emb, gallery, None, MODEL)
    # then each is the normalised mean of its photos with a face; a template of no face failed to enrol
    mean = vectors[0, 0] + vectors[1, 0]
    np.testing.assert_allclose(raw[0], mean / np.linalg.norm(mean), atol=1e-6)
    assert ok.tolist() == [True, False, True]
    np.testing.assert_allclose(raw[2], vectors[3, 0], atol=1e-6)
    # and through a transform, they are the raw templates moved like any probe
    population = np.vstack([rng.normal(size=(300, 8)) + 0.3])
    transform = fit_whitening(PopulationStats.of(MODEL, population), WhiteningConfig(min_faces=10))
    moved, ok2 = templates(emb, gallery, transform, MODEL)
    np.testing.assert_allclose(moved[ok], transform.apply(MODEL, raw[ok]), atol=1e-6)
    assert ok2.tolist() == ok.tolist() and not moved[1].any()
