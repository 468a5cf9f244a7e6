"""The box learns its face population: aggregates only, saved encrypted, refitted on a background thread once
enough faces were seen, whitened only when the population departs from the model's native geometry, used only when
the guard accepts, and always with templates transformed like the probes."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from cryptography.fernet import Fernet

from edge.faces.adapt import PopulationAdapter
from edge.faces.config import AdaptationSettings
from edge.store.db import Store
from edge.store.population import MIN_SAVED_FACES, load_population, save_population
from vision.gallery import Gallery
from vision.population import PopulationStats

MODEL = "test-model"
DIM = 16
FloatArray = npt.NDArray[np.float32]


def population(n: int, seed: int = 0, offset: float = 2.0) -> FloatArray:
    """Unit vectors around a common offset with a few dominant directions, like a face population the model
    knows poorly: strangers score close to the threshold, so the choice whitens."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, DIM)) * np.linspace(3.0, 0.3, DIM) + offset
    out: FloatArray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "edge.db", branch_id="b", cipher=Fernet(Fernet.generate_key()))


def gallery_of(n: int = 4, seed: int = 1) -> Gallery:
    gallery = Gallery(MODEL, DIM)
    for i, vector in enumerate(population(n, seed)):
        gallery.add(f"p{i}", vector[None, :])
    return gallery


def settings(**kw: object) -> AdaptationSettings:
    return AdaptationSettings.model_validate({"apply": True, "min_faces": 300, "shrinkage": 0.5,
                                              "max_fpir_ratio": 2.0, **kw})


def test_a_fresh_box_starts_unadapted_and_searches_the_gallery_as_it_is(store: Store) -> None:
    gallery = gallery_of()
    adapter = PopulationAdapter(settings(), gallery=gallery, store=store, threshold=0.95)
    probes = population(3, seed=5)
    state = adapter.state()
    assert not state.applied and state.faces_seen == 0 and state.version == 0
    assert state.reason == "too few faces: 0 < 300"
    assert adapter.search(probes, k=2) == gallery.search(probes, k=2)
    assert adapter.state().faces_seen == 3


def test_enough_faces_fit_the_transform_and_probes_meet_transformed_templates(store: Store) -> None:
    # given a box that has seen 299 faces
    clock = Clock()
    gallery = gallery_of()
    adapter = PopulationAdapter(settings(refit_interval_s=60), gallery=gallery, store=store, threshold=0.95,
                                clock=clock)
    adapter.search(population(299, seed=2))
    assert not adapter.state().applied
    # when the 300th is searched (the refit runs on the background thread)
    adapter.search(population(1, seed=3))
    assert adapter.wait_refits(timeout=60)
    # then the transform is chosen, fitted, checked and used
    state = adapter.state()
    assert state.applied and state.version == 1 and state.reason is None and state.digest
    assert state.branch == "whiten" and state.stranger_pair_rate is not None
    assert state.fpir_before is not None and state.fpir_after is not None
    assert state.fpir_after <= 2.0 * state.fpir_before
    # and a template searched as a probe finds its own person first, at the mapped score of a perfect match
    p2 = gallery.vectors("p2")
    best = adapter.search(p2, k=2)[0].best
    assert best is not None and best.person_id == "p2"
    # no refit before the interval; one after it
    adapter.search(population(50, seed=4))
    assert adapter.wait_refits(timeout=60)
    assert adapter.state().version == 1
    clock.t = 61
    adapter.search(population(1, seed=6))
    assert adapter.wait_refits(timeout=60)
    assert adapter.state().version == 2
    adapter.close()


def test_an_edited_gallery_is_searched_through_the_same_transform_at_once(store: Store) -> None:
    # given an adapted box
    gallery = gallery_of()
    adapter = PopulationAdapter(settings(), gallery=gallery, store=store, threshold=0.95)
    adapter.search(population(300, seed=2))
    assert adapter.wait_refits(timeout=60)
    assert adapter.state().applied
    # when a person is enrolled (or replaced by a sync) in the unadapted gallery
    newcomer = population(1, seed=9)
    gallery.add("newcomer", newcomer)
    # then the very next search finds them, and their removal is seen as soon
    best = adapter.search(newcomer, k=2)[0].best
    assert best is not None and best.person_id == "newcomer"
    gallery.remove("newcomer")
    best = adapter.search(newcomer, k=2)[0].best
    assert best is not None and best.person_id != "newcomer"


@pytest.mark.parametrize(("kw", "fragment"), [
    ({"apply": False}, "apply is off"),
    ({"max_fpir_ratio": 1e-9}, "stranger match rate"),
])
def test_a_refused_or_switched_off_transform_leaves_the_box_unadapted(store: Store, kw: dict[str, object],
                                                                    fragment: str) -> None:
    gallery = gallery_of()
    adapter = PopulationAdapter(settings(**kw), gallery=gallery, store=store, threshold=0.9)
    adapter.search(population(300, seed=2))
    assert adapter.wait_refits(timeout=60)
    state = adapter.state()
    assert not state.applied and state.reason is not None and fragment in state.reason
    assert state.version == 1 and state.digest is None  # fitted, not used
    probes = population(3, seed=5)
    assert adapter.search(probes, k=2) == gallery.search(probes, k=2)


def test_an_empty_gallery_stays_unadapted_with_the_reason(store: Store) -> None:
    adapter = PopulationAdapter(settings(), gallery=Gallery(MODEL, DIM), store=store, threshold=0.95)
    adapter.search(population(300, seed=2))
    assert adapter.wait_refits(timeout=60)
    state = adapter.state()
    assert not state.applied and state.reason is not None and "no enrolled templates" in state.reason


def test_learning_off_keeps_no_aggregates(store: Store) -> None:
    adapter = PopulationAdapter(settings(learn=False), gallery=gallery_of(), store=store, threshold=0.95)
    adapter.search(population(400, seed=2))
    adapter.close()
    assert adapter.state().faces_seen == 0 and load_population(store, MODEL) is None


def test_the_aggregates_survive_a_restart_encrypted_and_a_restarted_box_fits_at_once(store: Store,
                                                                                   tmp_path: Path) -> None:
    # given a box that saw 310 faces and shut down
    first = PopulationAdapter(settings(), gallery=gallery_of(), store=store, threshold=0.95)
    seen = population(310, seed=2)
    first.search(seen)
    first.close()  # a refit asked for and not yet run is dropped; the aggregates are saved
    # when it starts again on the same store
    again = PopulationAdapter(settings(), gallery=gallery_of(), store=store, threshold=0.95)
    # then it resumes from the saved aggregates and is adapted from the start
    assert again.state().faces_seen == 310 and again.state().applied
    # and the file holds the aggregates only encrypted: the mean's bytes are not in it
    stats = load_population(store, MODEL)
    assert stats is not None and stats.count == 310
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("edge.db*"))
    assert stats.mean.astype("<f8").tobytes()[:64] not in raw
    assert b"smartbranch.population_stats" not in raw


def test_too_few_faces_are_not_saved_and_another_models_aggregates_are_dropped(store: Store) -> None:
    assert not save_population(store, PopulationStats.of(MODEL, population(MIN_SAVED_FACES - 1)))
    assert load_population(store, MODEL) is None
    assert save_population(store, PopulationStats.of("old-model", population(40)))
    assert save_population(store, PopulationStats.of(MODEL, population(40)))
    assert load_population(store, "old-model") is None
    assert load_population(store, MODEL) is not None


def test_the_running_sums_fold_into_the_same_aggregates_as_one_fit(store: Store) -> None:
    # given faces searched one, then several at a time, across a fold (close) and a restart
    seen = population(120, seed=7)
    first = PopulationAdapter(settings(), gallery=gallery_of(), store=store, threshold=0.95)
    for row in seen[:50]:
        first.search(row[None, :])
    first.close()
    again = PopulationAdapter(settings(), gallery=gallery_of(), store=store, threshold=0.95)
    again.search(seen[50:90])
    again.search(seen[90:])
    again.close()
    # then the saved aggregates are those of all of them at once
    stored = load_population(store, MODEL)
    whole = PopulationStats.of(MODEL, seen)
    assert stored is not None and stored.count == 120
    np.testing.assert_allclose(stored.mean, whole.mean, atol=1e-9)
    np.testing.assert_allclose(stored.m2, whole.m2, atol=1e-7)


def test_a_population_like_the_models_native_one_stays_unadapted_with_the_reason(store: Store) -> None:
    # given a box whose faces spread like the model's own population: strangers far below the threshold
    adapter = PopulationAdapter(settings(), gallery=gallery_of(), store=store, threshold=0.95)
    adapter.search(population(300, seed=2, offset=0.0))
    assert adapter.wait_refits(timeout=60)
    # then the choice keeps it unadapted, says why, and searches the gallery as it is
    state = adapter.state()
    assert not state.applied and state.branch == "unadapted" and state.version == 0
    assert state.reason is not None and "native" in state.reason
    assert state.stranger_pair_rate is not None and state.stranger_pair_rate < settings().min_pair_rate
    probes = population(3, seed=5)
    assert adapter.search(probes, k=2) == adapter._gallery.search(probes, k=2)
    adapter.close()


class HeldRefit(PopulationAdapter):
    """The adapter with its refit held until the test lets it go, and the thread that ran it recorded."""

    def __init__(self, *args: object, **kw: object) -> None:
        self.go = threading.Event()
        self.ran_on: list[str] = []
        super().__init__(*args, **kw)  # type: ignore[arg-type]

    def refit(self):  # type: ignore[no-untyped-def]
        self.ran_on.append(threading.current_thread().name)
        assert self.go.wait(timeout=60)
        return super().refit()


def test_the_refit_runs_on_a_background_thread_and_searches_never_wait_for_it(store: Store) -> None:
    # given a box whose refit is held once it starts
    gallery = gallery_of()
    adapter = HeldRefit(settings(), gallery=gallery, store=store, threshold=0.95)
    # when the search that makes the refit due returns, and more searches follow while it is held
    adapter.search(population(300, seed=2))
    probes = population(3, seed=5)
    during = adapter.search(probes, k=2)
    # then they were answered unadapted, on the camera thread, while the refit waits on its own thread
    assert during == gallery.search(probes, k=2) and not adapter.state().applied
    assert not adapter.wait_refits(timeout=0.01)
    # and once released, the checked view is swapped in for the next search
    adapter.go.set()
    assert adapter.wait_refits(timeout=60)
    assert adapter.ran_on == ["face-population-refit"] and adapter.state().applied
    assert adapter.search(probes, k=2) != during
    adapter.close()
