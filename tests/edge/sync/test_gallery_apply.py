"""The atomic apply of console change sets on a real box: store, MAC-sealed gallery files, FAISS index, plates.

Real photos and the real dlib engine throughout. Templates "made at the console" are made here the same way the
console makes them (vision.enrolment on the same engine); the console itself is in test_console_sync.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from alerts.envelope import AlertDraft, AlertType, CustomerUnattendedPayload
from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from edge.store.datadir import META_GALLERY_FILE
from edge.sync.apply import GalleryApplier
from edge.sync.changes import parse_answer
from tests.edge.sync.helpers import answer, person_entry
from vision.engines.base import FaceEngine
from vision.engines.owner import EnginePool
from vision.enrolment import embed_photo
from vision.gallery import Gallery
from vision.types import FloatArray

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def box(make_config: Callable[..., EdgeConfig], engine_pool: EnginePool) -> Iterator[EdgeRuntime]:
    runtime = EdgeRuntime(make_config(), engine=engine_pool)
    yield runtime
    runtime.stop()


def applier_of(runtime: EdgeRuntime) -> GalleryApplier:
    return GalleryApplier(store=runtime.store, data_dir=runtime.data_dir, gallery=runtime.gallery,
                          engine=runtime.engine, enroller=runtime.enroller, plates=runtime.plates)


def apply(runtime: EdgeRuntime, body: dict[str, object]) -> GalleryApplier:
    applier = applier_of(runtime)
    changes, _ = parse_answer(body)
    applier.apply(changes)
    return applier


def best(gallery: Gallery, engine: FaceEngine, photo: bytes) -> tuple[str | None, float]:
    vector = embed_photo(engine, photo)
    assert vector is not None
    [result] = gallery.search(vector[None, :], k=1)
    return (result.hits[0].person_id, result.hits[0].score) if result.hits else (None, 0.0)


@pytest.fixture(scope="module")
def templates(engine: FaceEngine, photo_bytes: Callable[[str], bytes]) -> dict[str, FloatArray]:
    out = {}
    for name in ("obama.jpg", "biden.jpg"):
        vector = embed_photo(engine, photo_bytes(name))
        assert vector is not None
        out[name] = vector
    return out


def test_a_console_vip_is_stored_found_and_his_plate_registered(
        box: EdgeRuntime, engine: FaceEngine, photo_bytes: Callable[[str], bytes],
        templates: dict[str, FloatArray]) -> None:
    # given a change set with a VIP, two photos, a template of this box's model and a plate
    obama = person_entry("c0ffee" * 5 + "01", "奥巴马", [photo_bytes("obama.jpg"), photo_bytes("obama2.jpg")],
                         template=templates["obama.jpg"], model_id=box.engine.model_id, plates=["京A12345"])
    # when it is applied
    applier = apply(box, answer(7, [obama]))
    pid = obama["id"]
    # then the row, both photos (card photo first), the plate, the gallery and the version moved together
    person = box.store.get_person(pid)
    assert person is not None and person.name == "奥巴马" and person.role == "vip"
    assert box.store.person_photos(pid) == [photo_bytes("obama.jpg"), photo_bytes("obama2.jpg")]
    assert box.plates.matcher.match("京A12345").person_id == pid
    who, score = best(box.gallery, engine, photo_bytes("obama3.jpg"))
    assert who == pid and score > 0.9
    assert applier.version == 7 and pid in applier.synced_ids()
    # and the gallery files the meta points to hold the same entries, sealed
    folder = box.data.gallery_dir
    assert folder.name == box.store.meta(META_GALLERY_FILE) and folder.name.startswith("sync-7-")
    assert Gallery.load(folder, box.engine.model_id, box.engine.dim, seal=box.data.gallery_seal).persons == {pid}


def test_another_model_s_photos_are_embedded_here_and_a_faceless_photo_is_reported(
        box: EdgeRuntime, engine: FaceEngine, photo_bytes: Callable[[str], bytes]) -> None:
    # given one person sent without a template (the console's model is not this box's) and one whose only
    # photo shows no face
    blank = cv2.imencode(".jpg", np.full((240, 320, 3), 127, np.uint8))[1].tobytes()
    biden = person_entry("b" * 32, "拜登", [photo_bytes("biden.jpg")])
    wall = person_entry("d" * 32, "无脸", [blank])
    # when applied
    applier = apply(box, answer(3, [biden, wall]))
    # then the box embedded Biden itself and finds him; the other is stored (card, plates) but reported
    assert best(box.gallery, engine, photo_bytes("biden.jpg"))[0] == "b" * 32
    assert box.store.get_person("d" * 32) is not None and "d" * 32 not in box.gallery.persons
    assert applier.embed_failures() == {"d" * 32: "no_face"}


def test_erasure_removes_the_person_everywhere_and_is_confirmed_once(
        box: EdgeRuntime, engine: FaceEngine, photo_bytes: Callable[[str], bytes],
        templates: dict[str, FloatArray]) -> None:
    pid = "e" * 32
    model = box.engine.model_id
    apply(box, answer(1, [person_entry(pid, "奥巴马", [photo_bytes("obama.jpg")], template=templates["obama.jpg"],
                                       model_id=model, plates=["沪A88888"])]))
    # and an alert about him with a snapshot (a crop on his card)
    snap = box.store.add_snapshot(camera_id="cam", jpeg=photo_bytes("obama2.jpg"))
    now = datetime.now(UTC)
    box.store.append(AlertDraft(
        type=AlertType.CUSTOMER_UNATTENDED, branch_id=box.config.branch.id, camera_id="cam", person_id=pid,
        title="VIP 等候无人接待", captured_at=now,
        payload=CustomerUnattendedPayload(camera_name="柜台", zone="等候区", customer_track=1, waited_s=120,
                                          waiting_since=now, crop_url=f"/api/snapshots/{snap}", escalated=True,
                                          person_id=pid, name="奥巴马", tier="钻石")))
    # when the console erases him
    applier = apply(box, answer(2, erased=[pid]))
    # then no row, photo, plate, snapshot or gallery entry is left, and the erasure waits to be confirmed
    assert box.store.get_person(pid) is None and box.store.person_photos(pid) == []
    assert box.store.snapshot(snap) is None
    assert box.plates.matcher.match("沪A88888").person_id is None
    assert pid not in box.gallery.persons and best(box.gallery, engine, photo_bytes("obama.jpg"))[0] is None
    assert not any(p.person_id == pid for p in box.store.list_plates())
    on_disk = Gallery.load(box.data.gallery_dir, model, box.engine.dim, seal=box.data.gallery_seal)
    assert pid not in on_disk.persons
    assert applier.erased_pending() == [pid]
    applier.confirmed([pid])
    assert applier.erased_pending() == []


def test_a_snapshot_drops_synced_persons_it_no_longer_holds_and_keeps_local_enrolments(
        box: EdgeRuntime, engine: FaceEngine, photo_bytes: Callable[[str], bytes],
        templates: dict[str, FloatArray]) -> None:
    # given a local enrolment on the box and a synced VIP
    local = box.enroller.enrol(name="本地员工", tier="staff", photo=photo_bytes("biden.jpg"), consent="书面同意",
                               role="staff")
    model = box.engine.model_id
    apply(box, answer(4, [person_entry("a" * 32, "奥巴马", [photo_bytes("obama.jpg")],
                                       template=templates["obama.jpg"], model_id=model)]))
    # when a snapshot arrives that no longer holds the VIP (moved out of this branch's scope)
    apply(box, answer(9, [], snapshot=True))
    # then the VIP is gone and the local enrolment stays, in the store and in the gallery
    assert box.store.get_person("a" * 32) is None and "a" * 32 not in box.gallery.persons
    assert box.store.get_person(local.id) is not None
    assert best(box.gallery, engine, photo_bytes("biden.jpg"))[0] == local.id


def _killed_apply(config_path: Path, body: dict[str, object], point: str, tmp_path: Path, *,
                  staged: bool = False) -> None:
    answer_file = tmp_path / f"answer-{point}.json"
    answer_file.write_text(json.dumps(body), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "tests.edge.sync.apply_killee", str(config_path), str(answer_file),
                           point, *(["staged"] if staged else [])], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -9, proc.stdout + proc.stderr
    assert f"KILLED AT {point}" in proc.stdout


@pytest.mark.parametrize(("point", "expect_new"), [("gallery_written", False), ("committed", True)])
def test_kill_9_in_the_middle_of_an_apply_leaves_one_whole_version(
        point: str, expect_new: bool, make_config: Callable[..., EdgeConfig], engine_pool: EnginePool,
        engine: FaceEngine, photo_bytes: Callable[[str], bytes], templates: dict[str, FloatArray],
        tmp_path: Path) -> None:
    config = make_config()
    model = engine.model_id
    obama, biden = "0" * 31 + "1", "0" * 31 + "2"
    runtime = EdgeRuntime(config, engine=engine_pool)
    apply(runtime, answer(1, [person_entry(obama, "奥巴马", [photo_bytes("obama.jpg")],
                                           template=templates["obama.jpg"], model_id=model)]))
    runtime.stop()
    # when another process applies version 2 (Biden in, Obama erased) and is killed -9 at the point
    v2 = answer(2, [person_entry(biden, "拜登", [photo_bytes("biden.jpg")], template=templates["biden.jpg"],
                                 model_id=model)], erased=[obama])
    _killed_apply(tmp_path / "smartbranch.yaml", v2, point, tmp_path)
    # then the box restarts on one whole version: rows, gallery files and version agree
    runtime = EdgeRuntime(config, engine=engine_pool)
    try:
        applier = applier_of(runtime)
        want = {biden} if expect_new else {obama}
        assert applier.version == (2 if expect_new else 1)
        assert {p.id for p in runtime.store.list_persons()} == want
        assert runtime.gallery.persons == want
        assert (best(runtime.gallery, engine, photo_bytes("biden.jpg"))[0] == biden) is expect_new
        # the folder nobody points to any more is removed at start, the one in use stays
        root = runtime.data_dir / "gallery"
        assert len([p for p in root.iterdir() if p.name.startswith("sync-")]) == 2
        applier.clean_orphans()
        assert [p.name for p in root.iterdir() if p.name.startswith("sync-")] == [runtime.data.gallery_dir.name]
        # and the next pull (the same since when the old version stood) completes it
        if not expect_new:
            changes, _ = parse_answer(v2)
            applier.apply(changes)
        assert applier.version == 2 and runtime.gallery.persons == {biden}
        assert runtime.store.get_person(obama) is None
    finally:
        runtime.stop()


@pytest.mark.parametrize(("point", "expect_new"), [("gallery_written", False), ("committed", True)])
def test_kill_9_in_the_middle_of_a_staged_snapshot_apply_leaves_one_whole_version(
        point: str, expect_new: bool, make_config: Callable[..., EdgeConfig], engine_pool: EnginePool,
        engine: FaceEngine, photo_bytes: Callable[[str], bytes], templates: dict[str, FloatArray],
        tmp_path: Path) -> None:
    config = make_config()
    model = engine.model_id
    obama, biden = "0" * 31 + "1", "0" * 31 + "2"
    runtime = EdgeRuntime(config, engine=engine_pool)
    apply(runtime, answer(1, [person_entry(obama, "奥巴马", [photo_bytes("obama.jpg")],
                                           template=templates["obama.jpg"], model_id=model)]))
    runtime.stop()
    # when another process stages a snapshot of version 2 (Biden only: Obama dropped) and is killed -9 in its apply
    v2 = answer(2, [person_entry(biden, "拜登", [photo_bytes("biden.jpg"), photo_bytes("t1.jpg")],
                                 template=templates["biden.jpg"], model_id=model)], snapshot=True)
    _killed_apply(tmp_path / "smartbranch.yaml", v2, point, tmp_path, staged=True)
    # then the box restarts on one whole version: rows, photos, gallery and version agree
    runtime = EdgeRuntime(config, engine=engine_pool)
    try:
        applier = applier_of(runtime)
        want = {biden} if expect_new else {obama}
        assert applier.version == (2 if expect_new else 1)
        assert {p.id for p in runtime.store.list_persons()} == want
        assert runtime.gallery.persons == want
        assert runtime.store.person_photos(obama) == ([] if expect_new else [photo_bytes("obama.jpg")])
        # and the next pull stages the snapshot anew and completes it, the staged photos stored as they were sent
        if not expect_new:
            changes, _ = parse_answer(v2)
            stage = applier.stage(2)
            stage.add(changes, list(v2["persons"]))
            applier.apply_staged(stage)
        assert applier.version == 2 and runtime.gallery.persons == {biden}
        assert runtime.store.get_person(obama) is None
        assert runtime.store.person_photos(biden) == [photo_bytes("biden.jpg"), photo_bytes("t1.jpg")]
    finally:
        runtime.stop()
