"""Consent purposes from a real console to a real box over loopback HTTP: a VIP enrolled at the console gets no
visit shot until a consent record covering template improvement from live visits is added (through the console's
API); then a confirmed visit lends its shot, and a console update of the person keeps it in the template."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from console.enrolment import PersonChanges, update_person
from edge.cli.main import main
from edge.config import EdgeConfig, load_config
from edge.faces.tracks import LiveShot
from edge.faces.vip_rule import Sighting
from edge.faces.visit_shots import consent_purposes
from edge.runtime import EdgeRuntime
from tests.console.conftest import add_token, add_user
from tests.edge.sync.live_console import LiveConsole, live_console
from tests.waiting import wait_for
from vision.engines.base import FaceEngine
from vision.engines.owner import EnginePool
from vision.enrolment import embed_photo
from vision.types import FaceQuality, Match

__all__ = ["live_console"]  # the fixture, imported for pytest

GOOD = FaceQuality(score=0.9, size_px=150, size=1.0, blur=1.0, sharpness=80.0, pose=1.0, yaw=0.05, detector=1.2)


@pytest.fixture()
def box(make_config: Callable[..., EdgeConfig], tmp_path: Path, engine_pool: EnginePool,
        live_console: LiveConsole) -> Iterator[EdgeRuntime]:
    make_config(sync={"long_poll_s": 2, "status_interval_s": 1})
    path = tmp_path / "smartbranch.yaml"
    code = live_console.code("A001")
    assert main(["edge", "register", "--config", str(path), "--console", live_console.url, "--code", code]) == 0
    runtime = EdgeRuntime(load_config(path), engine=engine_pool)
    runtime.start()
    yield runtime
    runtime.stop()


def console_version(console: LiveConsole) -> int:
    from console.sync.feed import current_version

    with console.ctx.db.transaction() as session:
        return current_version(session)


def applied(runtime: EdgeRuntime, version: int) -> Callable[[], bool]:
    return lambda: runtime.sync is not None and runtime.sync.applier.version >= version


def confirm_visit(runtime: EdgeRuntime, person_id: str, engine: FaceEngine, photo: bytes, t: float) -> int:
    vector = embed_photo(engine, photo)
    assert vector is not None
    live = LiveShot(person_id, vector, GOOD, 0.975, 0.5)
    alert = runtime.vip_rule.identified(Sighting("door", "正门", 1, Match(person_id, 0.975, 0.5, 3),
                                                 datetime.now(UTC), datetime.now(UTC), t, live))
    assert alert is not None and runtime.hub.ack(alert.id, "lobby-1") is not None
    return len(runtime.visit_shots.of_person(person_id))


def test_a_console_consent_for_visit_templates_reaches_the_box_and_an_update_keeps_the_shot(
        live_console: LiveConsole, box: EdgeRuntime, engine: FaceEngine,
        photo_bytes: Callable[[str], bytes]) -> None:
    # given a VIP enrolled at the console from one photo, with the enrolment's consent record only
    vip = live_console.enrol("奥巴马", [photo_bytes("obama2.jpg")], ("A001",))
    wait_for(applied(box, console_version(live_console)), what="the first snapshot")
    assert consent_purposes(box.store, vip) == {"enrolment"}
    # when a visit is confirmed, then no shot is taken
    assert confirm_visit(box, vip, engine, photo_bytes("obama.jpg"), 0.0) == 0
    # when an enroller adds a consent record that covers template improvement from live visits
    token = add_token(live_console.ctx, add_user(live_console.ctx, "enr", "enroller"))
    answer = httpx.post(f"{live_console.url}/api/persons/{vip}/consents", headers={"Authorization": f"Bearer {token}"},
                        data={"purpose": "以到访照片改进识别", "given_on": "2026-12-01", "operator": "柜员甲",
                              "covers": "visit_template"}, timeout=30)
    assert answer.status_code == 201, answer.text
    wait_for(applied(box, console_version(live_console)), what="the consent's change")
    # then the box holds the purpose, and the next confirmed visit lends its shot
    assert consent_purposes(box.store, vip) == {"enrolment", "visit_template"}
    assert confirm_visit(box, vip, engine, photo_bytes("obama.jpg"), 1000.0) == 1
    with_shot = box.gallery.vectors(vip).copy()
    # when the console renames the person, then the box keeps the shot in the template
    update_person(live_console.ctx, live_console.admin(), vip, PersonChanges(name="奥巴马先生"))
    wait_for(applied(box, console_version(live_console)), what="the update")
    person = box.store.get_person(vip)
    assert person is not None and person.name == "奥巴马先生"
    assert len(box.visit_shots.of_person(vip)) == 1
    np.testing.assert_allclose(box.gallery.vectors(vip), with_shot, atol=1e-5)
