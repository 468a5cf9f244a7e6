"""Population statistics and the whitening transform: exact merging, the model-id tie, the fall-backs,
serialisation, bad input, and convergence on real faces."""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from vision.engines.base import FaceEngine
from vision.errors import PopulationFileError, PopulationInputError, PopulationModelError
from vision.imageio import decode_image
from vision.population import PopulationStats, Whitening, WhiteningConfig, fit_whitening
from vision.single_face import SingleFaceFinder
from vision.types import Image
from vision.voter import VoterConfig

MODEL = "dlib_resnet_v1_flip"
FloatArray = npt.NDArray[np.float64]


def unit_vectors(n: int, d: int = 16, seed: int = 0, offset: float = 0.5) -> FloatArray:
    """Unit vectors around a common offset, with a few dominant directions, like a face population."""
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.3, d)
    x = rng.normal(size=(n, d)) * scales + offset
    out: FloatArray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def assert_same_stats(a: PopulationStats, b: PopulationStats) -> None:
    assert a.model_id == b.model_id and a.count == b.count
    np.testing.assert_allclose(a.mean, b.mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.m2, b.m2, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("cuts", [(), (1,), (7,), (1, 2, 3), (50, 51, 199), (100,)])
def test_merging_batches_equals_one_fit(cuts: tuple[int, ...]) -> None:
    # given 200 vectors cut into batches at ``cuts``
    x = unit_vectors(200)
    parts = np.split(x, list(cuts))
    # when each batch is summarised and the summaries merged (Chan), or added one after another
    merged = PopulationStats.empty(MODEL, 16)
    added = PopulationStats.empty(MODEL, 16)
    for part in parts:
        merged = merged.merge(PopulationStats.of(MODEL, part))
        added = added.add(MODEL, part)
    # then both equal the statistics of all vectors at once, and numpy's covariance
    whole = PopulationStats.of(MODEL, x)
    assert_same_stats(merged, whole)
    assert_same_stats(added, whole)
    np.testing.assert_allclose(whole.covariance(), np.cov(x.T), atol=1e-12)


def test_merge_order_does_not_matter_and_empty_is_neutral() -> None:
    a, b, c = (PopulationStats.of(MODEL, unit_vectors(n, seed=s)) for n, s in ((30, 1), (5, 2), (64, 3)))
    assert_same_stats(a.merge(b).merge(c), c.merge(a.merge(b)))
    empty = PopulationStats.empty(MODEL, 16)
    assert_same_stats(a.merge(empty), a)
    assert_same_stats(empty.merge(a), a)
    assert PopulationStats.of(MODEL, np.zeros((0, 16))).count == 0


def test_statistics_and_transforms_refuse_another_model() -> None:
    ours = PopulationStats.of(MODEL, unit_vectors(300))
    theirs = PopulationStats.of("insightface_buffalo_l", unit_vectors(300))
    with pytest.raises(PopulationModelError):
        ours.merge(theirs)
    with pytest.raises(PopulationModelError):
        ours.add("dlib_resnet_v1", unit_vectors(3))
    transform = fit_whitening(ours, WhiteningConfig(min_faces=10))
    with pytest.raises(PopulationModelError):
        transform.apply("dlib_resnet_v1", unit_vectors(3))
    with pytest.raises(PopulationModelError):
        Whitening.from_bytes(transform.to_bytes(), model_id="dlib_resnet_v1")
    with pytest.raises(PopulationModelError):
        PopulationStats.from_bytes(ours.to_bytes(), model_id="dlib_resnet_v1")
    unadapted = Whitening.identity(MODEL, 16, "no population yet")
    with pytest.raises(PopulationModelError):
        unadapted.apply("dlib_resnet_v1", unit_vectors(3))


@pytest.mark.parametrize(
    ("vectors", "fragment"),
    [
        (np.zeros(16), "shape"),
        (np.zeros((2, 3, 16)), "shape"),
        (np.zeros((2, 0)), "shape"),
        (np.ones((2, 15)), "shape"),
        (np.array([[np.nan] * 16]), "NaN"),
        (np.array([[np.inf] + [0.0] * 15]), "NaN or infinity"),
        (np.vstack([unit_vectors(2), np.zeros((1, 16))]), "all-zero"),
        ([["a"] * 16], "not numbers"),
    ],
)
def test_bad_embeddings_are_refused(vectors: object, fragment: str) -> None:
    stats = PopulationStats.empty(MODEL, 16)
    with pytest.raises(PopulationInputError, match=fragment):
        stats.add(MODEL, vectors)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("vectors", "fragment"),
    [(np.zeros(16), "shape"), (np.ones((2, 8)), "shape"), (np.full((1, 16), np.nan), "NaN")],
)
def test_a_transform_refuses_bad_vectors(vectors: FloatArray, fragment: str) -> None:
    transform = fit_whitening(PopulationStats.of(MODEL, unit_vectors(300)), WhiteningConfig(min_faces=10))
    with pytest.raises(PopulationInputError, match=fragment):
        transform.apply(MODEL, vectors)


def test_covariance_needs_two_vectors_and_stats_need_a_model() -> None:
    with pytest.raises(PopulationInputError):
        PopulationStats.of(MODEL, unit_vectors(1)).covariance()
    with pytest.raises(PopulationInputError):
        PopulationStats.of("", unit_vectors(3))
    with pytest.raises(PopulationInputError):
        PopulationStats.empty(MODEL, 0)


# ----------------------------------------------------------------------------------------- whitening


def test_full_whitening_gives_the_population_an_identity_covariance() -> None:
    # given a population with very unequal spread, whitened without shrinkage
    x = unit_vectors(2000, seed=4)
    transform = fit_whitening(PopulationStats.of(MODEL, x), WhiteningConfig(shrinkage=0.0, min_faces=10))
    # when the affine part is applied (before re-normalisation)
    assert transform.mean is not None and transform.matrix is not None
    y = (x - transform.mean) @ transform.matrix.T
    # then the population is centred with unit covariance, and applied vectors are unit length
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.cov(y.T), np.eye(16), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(transform.apply(MODEL, x), axis=1), 1.0, atol=1e-6)


def test_full_shrinkage_only_centres() -> None:
    x = unit_vectors(400, seed=5)
    transform = fit_whitening(PopulationStats.of(MODEL, x), WhiteningConfig(shrinkage=1.0, min_faces=10))
    centred = x - x.mean(axis=0)
    expected = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    np.testing.assert_allclose(transform.apply(MODEL, x), expected, atol=1e-6)


def test_shrinkage_keeps_directions_between_centring_and_full_whitening() -> None:
    # the spread along the strongest direction, relative to the weakest, falls as shrinkage falls
    x = unit_vectors(2000, seed=6)
    stats = PopulationStats.of(MODEL, x)
    ratios = []
    for a in (1.0, 0.8, 0.3, 0.0):
        t = fit_whitening(stats, WhiteningConfig(shrinkage=a, min_faces=10))
        assert t.mean is not None and t.matrix is not None
        values = np.linalg.eigvalsh(np.cov(((x - t.mean) @ t.matrix.T).T))
        ratios.append(values.max() / values.min())
    assert ratios == sorted(ratios, reverse=True)
    assert ratios[-1] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("vectors", "config", "reason"),
    [
        (unit_vectors(100), WhiteningConfig(), "too few faces: 100 < 256"),
        (np.zeros((0, 16)), WhiteningConfig(), "too few faces: 0 < 256"),
        (np.tile(unit_vectors(1), (300, 1)), WhiteningConfig(), "degenerate covariance: mean variance"),
        (unit_vectors(8), WhiteningConfig(shrinkage=0.0, min_faces=2), "degenerate covariance: condition number"),
    ],
)
def test_too_few_faces_or_a_degenerate_covariance_fall_back_to_unadapted(
        vectors: FloatArray, config: WhiteningConfig, reason: str) -> None:
    # when a transform is fitted from statistics that cannot support one
    transform = fit_whitening(PopulationStats.of(MODEL, vectors) if len(vectors) else
                              PopulationStats.empty(MODEL, 16), config)
    # then it is the identity, says why, and only re-normalises
    assert not transform.adapted and transform.version == 0
    assert transform.reason is not None and transform.reason.startswith(reason)
    probe = unit_vectors(5, seed=9) * 3.0
    np.testing.assert_allclose(transform.apply(MODEL, probe), probe / np.linalg.norm(probe, axis=1, keepdims=True),
                               atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"shrinkage": -0.1}, {"shrinkage": 1.5}, {"min_faces": 1},
                                    {"min_variance": 0.0}, {"max_condition": 1.0}])
def test_bad_whitening_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        WhiteningConfig(**kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- serialisation


def test_round_trips_keep_every_number_model_version_and_voter() -> None:
    stats = PopulationStats.of(MODEL, unit_vectors(300))
    again = PopulationStats.from_bytes(stats.to_bytes(), model_id=MODEL)
    assert_same_stats(again, stats)
    np.testing.assert_array_equal(again.m2, stats.m2)
    voter = VoterConfig(threshold=0.31, min_margin=0.02, min_votes=3, max_observations=8)
    transform = fit_whitening(stats, WhiteningConfig(min_faces=10), version=7).with_voter(voter)
    loaded = Whitening.from_bytes(transform.to_bytes(), model_id=MODEL)
    assert (loaded.version, loaded.count, loaded.shrinkage, loaded.voter) == (7, 300, 0.8, voter)
    assert loaded.digest == transform.digest
    probe = unit_vectors(4, seed=3)
    np.testing.assert_array_equal(loaded.apply(MODEL, probe), transform.apply(MODEL, probe))
    unadapted = Whitening.from_bytes(Whitening.identity(MODEL, 16, "no population yet").to_bytes())
    assert not unadapted.adapted and unadapted.reason == "no population yet"
    doc = json.loads(stats.to_bytes())
    assert (doc["model_id"], doc["format_version"], doc["count"]) == (MODEL, 1, 300)


def _edited(data: bytes, **changes: object) -> bytes:
    doc = json.loads(data)
    doc.update(changes)
    return json.dumps(doc).encode()


_TRANSFORM = fit_whitening(PopulationStats.of(MODEL, unit_vectors(300)), WhiteningConfig(min_faces=10)).to_bytes()
_STATS = PopulationStats.of(MODEL, unit_vectors(300)).to_bytes()


@pytest.mark.parametrize(
    ("data", "kind", "fragment"),
    [
        (b"", "transform", "not a"),
        (b"\xff\xfe", "stats", "not a"),
        (b"[1, 2]", "stats", "not a"),
        (_STATS, "transform", "not a smartbranch.whitening"),
        (_edited(_STATS, format_version=2), "stats", "format version"),
        (_edited(_STATS, count=-1), "stats", "'count'"),
        (_edited(_STATS, count=True), "stats", "'count'"),
        (_edited(_STATS, model_id=""), "stats", "'model_id'"),
        (_edited(_STATS, mean=base64.b64encode(b"\0" * 8).decode()), "stats", "bytes"),
        (_edited(_STATS, mean="not base64!"), "stats", "base64"),
        (_edited(_STATS, mean=base64.b64encode(np.full(16, np.nan).tobytes()).decode()), "stats", "NaN"),
        (_edited(_TRANSFORM, digest="0" * 16), "transform", "digest"),
        (_edited(_TRANSFORM, version=9), "transform", "digest"),
        (_edited(_TRANSFORM, adapted="yes"), "transform", "adapted"),
        (_edited(_TRANSFORM, shrinkage=2), "transform", "shrinkage"),
        (_edited(_TRANSFORM, matrix=None), "transform", "base64"),
        (_edited(_TRANSFORM, voter={"threshold": 0.3}), "transform", "voter"),
        (_edited(_TRANSFORM, voter={"threshold": 0.3, "min_margin": 0, "min_votes": 0, "max_observations": 8}),
         "transform", "voter"),
    ],
)
def test_bad_files_are_refused(data: bytes, kind: str, fragment: str) -> None:
    reader: Callable[[bytes], object] = Whitening.from_bytes if kind == "transform" else PopulationStats.from_bytes
    with pytest.raises(PopulationFileError, match=fragment):
        reader(data)


# ----------------------------------------------------------------------------------------- real faces


def _embed(engine: FaceEngine, images: list[Image]) -> FloatArray:
    finder = SingleFaceFinder(engine)
    vectors = [finder.embed_largest(image) for image in images]
    return np.stack([v for v in vectors if v is not None]).astype(np.float64)


def test_a_handful_of_real_faces_stays_unadapted(engine: FaceEngine, photo: Callable[[str], Image]) -> None:
    # given the real engine's embeddings of the registry photos (far fewer faces than a fit needs)
    vectors = _embed(engine, [photo(n) for n in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")])
    stats = PopulationStats.of(engine.model_id, vectors)
    # when a transform is fitted with the defaults
    transform = fit_whitening(stats)
    # then it is the identity for that model, and the scores between the faces do not change
    assert not transform.adapted and transform.model_id == engine.model_id
    assert transform.reason == f"too few faces: {len(vectors)} < 256"
    out = transform.apply(engine.model_id, vectors)
    np.testing.assert_allclose(out @ out.T, vectors @ vectors.T, atol=1e-5)


@pytest.fixture()
def lfw_vectors(engine: FaceEngine, shared_data: Path) -> FloatArray:
    """The real engine's embedding of every LFW photo that the View 1 pair list names (1549)."""
    root = shared_data / "faces"
    with (root / "pairs.csv").open(encoding="utf-8", newline="") as fh:
        files = sorted({row[side] for row in csv.DictReader(fh) for side in ("left", "right")})
    return _embed(engine, [decode_image((root / f).read_bytes()) for f in files])


@pytest.mark.slow
@pytest.mark.shared_data
def test_the_transform_from_500_real_faces_is_close_to_the_one_from_all(lfw_vectors: FloatArray) -> None:
    # given the real embeddings of 1549 LFW photos, and the default transform fitted on all of them
    x = lfw_vectors
    assert len(x) > 1500
    full = fit_whitening(PopulationStats.of(MODEL, x))
    assert full.adapted
    full_out = full.apply(MODEL, x)
    full_scores = full_out @ full_out.T

    def distance(n: int, seed: int) -> tuple[float, float]:
        """Mean cosine between each face's two transformed versions, and mean |score change| of all pairs."""
        rows = np.random.default_rng(seed).choice(len(x), size=n, replace=False)
        part = fit_whitening(PopulationStats.of(MODEL, x[rows]), WhiteningConfig(min_faces=2))
        out = part.apply(MODEL, x)
        return float((out * full_out).sum(axis=1).mean()), float(np.abs(out @ out.T - full_scores).mean())

    # when a transform is fitted on 500 of them (three random draws), and on only 50
    at_500 = [distance(500, seed) for seed in range(3)]
    at_50 = distance(50, 0)
    # then every face lands almost where the full fit puts it, and pair scores move by about 0.01,
    # less than half as far as with 50 faces: the statistics converge
    for cosine, shift in at_500:
        assert cosine > 0.995
        assert shift < 0.02
        assert shift < at_50[1] / 2
