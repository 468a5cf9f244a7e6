"""Templates that grow from confirmed visits, end to end on real photos: a VIP enrolled from one photo is greeted,
the lobby manager confirms (「已接待」, the real ack route), the visit's best shot joins the template, and a later
visit in harder conditions (smaller, darker, blurred frames of another photo) is decided where it was not before;
the shot is listed on the person, and undoing it brings the old template back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from alerts.envelope import Alert
from edge.api.app import create_app
from edge.cameras.config import CameraConfig
from edge.config import EdgeConfig, load_config
from edge.faces.pipeline import FacePipeline
from edge.faces.visit_shots import record_consent_purposes
from edge.runtime import EdgeRuntime
from tests.edge.conftest import ENROLLER_TOKEN, LOBBY_TOKEN, config_dict
from vision.engines.owner import EnginePool
from vision.types import Frame, Image

CAMERA = CameraConfig.model_validate({"id": "door", "name": "正门", "role": "entrance",
                                      "source": {"url": "file:x.mp4"}})


def scene(image: Image, face_height: int, *, dark: float = 1.0, blur: float = 0.0) -> Image:
    """A 720p frame holding ``image`` scaled to ``face_height`` px tall, darkened and blurred as a whole."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * face_height / h)), face_height), interpolation=cv2.INTER_AREA)
    canvas = np.full((720, 1280, 3), 170, np.uint8)
    y, x = (720 - small.shape[0]) // 2, (1280 - small.shape[1]) // 2
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    blurred = cv2.GaussianBlur(canvas, (0, 0), blur) if blur else canvas
    out: Image = np.clip(blurred.astype(np.float32) * dark, 0, 255).astype(np.uint8)
    return out


def play(runtime: EdgeRuntime, image: Image, t0: float, n: int = 10) -> list[Alert]:
    """One visit: ``n`` frames of ``image`` through a fresh entrance pipeline of the box, alerts as published."""
    pipeline = FacePipeline(CAMERA, runtime.config.face, engine=runtime.engine, gallery=runtime.adaptation,
                            rule=runtime.vip_rule)
    alerts: list[Alert] = []
    for i in range(n):
        for sighting in pipeline.process(Frame("door", i + 1, datetime.now(UTC), t0 + i * 0.1, image)):
            alert = runtime.vip_rule.identified(sighting)
            if alert is not None:
                alerts.append(alert)
    return alerts


@pytest.fixture()
def box(tmp_path: Path, engine_pool: EnginePool) -> Iterator[tuple[EdgeRuntime, TestClient]]:
    face = {"visit_shots": {"enabled": True, "min_score_gain": 0.005}}
    path = tmp_path / "smartbranch.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path / "data", face=face), allow_unicode=True), encoding="utf-8")
    config: EdgeConfig = load_config(path)
    runtime = EdgeRuntime(config, engine=engine_pool)
    with TestClient(create_app(runtime, start_cameras=False)) as client:
        yield runtime, client
    runtime.stop()


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_confirmed_visit_grows_the_template_and_a_harder_visit_is_then_decided(
        box: tuple[EdgeRuntime, TestClient], photo: Callable[[str], Image],
        photo_bytes: Callable[[str], bytes]) -> None:
    runtime, client = box
    # given a VIP enrolled from one photo (obama2.jpg)
    vip = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama2.jpg"), consent="测试同意记录")
    record_consent_purposes(runtime.store, vip.id, {"visit_template"})  # the console's consent
    before = runtime.gallery.vectors(vip.id)
    hard = scene(photo("obama3.jpg"), 600, dark=0.5, blur=1.5)  # another photo: a ~72 px face, dark, blurred
    # and a hard visit that the enrolment photo alone does not decide
    assert play(runtime, hard, t0=0.0) == []
    # when the VIP walks in clearly (obama.jpg), is greeted, and the lobby manager confirms on the terminal
    greeted = play(runtime, scene(photo("obama.jpg"), 600), t0=1000.0)
    assert [a.person_id for a in greeted] == [vip.id]
    response = client.post(f"/api/alerts/{greeted[0].id}/ack", headers=headers(LOBBY_TOKEN))
    assert response.status_code == 200, response.text
    # then the visit's shot is on the person, with who confirmed it, and the template changed
    listed = client.get(f"/api/persons/{vip.id}/visit-shots", headers=headers(ENROLLER_TOKEN))
    assert listed.status_code == 200, listed.text
    shots = listed.json()
    assert [(s["alert_id"], s["confirmed_by"]) for s in shots] == [(greeted[0].id, "lobby-1")]
    after = runtime.gallery.vectors(vip.id)
    assert after.shape == (1, before.shape[1]) and float(after[0] @ before[0]) < 0.9999
    # and a second confirmation of the same visit adds nothing
    client.post(f"/api/alerts/{greeted[0].id}/ack", headers=headers(LOBBY_TOKEN))
    assert len(client.get(f"/api/persons/{vip.id}/visit-shots", headers=headers(ENROLLER_TOKEN)).json()) == 1
    # and the hard visit, later, is now decided as the VIP
    assert [a.person_id for a in play(runtime, hard, t0=5000.0)] == [vip.id]
    # when the addition is undone, then the shot is gone and the enrolment template is back
    undone = client.delete(f"/api/visit-shots/{shots[0]['id']}", headers=headers(ENROLLER_TOKEN))
    assert undone.status_code == 200, undone.text
    assert client.get(f"/api/persons/{vip.id}/visit-shots", headers=headers(ENROLLER_TOKEN)).json() == []
    np.testing.assert_allclose(runtime.gallery.vectors(vip.id), before, atol=1e-5)
    assert play(runtime, hard, t0=9000.0) == []
    # and both the addition and the undo are in the audit log
    actions = [(e.action, e.outcome) for e in runtime.review.list_audit(limit=20)]
    assert ("visit_shot_add", "ok") in actions and ("visit_shot_undo", "ok") in actions
