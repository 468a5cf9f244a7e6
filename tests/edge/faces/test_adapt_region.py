"""The region prior at the box (face.adaptation.region_prior): used only while the box has fewer than min_faces
faces of its own, merged with them, never saved as the box's own; a failed fetch keeps the last prior, another
model's is refused; switched off, the box never asks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cryptography.fernet import Fernet

from edge.faces.adapt import PopulationAdapter
from edge.faces.config import AdaptationSettings
from edge.store.db import Store
from edge.store.population import load_population
from tests.edge.faces.test_adapt import DIM, MODEL, gallery_of, population
from vision.population import PopulationStats


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "edge.db", branch_id="b", cipher=Fernet(Fernet.generate_key()))


def adapter(store: Store, *, region_prior: bool = True) -> PopulationAdapter:
    settings = AdaptationSettings.model_validate({"apply": True, "min_faces": 300, "shrinkage": 0.5,
                                                  "max_fpir_ratio": 2.0, "region_prior": region_prior})
    return PopulationAdapter(settings, gallery=gallery_of(), store=store, threshold=0.9)


class Region:
    """The console's answers in turn (None: not reached, or no population yet)."""

    def __init__(self, *answers: PopulationStats | None) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self) -> PopulationStats | None:
        self.calls += 1
        return self.answers.pop(0) if self.answers else None


def test_the_prior_is_merged_while_the_box_is_new_and_left_once_it_has_enough_faces(store: Store) -> None:
    region_faces = population(500, seed=7)
    own = population(400, seed=8)
    box = adapter(store)
    box.search(own[:50])
    fetch = Region(PopulationStats.of(MODEL, region_faces))
    box.attach_region_prior(fetch)
    assert box.wait_refits(10)
    state = box.state()
    assert (state.source, state.region_faces, state.faces_seen, state.version) == ("region+own", 500, 50, 1)
    saved = load_population(store, MODEL)  # the box saves its own faces only
    assert saved is not None and saved.count == 50
    # a failed fetch keeps the prior it had
    box.refit()
    assert (box.state().source, box.state().region_faces) == ("region+own", 500)
    # with min_faces of its own, the box stands on its own faces
    box.search(own[50:])
    box.refit()
    state = box.state()
    assert (state.source, state.region_faces, state.faces_seen) == ("own", 0, 400)
    assert box._whitening.count == 400
    box.close()


def test_another_models_prior_is_refused_and_a_switched_off_box_never_asks(store: Store) -> None:
    box = adapter(store)
    box.search(population(50, seed=8))
    box.attach_region_prior(Region(PopulationStats.of("another-model", np.ones((400, DIM)) + population(400))))
    assert box.wait_refits(10)
    assert box.state().source == "own" and "too few faces" in (box.state().reason or "")
    box.close()
    off = adapter(store, region_prior=False)
    fetch = Region(PopulationStats.of(MODEL, population(500, seed=7)))
    off.attach_region_prior(fetch)
    off.refit()
    assert fetch.calls == 0 and off.state().source == "own"
    off.close()
