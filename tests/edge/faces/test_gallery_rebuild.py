"""A gallery made with another face model is rebuilt from the encrypted enrolment photos at start-up."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from vision.engines.base import DlibEngineConfig, FaceEngine
from vision.engines.owner import EnginePool
from vision.engines.registry import build_engine
from vision.types import Image


@pytest.fixture(scope="module")
def engine_no_tta() -> FaceEngine:
    return build_engine(DlibEngineConfig(tta="none"))


def test_model_change_rebuilds_the_gallery(make_config: Callable[..., EdgeConfig], engine: FaceEngine,
                                           engine_pool: EnginePool,
                                           engine_no_tta: FaceEngine, photo: Callable[[str], Image],
                                           photo_bytes: Callable[[str], bytes]) -> None:
    # given two persons enrolled with the model without test-time augmentation
    config = make_config()
    old = EdgeRuntime(config, engine=engine_no_tta)
    obama = old.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama.jpg"), consent="c")
    biden = old.enroller.enrol(name="拜登", tier="金卡", photo=photo_bytes("biden.jpg"), consent="c")
    old.stop()
    assert engine.model_id != engine_no_tta.model_id
    # when the edge starts with the current default model
    new = EdgeRuntime(config, engine=engine_pool)
    # then its gallery holds both persons, embedded with the new model, and finds Obama in another photo
    assert new.gallery.model_id == engine.model_id
    assert new.gallery.persons == {obama.id, biden.id}
    assert {p.model_id for p in new.store.list_persons()} == {engine.model_id}
    probe = photo("obama2.jpg")
    best = new.gallery.search(engine.embed(probe, engine.detect(probe)))[0].best
    assert best is not None and best.person_id == obama.id
    new.stop()
    # and a second start finds the gallery current and loads it as it is
    again = EdgeRuntime(config, engine=engine_pool)
    assert again.gallery.persons == {obama.id, biden.id}
    again.stop()
