"""Visit shots and the console's sync, on real photos with the real apply: the consent purposes a person's
records cover travel with them and are stored at the box; a console update of the person keeps their live
shots in the template; a shot the new photos are too far from, or every shot once the consent no longer covers
them, is dropped with an audit row."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edge.config import load_config
from edge.faces.tracks import LiveShot
from edge.faces.vip_rule import Sighting
from edge.faces.visit_shots import consent_purposes
from edge.runtime import EdgeRuntime
from edge.sync.apply import GalleryApplier
from edge.sync.changes import parse_answer
from tests.edge.conftest import config_dict
from tests.edge.sync.helpers import answer, person_entry
from vision.engines.base import FaceEngine
from vision.engines.owner import EnginePool
from vision.enrolment import embed_photo, mean_template
from vision.types import FaceQuality, FloatArray, Match

GOOD = FaceQuality(score=0.9, size_px=150, size=1.0, blur=1.0, sharpness=80.0, pose=1.0, yaw=0.05, detector=1.2)
OBAMA = "0b" * 16
BIDEN = "b1" * 16


@pytest.fixture()
def box(tmp_path: Path, engine_pool: EnginePool) -> Iterator[tuple[EdgeRuntime, GalleryApplier]]:
    path = tmp_path / "smartbranch.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path / "data"), allow_unicode=True), encoding="utf-8")
    runtime = EdgeRuntime(load_config(path), engine=engine_pool)
    applier = GalleryApplier(store=runtime.store, data_dir=runtime.data_dir, gallery=runtime.gallery,
                             engine=runtime.engine, enroller=runtime.enroller, plates=runtime.plates)
    applier.set_refine(runtime.visit_shots.with_shots)  # as the runtime wires it when sync is on
    yield runtime, applier
    runtime.stop()


def push(applier: GalleryApplier, version: int, *persons: dict[str, Any]) -> None:
    changes, _ = parse_answer(answer(version, list(persons)))
    applier.apply(changes)


def entry(person_id: str, name: str, photos: list[bytes], purposes: list[str], version: int) -> dict[str, Any]:
    return {**person_entry(person_id, name, photos, version=version), "consent_purposes": purposes}


def vector(engine: FaceEngine, photo_bytes: Callable[[str], bytes], name: str) -> FloatArray:
    found = embed_photo(engine, photo_bytes(name))
    assert found is not None
    return found


def confirm_visit(runtime: EdgeRuntime, person_id: str, shot: FloatArray, t: float) -> int:
    live = LiveShot(person_id, shot.astype(np.float32), GOOD, 0.975, 0.5)
    alert = runtime.vip_rule.identified(Sighting("door", "正门", 1, Match(person_id, 0.975, 0.5, 3),
                                                 datetime.now(UTC), datetime.now(UTC), t, live))
    assert alert is not None and runtime.hub.ack(alert.id, "lobby-1") is not None
    return len(runtime.visit_shots.of_person(person_id))


def drops(runtime: EdgeRuntime) -> list[str]:
    return [e.detail for e in runtime.review.list_audit(limit=50) if e.action == "visit_shot_drop"]


def test_the_consent_purposes_arrive_and_a_console_update_keeps_or_drops_the_shots(
        box: tuple[EdgeRuntime, GalleryApplier], engine: FaceEngine, photo_bytes: Callable[[str], bytes]) -> None:
    runtime, applier = box
    obama2, obama3, biden = (photo_bytes(n) for n in ("obama2.jpg", "obama3.jpg", "biden.jpg"))
    # given two console VIPs: one whose consent covers template improvement from visits, one who does not
    push(applier, 1, entry(OBAMA, "奥巴马", [obama2], ["enrolment", "visit_template"], 1),
         entry(BIDEN, "拜登", [biden], ["enrolment"], 1))
    assert consent_purposes(runtime.store, OBAMA) == {"enrolment", "visit_template"}
    assert consent_purposes(runtime.store, BIDEN) == {"enrolment"}
    # when both are greeted and confirmed, then only the first gets a shot
    live = vector(engine, photo_bytes, "obama.jpg")
    assert confirm_visit(runtime, OBAMA, live, 0.0) == 1
    assert confirm_visit(runtime, BIDEN, vector(engine, photo_bytes, "biden.jpg"), 10.0) == 0
    with_shot = runtime.gallery.vectors(OBAMA).copy()
    # when the console updates the person (a new name), then the template still holds the shot
    push(applier, 2, entry(OBAMA, "奥巴马先生", [obama2], ["enrolment", "visit_template"], 2))
    np.testing.assert_allclose(runtime.gallery.vectors(OBAMA), with_shot, atol=1e-5)
    assert len(runtime.visit_shots.of_person(OBAMA)) == 1 and runtime.store.get_person(OBAMA).name == "奥巴马先生"
    # and a console update that adds a photo gives the mean of both photos and the shot
    push(applier, 3, entry(OBAMA, "奥巴马先生", [obama2, obama3], ["enrolment", "visit_template"], 3))
    expected = mean_template([vector(engine, photo_bytes, "obama2.jpg"), vector(engine, photo_bytes, "obama3.jpg"),
                              live])
    np.testing.assert_allclose(runtime.gallery.vectors(OBAMA)[0], expected, atol=1e-4)
    assert drops(runtime) == []
    # when the console's photos change so much that the guard would refuse the shot (another face), then the
    # shot is dropped with an audit row and the template is the photos' alone
    push(applier, 4, entry(OBAMA, "奥巴马先生", [biden], ["enrolment", "visit_template"], 4))
    assert runtime.visit_shots.of_person(OBAMA) == []
    np.testing.assert_allclose(runtime.gallery.vectors(OBAMA)[0], vector(engine, photo_bytes, "biden.jpg"),
                               atol=1e-4)
    [dropped] = drops(runtime)
    assert "too far" in dropped and OBAMA in dropped


def test_a_consent_that_no_longer_covers_visit_templates_drops_the_shots(
        box: tuple[EdgeRuntime, GalleryApplier], engine: FaceEngine, photo_bytes: Callable[[str], bytes]) -> None:
    runtime, applier = box
    push(applier, 1, entry(OBAMA, "奥巴马", [photo_bytes("obama2.jpg")], ["enrolment", "visit_template"], 1))
    before = runtime.gallery.vectors(OBAMA).copy()
    assert confirm_visit(runtime, OBAMA, vector(engine, photo_bytes, "obama.jpg"), 0.0) == 1
    # when the console sends the person with a consent for the enrolment only
    push(applier, 2, entry(OBAMA, "奥巴马", [photo_bytes("obama2.jpg")], ["enrolment"], 2))
    # then the shot is gone, audited, and the template is the enrolment photo's
    assert runtime.visit_shots.of_person(OBAMA) == []
    np.testing.assert_allclose(runtime.gallery.vectors(OBAMA), before, atol=1e-5)
    [dropped] = drops(runtime)
    assert "visit_template" in dropped
    # and a console that sends no purposes at all (an older console) leaves the person without any
    push(applier, 3, person_entry(OBAMA, "奥巴马", [photo_bytes("obama2.jpg")], version=3))
    assert consent_purposes(runtime.store, OBAMA) == frozenset()


def test_a_staged_snapshot_carries_the_purposes_and_keeps_the_shots(
        box: tuple[EdgeRuntime, GalleryApplier], engine: FaceEngine, photo_bytes: Callable[[str], bytes]) -> None:
    runtime, applier = box
    push(applier, 1, entry(OBAMA, "奥巴马", [photo_bytes("obama2.jpg")], ["enrolment", "visit_template"], 1))
    assert confirm_visit(runtime, OBAMA, vector(engine, photo_bytes, "obama.jpg"), 0.0) == 1
    with_shot = runtime.gallery.vectors(OBAMA).copy()
    # when a snapshot of two pages is staged and applied (a box far behind the console)
    stage = applier.stage(9)
    for persons, more in (([entry(OBAMA, "奥巴马", [photo_bytes("obama2.jpg")], ["enrolment", "visit_template"], 9)],
                           True),
                          ([entry(BIDEN, "拜登", [photo_bytes("biden.jpg")], ["enrolment"], 9)], False)):
        body = answer(9, persons, snapshot=True, more=more)
        page, _ = parse_answer(body)
        stage.add(page, list(body["persons"]))
    applier.apply_staged(stage)
    # then both persons' purposes are stored and the first keeps the shot in the template
    assert consent_purposes(runtime.store, OBAMA) == {"enrolment", "visit_template"}
    assert consent_purposes(runtime.store, BIDEN) == {"enrolment"}
    assert len(runtime.visit_shots.of_person(OBAMA)) == 1
    np.testing.assert_allclose(runtime.gallery.vectors(OBAMA), with_shot, atol=1e-5)
