"""The guards of visit shots, on real embeddings and the real store: the switch, the enrolment photo gates, the
safe match, the template's drift, the bound per person (oldest replaced first), the memory bound of unconfirmed
visits, and erasure with the person."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sqlalchemy import delete, func, select

from alerts.envelope import Alert
from edge.config import load_config
from edge.faces.gallery_rebuild import rebuild_gallery
from edge.faces.tracks import LiveShot
from edge.faces.vip_rule import Sighting
from edge.faces.visit_shots import record_consent_purposes
from edge.runtime import EdgeRuntime
from edge.store.db import Person
from edge.store.tables import PersonPhotoRow, PersonRow, VisitShotRow
from tests.edge.conftest import config_dict
from vision.engines.base import FaceEngine
from vision.engines.owner import EnginePool
from vision.enrolment import embed_photo
from vision.types import FaceQuality, FloatArray, Match

GOOD = FaceQuality(score=0.9, size_px=150, size=1.0, blur=1.0, sharpness=80.0, pose=1.0, yaw=0.05, detector=1.2)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def make_box(tmp_path: Path, engine_pool: EnginePool) -> Iterator[Callable[..., EdgeRuntime]]:
    made: list[EdgeRuntime] = []

    def make(**shots: Any) -> EdgeRuntime:
        path = tmp_path / f"smartbranch-{len(made)}.yaml"
        face = {"visit_shots": {"enabled": True, **shots}}
        path.write_text(yaml.safe_dump(config_dict(tmp_path / f"data-{len(made)}", face=face), allow_unicode=True),
                        encoding="utf-8")
        runtime = EdgeRuntime(load_config(path), engine=engine_pool)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.stop()


def vector_of(engine: FaceEngine, photo_bytes: Callable[[str], bytes], name: str) -> FloatArray:
    vector = embed_photo(engine, photo_bytes(name))
    assert vector is not None
    return vector


def visit(runtime: EdgeRuntime, person: Person, vector: FloatArray, *, t: float, quality: FaceQuality = GOOD,
          score: float = 0.975, margin: float = 0.5) -> Alert:
    """A VIP arrival published by the box's rule for a sighting holding ``vector`` as its shot."""
    shot = LiveShot(person.id, vector.astype(np.float32), quality, score, margin)
    sighting = Sighting("door", "正门", 1, Match(person.id, score, margin, 3), datetime.now(UTC), datetime.now(UTC), t,
                        shot)
    alert = runtime.vip_rule.identified(sighting)
    assert alert is not None
    return alert


def confirm(runtime: EdgeRuntime, alert: Alert) -> Any:
    acked = runtime.hub.ack(alert.id, "lobby-1")
    assert acked is not None
    return runtime.visit_shots.of_person(alert.person_id or "")


@pytest.mark.parametrize(("change", "fragment"), [
    ({"quality": replace(GOOD, size_px=60)}, "too small"),
    ({"quality": replace(GOOD, sharpness=5.0)}, "blurred"),
    ({"quality": replace(GOOD, yaw=0.7)}, "turned"),
    ({"quality": replace(GOOD, detector=0.0)}, "weakly"),
    ({"score": 0.96}, "not safe enough"),
    ({"margin": 0.01}, "runner-up"),
])
def test_a_shot_below_the_gates_or_without_a_safe_match_is_refused_and_audited(
        make_box: Callable[..., EdgeRuntime], engine: FaceEngine, photo_bytes: Callable[[str], bytes],
        change: dict[str, Any], fragment: str) -> None:
    runtime = make_box()
    vip = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama2.jpg"), consent="同意")
    record_consent_purposes(runtime.store, vip.id, {"visit_template"})  # the console's consent
    before = runtime.gallery.vectors(vip.id)
    alert = visit(runtime, vip, vector_of(engine, photo_bytes, "obama.jpg"), t=0.0, **change)
    outcome = runtime.visit_shots.confirmed(runtime.store.get_alert(alert.id) or alert)
    assert outcome.shot is None and outcome.reason is not None and fragment in outcome.reason
    assert runtime.visit_shots.of_person(vip.id) == []
    np.testing.assert_array_equal(runtime.gallery.vectors(vip.id), before)
    audit = runtime.review.list_audit(limit=5)
    assert any(e.action == "visit_shot_add" and e.outcome == "refused" and fragment in e.detail for e in audit)


def test_a_shot_that_would_move_the_template_far_from_the_enrolment_photos_is_refused(
        make_box: Callable[..., EdgeRuntime], engine: FaceEngine, photo_bytes: Callable[[str], bytes]) -> None:
    # given a shot of someone else that (wrongly) matched the VIP: Biden's face for Obama
    runtime = make_box()
    vip = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama2.jpg"), consent="同意")
    record_consent_purposes(runtime.store, vip.id, {"visit_template"})  # the console's consent
    alert = visit(runtime, vip, vector_of(engine, photo_bytes, "biden.jpg"), t=0.0)
    # when the visit is confirmed, then the template does not take it
    assert confirm(runtime, alert) == []
    reasons = [e.detail for e in runtime.review.list_audit(limit=5) if e.outcome == "refused"]
    assert any("too far from the enrolment photos" in r for r in reasons)


def test_at_most_max_per_person_shots_are_kept_the_oldest_replaced_and_one_per_visit(
        make_box: Callable[..., EdgeRuntime], engine: FaceEngine, photo_bytes: Callable[[str], bytes]) -> None:
    runtime = make_box(max_per_person=2)
    vip = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama2.jpg"), consent="同意")
    record_consent_purposes(runtime.store, vip.id, {"visit_template"})  # the console's consent
    vectors = [vector_of(engine, photo_bytes, n) for n in ("obama.jpg", "obama3.jpg", "obama.jpg")]
    alerts = [visit(runtime, vip, v, t=1000.0 * (i + 1)) for i, v in enumerate(vectors)]
    kept = []
    for alert in alerts:
        kept = confirm(runtime, alert)
    assert [s.alert_id for s in kept] == [alerts[1].id, alerts[2].id]
    assert len(confirm(runtime, alerts[2])) == 2  # a visit confirmed twice lends one shot
    # and the template is the mean of the enrolment photo and the two kept shots
    enrolled = vector_of(engine, photo_bytes, "obama2.jpg")
    mean = np.mean([enrolled, vectors[1], vectors[2]], axis=0)
    np.testing.assert_allclose(runtime.gallery.vectors(vip.id)[0], mean / np.linalg.norm(mean), atol=1e-4)


def test_unconfirmed_shots_are_bounded_and_expire_and_a_switched_off_box_holds_none(
        make_box: Callable[..., EdgeRuntime], engine: FaceEngine, photo_bytes: Callable[[str], bytes]) -> None:
    runtime = make_box(pending_max=2, pending_ttl_s=60)
    clock = Clock()
    runtime.visit_shots._clock = clock  # the box's monotonic clock, advanced by the test
    vip = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama2.jpg"), consent="同意")
    record_consent_purposes(runtime.store, vip.id, {"visit_template"})  # the console's consent
    vector = vector_of(engine, photo_bytes, "obama.jpg")
    alerts = [visit(runtime, vip, vector, t=1000.0 * (i + 1)) for i in range(3)]
    assert runtime.visit_shots.pending() == 2
    assert confirm(runtime, alerts[0]) == []  # the oldest was dropped
    clock.t = 61
    assert runtime.visit_shots.pending() == 0
    off = make_box(enabled=False)
    other = off.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama2.jpg"), consent="同意")
    record_consent_purposes(off.store, other.id, {"visit_template"})  # the console's consent
    confirm(off, visit(off, other, vector, t=0.0))
    assert off.visit_shots.pending() == 0 and off.visit_shots.of_person(other.id) == []


def test_kept_shots_are_encrypted_and_go_with_the_person(
        make_box: Callable[..., EdgeRuntime], engine: FaceEngine, photo_bytes: Callable[[str], bytes]) -> None:
    runtime = make_box()
    vip = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama2.jpg"), consent="同意")
    record_consent_purposes(runtime.store, vip.id, {"visit_template"})  # the console's consent
    vector = vector_of(engine, photo_bytes, "obama.jpg")
    assert len(confirm(runtime, visit(runtime, vip, vector, t=0.0))) == 1
    with runtime.store.session() as s:
        stored = s.scalars(select(VisitShotRow.vector)).one()
    assert vector.astype("<f4").tobytes()[:64] not in stored
    # when the person is erased as the sync erases them, then their shots are gone too
    with runtime.store.session() as s, s.begin():
        s.execute(delete(PersonPhotoRow).where(PersonPhotoRow.person_id == vip.id))
        s.execute(delete(PersonRow).where(PersonRow.id == vip.id))
    with runtime.store.session() as s:
        assert s.scalar(select(func.count()).select_from(VisitShotRow)) == 0


def test_a_rebuilt_gallery_keeps_the_shots_of_its_model_in_the_template(
        make_box: Callable[..., EdgeRuntime], engine: FaceEngine, photo_bytes: Callable[[str], bytes]) -> None:
    # given a kept shot
    runtime = make_box()
    vip = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama2.jpg"), consent="同意")
    record_consent_purposes(runtime.store, vip.id, {"visit_template"})  # the console's consent
    assert len(confirm(runtime, visit(runtime, vip, vector_of(engine, photo_bytes, "obama.jpg"), t=0.0))) == 1
    with_shot = runtime.gallery.vectors(vip.id)
    # when the gallery is rebuilt from the stored photos (a lost gallery file, a missing person)
    rebuilt, report = rebuild_gallery(store=runtime.store, engine=runtime.engine, gallery_dir=runtime.gallery_dir,
                                      seal=runtime.data.gallery_seal)
    # then the template still includes the shot
    assert report.embedded == 1
    np.testing.assert_allclose(rebuilt.vectors(vip.id), with_shot, atol=1e-5)


def test_a_person_whose_consent_does_not_cover_visit_templates_never_gets_a_shot_on_a_default_box(
        tmp_path: Path, engine_pool: EnginePool, engine: FaceEngine, photo_bytes: Callable[[str], bytes]) -> None:
    # given a box with the default settings (visit shots on) and two VIPs: one whose consent covers template
    # improvement from live visits, one whose consent covers the enrolment only
    path = tmp_path / "smartbranch.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path / "data"), allow_unicode=True), encoding="utf-8")
    runtime = EdgeRuntime(load_config(path), engine=engine_pool)
    try:
        assert runtime.config.face.visit_shots.enabled
        covered = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama2.jpg"), consent="同意")
        record_consent_purposes(runtime.store, covered.id, {"visit_template", "enrolment"})
        plain = runtime.enroller.enrol(name="拜登", tier="钻石", photo=photo_bytes("biden.jpg"), consent="同意")
        record_consent_purposes(runtime.store, plain.id, {"enrolment"})
        before = runtime.gallery.vectors(plain.id)
        # when both are greeted and confirmed
        assert len(confirm(runtime, visit(runtime, covered, vector_of(engine, photo_bytes, "obama.jpg"), t=0.0))) == 1
        alert = visit(runtime, plain, vector_of(engine, photo_bytes, "biden.jpg"), t=1000.0)
        # then the second one's shot was not even held, and nothing was added to their template
        assert runtime.visit_shots.pending() == 0
        assert confirm(runtime, alert) == []
        np.testing.assert_array_equal(runtime.gallery.vectors(plain.id), before)
        # and a shot held before the consent changed is refused at the confirmation, audited
        record_consent_purposes(runtime.store, covered.id, {"enrolment"})
        late = visit(runtime, covered, vector_of(engine, photo_bytes, "obama3.jpg"), t=2000.0)
        assert runtime.visit_shots.pending() == 0 and len(confirm(runtime, late)) == 1
        record_consent_purposes(runtime.store, covered.id, {"visit_template"})
        held = visit(runtime, covered, vector_of(engine, photo_bytes, "obama3.jpg"), t=3000.0)
        record_consent_purposes(runtime.store, covered.id, set())
        outcome = runtime.visit_shots.confirmed(runtime.store.get_alert(held.id) or held)
        assert outcome.shot is None and outcome.reason is not None and "visit_template" in outcome.reason
    finally:
        runtime.stop()
