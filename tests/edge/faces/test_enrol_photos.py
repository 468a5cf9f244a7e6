"""Extra enrolment photos on real photos: POST /api/persons/{id}/photos makes one mean template per person."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient

import edge.faces.enrol
from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from tests.edge.conftest import ENROLLER_TOKEN, LOBBY_TOKEN
from tests.edge.faces.test_enrol_api import bad_photos
from vision.engines.base import DlibEngineConfig, FaceEngine
from vision.engines.owner import EnginePool
from vision.engines.registry import build_engine
from vision.enrolment import embed_largest_face, mean_template
from vision.gallery import Gallery
from vision.types import FloatArray, Image

AUTH = {"Authorization": f"Bearer {ENROLLER_TOKEN}"}
FORM = {"tier": "钻石", "consent": "2026-11-28 柜面书面同意"}


def enrol(client: TestClient, name: str, data: bytes) -> str:
    response = client.post("/api/persons", headers=AUTH, data={**FORM, "name": name},
                           files={"photo": ("p.jpg", data, "image/jpeg")})
    assert response.status_code == 201, response.text
    assert response.json()["photos"] == 1
    return str(response.json()["id"])


def add(client: TestClient, person_id: str, data: bytes, headers: dict[str, str] = AUTH) -> dict[str, object]:
    response = client.post(f"/api/persons/{person_id}/photos", headers=headers,
                           files={"photo": ("p.jpg", data, "image/jpeg")})
    return {"status": response.status_code, **response.json()}


def embedding(engine: FaceEngine, image: Image) -> FloatArray:
    vector = embed_largest_face(engine, image)
    assert vector is not None
    return vector


def test_second_photo_gives_one_mean_template(client: TestClient, runtime: EdgeRuntime, engine: FaceEngine,
                                              photo: Callable[[str], Image],
                                              photo_bytes: Callable[[str], bytes]) -> None:
    # given Obama enrolled from one photo
    obama = enrol(client, "奥巴马", photo_bytes("obama.jpg"))
    # when a second photo of him is added
    answer = add(client, obama, photo_bytes("obama2.jpg"))
    # then it is accepted, and the gallery holds ONE vector for him: the normalised mean of both embeddings
    assert answer["status"] == 201, answer
    assert answer["id"] == obama and answer["photos"] == 2
    expected = mean_template([embedding(engine, photo("obama.jpg")), embedding(engine, photo("obama2.jpg"))])
    stored = runtime.gallery.vectors(obama)
    assert stored.shape == (1, engine.dim)
    np.testing.assert_allclose(stored[0], expected, atol=1e-5)
    assert len(runtime.gallery) == 1
    # and both photos are kept, the primary first, the extra one encrypted at rest
    assert runtime.store.person_photos(obama) == [photo_bytes("obama.jpg"), photo_bytes("obama2.jpg")]
    db = sqlite3.connect(runtime.data_dir / "edge.db")
    [(blob,)] = db.execute("select photo from person_photos").fetchall()
    db.close()
    assert photo_bytes("obama2.jpg")[:64] not in blob
    # and the listing counts the photos, the lobby card still shows the first one
    listed = client.get("/api/persons", headers=AUTH).json()
    assert [(p["id"], p["photos"]) for p in listed] == [(obama, 2)]
    card = client.get(f"/api/persons/{obama}/photo", headers={"Authorization": f"Bearer {LOBBY_TOKEN}"})
    assert card.content == photo_bytes("obama.jpg")
    # and the template still finds him in a third photo
    best = runtime.gallery.search(embedding(engine, photo("obama3.jpg"))[None, :])[0].best
    assert best is not None and best.person_id == obama


@pytest.mark.parametrize(("enrolled", "target", "upload", "status", "code"), [
    # refused by who is in the photo
    (("obama.jpg",), "obama.jpg", "biden.jpg", 409, "not_same_person"),
    (("obama.jpg", "biden.jpg"), "biden.jpg", "obama2.jpg", 409, "duplicate"),
    (("obama.jpg",), "obama.jpg", "obama.jpg", 409, "duplicate_photo"),
    (("obama.jpg",), "nobody", "obama2.jpg", 404, "not_found"),
    # the same bad input as POST /api/persons, with the same codes
    (("obama.jpg",), "obama.jpg", "not_an_image", 415, "not_an_image"),
    (("obama.jpg",), "obama.jpg", "empty", 415, "empty"),
    (("obama.jpg",), "obama.jpg", "truncated", 415, "truncated"),
    (("obama.jpg",), "obama.jpg", "no_face", 422, "no_face"),
    (("obama.jpg",), "obama.jpg", "multiple_faces", 422, "multiple_faces"),
    (("obama.jpg",), "obama.jpg", "face_too_small", 422, "face_too_small"),
    (("obama.jpg",), "obama.jpg", "blurred", 422, "blurred"),
    (("obama.jpg",), "obama.jpg", "oversized", 413, "too_large"),
])
def test_refused_photo_names_the_reason_and_changes_nothing(
        enrolled: tuple[str, ...], target: str, upload: str, status: int, code: str, client: TestClient,
        runtime: EdgeRuntime, photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes]) -> None:
    # given some persons enrolled from one photo each
    ids = {name: enrol(client, name, photo_bytes(name)) for name in enrolled}
    before = {pid: runtime.gallery.vectors(pid) for pid in ids.values()}
    files_before = {p.name: p.read_bytes() for p in runtime.gallery_dir.iterdir()}
    bad = bad_photos(photo, photo_bytes)
    bad["oversized"] = b"\xff\xd8\xff" + b"0" * runtime.enroller.policy.max_bytes
    data = bad[upload] if upload in bad else photo_bytes(upload)
    # when the photo is added to the target
    answer = add(client, ids.get(target, "0" * 32), data)
    # then it is refused with its reason
    assert answer["status"] == status, answer
    detail = answer["detail"]
    assert isinstance(detail, dict) and detail["code"] == code and detail["message"]
    if code == "duplicate":  # naming the person the face belongs to
        assert detail["person_id"] == ids["obama.jpg"]
        assert detail["score"] >= runtime.config.face.voter.threshold
    if code == "not_same_person":  # with the similarity to the person it was meant for
        assert detail["person_id"] == ids[target] and detail["score"] < runtime.config.face.voter.threshold
    # and nothing changed: photos, gallery in memory and on disk
    assert all(runtime.store.count_person_photos(pid) == 1 for pid in ids.values())
    for pid, vectors in before.items():
        np.testing.assert_array_equal(runtime.gallery.vectors(pid), vectors)
    assert {p.name: p.read_bytes() for p in runtime.gallery_dir.iterdir()} == files_before


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), ({"Authorization": f"Bearer {LOBBY_TOKEN}"}, 403),
])
def test_adding_a_photo_needs_an_enroller_token(headers: dict[str, str], status: int, client: TestClient,
                                                photo_bytes: Callable[[str], bytes]) -> None:
    obama = enrol(client, "奥巴马", photo_bytes("obama.jpg"))
    assert add(client, obama, photo_bytes("obama2.jpg"), headers)["status"] == status


def test_photos_per_person_are_capped(client: TestClient, runtime: EdgeRuntime, monkeypatch: pytest.MonkeyPatch,
                                      photo_bytes: Callable[[str], bytes]) -> None:
    # given a cap of two photos (5 in production) and Obama with two
    monkeypatch.setattr(edge.faces.enrol, "MAX_PHOTOS", 2)
    obama = enrol(client, "奥巴马", photo_bytes("obama.jpg"))
    assert add(client, obama, photo_bytes("obama2.jpg"))["status"] == 201
    # when a third is added
    answer = add(client, obama, photo_bytes("obama3.jpg"))
    # then it is refused and not stored
    assert answer["status"] == 422 and answer["detail"]["code"] == "too_many_photos"  # type: ignore[index]
    assert runtime.store.count_person_photos(obama) == 2


def test_failed_gallery_save_leaves_database_and_gallery_unchanged(
        runtime: EdgeRuntime, monkeypatch: pytest.MonkeyPatch, photo_bytes: Callable[[str], bytes]) -> None:
    # given Obama enrolled, his gallery entry and files
    obama = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama.jpg"), consent="c")
    before = runtime.gallery.vectors(obama.id)
    files_before = {p.name: p.read_bytes() for p in runtime.gallery_dir.iterdir()}

    # when saving the gallery fails while a second photo is added
    def broken_save(self: Gallery, folder: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Gallery, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        runtime.enroller.add_photo(person_id=obama.id, photo=photo_bytes("obama2.jpg"))
    # then neither the photo row nor the gallery changed
    assert runtime.store.count_person_photos(obama.id) == 1
    np.testing.assert_array_equal(runtime.gallery.vectors(obama.id), before)
    assert {p.name: p.read_bytes() for p in runtime.gallery_dir.iterdir()} == files_before


@pytest.fixture(scope="module")
def engine_no_tta() -> FaceEngine:
    return build_engine(DlibEngineConfig(tta="none"))


@pytest.mark.parametrize("cause", ["gallery_deleted", "model_changed"])
def test_rebuild_reproduces_the_mean_template(
        cause: str, make_config: Callable[..., EdgeConfig], engine: FaceEngine, engine_pool: EnginePool,
        engine_no_tta: FaceEngine,
        photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes], caplog: pytest.LogCaptureFixture) -> None:
    # given Obama enrolled from two photos, plus a stored extra photo that no longer gives a face
    config = make_config()
    first = EdgeRuntime(config, engine=engine_pool)
    obama = first.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama.jpg"), consent="c")
    first.enroller.add_photo(person_id=obama.id, photo=photo_bytes("obama2.jpg"))
    faceless = bad_photos(photo, photo_bytes)["no_face"]
    with first.store.session() as session, session.begin():
        first.store.add_person_photo(session, person_id=obama.id, photo=faceless, photo_sha256="0" * 64)
    first.stop()
    # when the gallery files are deleted, or the edge starts with another face model
    if cause == "gallery_deleted":
        for path in first.gallery_dir.iterdir():
            path.unlink()
    current = engine if cause == "gallery_deleted" else engine_no_tta
    again = EdgeRuntime(config, engine=engine_pool if cause == "gallery_deleted" else engine_no_tta)
    # then the rebuilt gallery holds one mean template of the photos that give a face, and says so
    expected = mean_template([embedding(current, photo("obama.jpg")), embedding(current, photo("obama2.jpg"))])
    stored = again.gallery.vectors(obama.id)
    again.stop()
    assert stored.shape == (1, current.dim)
    np.testing.assert_allclose(stored[0], expected, atol=1e-5)
    assert "1 of 3 photos of person" in caplog.text
