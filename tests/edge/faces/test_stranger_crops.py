""""This was X" (这是某某): a VIP enrolled from one photo walks in under harder conditions and is not decided; the
box keeps the unknown track's best crop (opt-in, encrypted, short-lived); the lobby manager marks it as the VIP
through the real API; the shot joins the template the way a confirmed visit's does, and the VIP's next visit
is decided; the undo takes it away. And the crops' own store: off by default, encrypted, purged on schedule and
at start, bounded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alerts.envelope import Alert
from edge.api.app import create_app
from edge.config import EdgeConfig, load_config
from edge.faces.config import StrangerCropSettings
from edge.faces.pipeline import FacePipeline
from edge.faces.stranger_crops import StrangerCropRow, StrangerCrops
from edge.faces.visit_shots import record_consent_purposes
from edge.runtime import EdgeRuntime
from tests.edge.conftest import ENROLLER_TOKEN, LOBBY_TOKEN, config_dict
from tests.edge.faces.test_visit_shots import CAMERA, scene
from vision.engines.owner import EnginePool
from vision.types import Frame, Image

PNG = b"\x89PNG\r\n\x1a\n"


def grainy(image: Image, sigma: float = 6.0) -> Image:
    """A soft, noisy camera: the scene with fixed Gaussian sensor noise."""
    noise = np.random.default_rng(7).normal(0.0, sigma, image.shape)
    out: Image = np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return out


def play(runtime: EdgeRuntime, image: Image, t0: float, n: int = 10) -> list[Alert]:
    """One visit of ``n`` frames through an entrance pipeline that hands its unknown tracks to the box's crop
    store, then an empty frame after the track's time-out, which ends the track."""
    pipeline = FacePipeline(CAMERA, runtime.config.face, engine=runtime.engine, gallery=runtime.adaptation,
                            rule=runtime.vip_rule, strangers=runtime.stranger_crops.keep)
    empty = np.full_like(image, 170)
    frames = [(image, t0 + i * 0.1) for i in range(n)] + [(empty, t0 + n * 0.1 + 5.0)]
    alerts: list[Alert] = []
    for i, (frame_image, t) in enumerate(frames):
        for sighting in pipeline.process(Frame("door", i + 1, datetime.now(UTC), t, frame_image)):
            alert = runtime.vip_rule.identified(sighting)
            if alert is not None:
                alerts.append(alert)
    return alerts


def make_runtime(tmp_path: Path, engine_pool: EnginePool, **face: Any) -> EdgeRuntime:
    path = tmp_path / "smartbranch.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path / "data", face=face), allow_unicode=True), encoding="utf-8")
    config: EdgeConfig = load_config(path)
    return EdgeRuntime(config, engine=engine_pool)


@pytest.fixture()
def box(tmp_path: Path, engine_pool: EnginePool) -> Iterator[tuple[EdgeRuntime, TestClient]]:
    runtime = make_runtime(tmp_path, engine_pool, stranger_crops={"keep_minutes": 10})
    with TestClient(create_app(runtime, start_cameras=False)) as client:
        yield runtime, client
    runtime.stop()


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_manager_marks_a_missed_vip_and_the_next_visit_is_decided_until_the_undo(
        box: tuple[EdgeRuntime, TestClient], photo: Callable[[str], Image],
        photo_bytes: Callable[[str], bytes]) -> None:
    runtime, client = box
    # given a VIP enrolled from one photo, whose consent covers template improvement from visits, and another VIP
    vip = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama2.jpg"), consent="测试同意记录")
    record_consent_purposes(runtime.store, vip.id, {"enrolment", "visit_template"})
    other = runtime.enroller.enrol(name="拜登", tier="金卡", photo=photo_bytes("biden.jpg"), consent="测试同意记录")
    record_consent_purposes(runtime.store, other.id, {"enrolment", "visit_template"})
    before = runtime.gallery.vectors(vip.id)
    # when the VIP walks in under harder conditions (another photo, a ~104 px face, a soft and grainy camera)
    hard = grainy(scene(photo("obama.jpg"), 460, blur=1.6))
    assert play(runtime, hard, t0=0.0) == []
    # then the box was not sure (a stranger to it) and kept the track's crop
    listed = client.get("/api/stranger-crops", headers=headers(LOBBY_TOKEN))
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["keep_minutes"] == 10 and len(body["crops"]) == 1
    assert sorted(v["id"] for v in body["vips"]) == sorted([vip.id, other.id])
    crop = body["crops"][0]
    image = client.get(crop["image_url"], headers=headers(LOBBY_TOKEN))
    assert image.status_code == 200 and image.content.startswith(PNG)
    assert image.headers["cache-control"] == "no-store"
    # when the lobby manager marks it "this was X" with the wrong VIP, then it is refused and audited
    wrong = client.post(f"/api/stranger-crops/{crop['id']}/mark", json={"person_id": other.id, "by": "王经理"},
                        headers=headers(LOBBY_TOKEN))
    assert wrong.status_code == 409 and wrong.json()["detail"]["code"] == "shot_refused", wrong.text
    assert "not close enough" in wrong.json()["detail"]["message"]
    # and a VIP whose consent does not cover template improvement is not offered at all
    record_consent_purposes(runtime.store, other.id, {"enrolment"})
    offered = client.get("/api/stranger-crops", headers=headers(LOBBY_TOKEN)).json()["vips"]
    assert [v["id"] for v in offered] == [vip.id]
    # and with the right VIP, then the shot joins the template, recorded under the manager's name
    marked = client.post(f"/api/stranger-crops/{crop['id']}/mark", json={"person_id": vip.id, "by": "王经理"},
                         headers=headers(LOBBY_TOKEN))
    assert marked.status_code == 201, marked.text
    shots = client.get(f"/api/persons/{vip.id}/visit-shots", headers=headers(ENROLLER_TOKEN)).json()
    assert [(s["alert_id"], s["confirmed_by"]) for s in shots] == [(crop["id"], "王经理")]
    assert float(runtime.gallery.vectors(vip.id)[0] @ before[0]) < 0.9999
    # and the used crop is gone
    assert client.get("/api/stranger-crops", headers=headers(LOBBY_TOKEN)).json()["crops"] == []
    # and the VIP's next visit in the same conditions is decided
    assert [a.person_id for a in play(runtime, hard, t0=5000.0)] == [vip.id]
    # when the addition is undone, then the template is the enrolment photo's again and the visit undecided
    assert client.delete(f"/api/visit-shots/{shots[0]['id']}", headers=headers(ENROLLER_TOKEN)).status_code == 200
    np.testing.assert_allclose(runtime.gallery.vectors(vip.id), before, atol=1e-5)
    assert play(runtime, hard, t0=9000.0) == []
    # and the marking, the refusal and the undo are audited with who did them
    audit = [(e.actor, e.action, e.outcome) for e in runtime.review.list_audit(limit=50)]
    assert ("王经理", "visit_shot_add", "ok") in audit and ("王经理", "visit_shot_add", "refused") in audit
    assert ("enroller-1", "visit_shot_undo", "ok") in audit


def test_a_box_keeps_no_crop_by_default_and_the_routes_say_so(
        tmp_path: Path, engine_pool: EnginePool, photo: Callable[[str], Image],
        photo_bytes: Callable[[str], bytes]) -> None:
    runtime = make_runtime(tmp_path, engine_pool)
    try:
        assert not runtime.stranger_crops.enabled
        runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama2.jpg"), consent="测试同意记录")
        assert play(runtime, grainy(scene(photo("obama.jpg"), 460, blur=1.6)), t0=0.0) == []
        with runtime.store.session() as s:
            assert s.scalar(select(func.count()).select_from(StrangerCropRow)) == 0
        with TestClient(create_app(runtime, start_cameras=False)) as client:
            body = client.get("/api/stranger-crops", headers=headers(LOBBY_TOKEN)).json()
            assert body == {"keep_minutes": 0.0, "crops": [], "vips": []}
            missing = client.post("/api/stranger-crops/nope/mark", json={"person_id": "x"},
                                  headers=headers(LOBBY_TOKEN))
            assert missing.status_code == 404
    finally:
        runtime.stop()


class Now:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


def test_crops_are_encrypted_bounded_and_purged_on_schedule_and_at_start(
        tmp_path: Path, engine_pool: EnginePool, photo: Callable[[str], Image]) -> None:
    runtime = make_runtime(tmp_path, engine_pool, stranger_crops={"keep_minutes": 5, "max_crops": 2})
    try:
        now = Now()
        crops = StrangerCrops(StrangerCropSettings(keep_minutes=5, max_crops=2), store=runtime.store,
                              policy=runtime.enroller.policy, now=now)
        # given three unknown tracks' crops, a minute apart
        pipeline = FacePipeline(CAMERA, runtime.config.face, engine=runtime.engine, gallery=runtime.adaptation,
                                rule=runtime.vip_rule, strangers=crops.keep)
        image = scene(photo("tom_hanks.png"), 500)
        for k in range(3):
            now.at += timedelta(minutes=1)
            for i, frame in enumerate([image] * 3 + [np.full_like(image, 170)]):
                pipeline.process(Frame("door", 10 * k + i + 1, now.at, 100.0 * k + (i if i < 3 else 10), frame))
        # then only the newest two are kept, as encrypted images
        kept = crops.recent()
        assert len(kept) == 2 and kept[0].created_at > kept[1].created_at
        with runtime.store.session() as s:
            stored = list(s.scalars(select(StrangerCropRow.image)))
        assert all(PNG not in blob for blob in stored)
        assert all((crops.image(c.id) or b"").startswith(PNG) for c in kept)
        # when their time is up, then the schedule's purge drops them
        now.at += timedelta(minutes=4, seconds=30)
        assert crops.purge() == 1 and len(crops.recent()) == 1
        # and a box started with the store switched off drops whatever an earlier run left
        StrangerCrops(StrangerCropSettings(keep_minutes=0), store=runtime.store, policy=runtime.enroller.policy)
        with runtime.store.session() as s:
            assert s.scalar(select(func.count()).select_from(StrangerCropRow)) == 0
    finally:
        runtime.stop()
