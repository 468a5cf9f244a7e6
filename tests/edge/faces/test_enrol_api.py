"""Enrolment through POST /api/persons on real photos: good photos are stored, bad ones refused whole."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from edge.runtime import EdgeRuntime
from tests.edge.conftest import ENROLLER_TOKEN, IT_TOKEN, LOBBY_TOKEN
from vision.engines.base import FaceEngine
from vision.engines.owner import EnginePool
from vision.types import Image

AUTH = {"Authorization": f"Bearer {ENROLLER_TOKEN}"}
FORM = {"name": "王五", "tier": "白金", "consent": "2026-11-28 柜面书面同意"}


def jpeg(image: Image) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


def bad_photos(photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes]) -> dict[str, bytes]:
    obama = photo("obama.jpg")
    biden = photo("biden.jpg")
    h = obama.shape[0]
    biden_scaled = cv2.resize(biden, (int(biden.shape[1] * h / biden.shape[0]), h))
    small = cv2.resize(obama, None, fx=0.17, fy=0.17, interpolation=cv2.INTER_AREA)
    raw = photo_bytes("obama.jpg")
    return {
        "not_an_image": b"%PDF-1.4\n% not a photo\n" * 20,
        "empty": b"",
        "truncated": raw[: len(raw) // 2],
        "no_face": jpeg(np.ascontiguousarray(obama[int(h * 0.62):, :])),  # the suit, below the chin
        "multiple_faces": jpeg(np.hstack([obama, biden_scaled])),
        "face_too_small": jpeg(small),
        "blurred": jpeg(cv2.GaussianBlur(obama, (0, 0), 6)),
    }


@pytest.mark.parametrize(("code", "status"), [
    ("not_an_image", 415), ("empty", 415), ("truncated", 415), ("no_face", 422),
    ("multiple_faces", 422), ("face_too_small", 422), ("blurred", 422),
])
def test_bad_photo_is_refused_with_reason_and_nothing_is_stored(
        code: str, status: int, client: TestClient, runtime: EdgeRuntime,
        photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes]) -> None:
    # given a bad photo
    data = bad_photos(photo, photo_bytes)[code]
    # when it is uploaded for enrolment
    response = client.post("/api/persons", headers=AUTH, data=FORM, files={"photo": ("p.jpg", data, "image/jpeg")})
    # then the reason is named and nothing was written
    assert response.status_code == status, response.text
    assert response.json()["detail"]["code"] == code
    assert response.json()["detail"]["message"]
    assert runtime.store.count_persons() == 0
    assert len(runtime.gallery) == 0
    assert not list(runtime.gallery_dir.glob("*")) if runtime.gallery_dir.exists() else True


def test_oversized_upload_is_refused(client: TestClient, runtime: EdgeRuntime) -> None:
    limit = runtime.enroller.policy.max_bytes
    response = client.post("/api/persons", headers=AUTH, data=FORM,
                           files={"photo": ("big.jpg", b"\xff\xd8\xff" + b"0" * limit, "image/jpeg")})
    assert response.status_code == 413
    assert response.json()["detail"]["code"] == "too_large"
    assert runtime.store.count_persons() == 0


@pytest.mark.parametrize(("form", "code"), [
    ({**FORM, "consent": "  "}, "no_consent"),
    ({**FORM, "name": " "}, "bad_name"),
    ({**FORM, "role": "boss"}, "bad_role"),
])
def test_bad_fields_are_refused(form: dict[str, str], code: str, client: TestClient, runtime: EdgeRuntime,
                                photo_bytes: Callable[[str], bytes]) -> None:
    response = client.post("/api/persons", headers=AUTH, data=form,
                           files={"photo": ("p.jpg", photo_bytes("obama.jpg"), "image/jpeg")})
    assert response.status_code == 422
    assert response.json()["detail"]["code"] == code
    assert runtime.store.count_persons() == 0


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), ({"Authorization": "Bearer nope"}, 401),
    ({"Authorization": f"Bearer {LOBBY_TOKEN}"}, 403), ({"Authorization": f"Bearer {IT_TOKEN}"}, 403),
])
def test_enrolment_needs_an_enroller_token(headers: dict[str, str], status: int, client: TestClient,
                                           photo_bytes: Callable[[str], bytes]) -> None:
    response = client.post("/api/persons", headers=headers, data=FORM,
                           files={"photo": ("p.jpg", photo_bytes("obama.jpg"), "image/jpeg")})
    assert response.status_code == status


def test_good_photo_is_enrolled_encrypted_and_searchable(
        client: TestClient, runtime: EdgeRuntime, photo: Callable[[str], Image],
        photo_bytes: Callable[[str], bytes], engine: FaceEngine, engine_pool: EnginePool, tmp_path: Path) -> None:
    # given a real photo with one clear face
    raw = photo_bytes("obama.jpg")
    # when it is enrolled
    response = client.post("/api/persons", headers=AUTH, data=FORM, files={"photo": ("obama.jpg", raw, "image/jpeg")})
    # then the person exists, with the gallery saved beside the database
    assert response.status_code == 201, response.text
    person = response.json()
    assert person["name"] == "王五" and person["tier"] == "白金" and person["role"] == "vip"
    assert person["model_id"] == engine.model_id
    assert len(runtime.gallery) == 1
    assert sorted(p.suffix for p in runtime.gallery_dir.iterdir()) == [".faiss", ".json"]
    # and another photo of the same man finds him in the gallery
    probe = photo("obama2.jpg")
    result = runtime.gallery.search(engine.embed(probe, engine.detect(probe)))[0]
    assert result.best is not None and result.best.person_id == person["id"]
    # and the photo is encrypted at rest but served back intact to the lobby manager
    db = sqlite3.connect(runtime.data_dir / "edge.db")
    stored = db.execute("select photo from persons").fetchone()[0]
    db.close()
    assert raw[:64] not in stored
    served = client.get(person["photo_url"], headers={"Authorization": f"Bearer {LOBBY_TOKEN}"})
    assert served.status_code == 200 and served.content == raw
    # and a restarted runtime loads the same gallery
    again = EdgeRuntime(runtime.config, engine=engine_pool)
    assert again.gallery.persons == {person["id"]}
    again.stop()
    # and the listing shows the person
    listed = client.get("/api/persons", headers=AUTH).json()
    assert [p["id"] for p in listed] == [person["id"]]


def test_face_already_enrolled_under_another_person_is_409(client: TestClient, runtime: EdgeRuntime,
                                                            photo_bytes: Callable[[str], bytes]) -> None:
    # given Obama enrolled from one photo
    first = client.post("/api/persons", headers=AUTH, data=FORM,
                        files={"photo": ("obama.jpg", photo_bytes("obama.jpg"), "image/jpeg")})
    assert first.status_code == 201
    # when another photo of him is enrolled under a different name
    again = client.post("/api/persons", headers=AUTH, data={**FORM, "name": "冒名"},
                        files={"photo": ("obama3.jpg", photo_bytes("obama3.jpg"), "image/jpeg")})
    # then it is refused with the existing person and the score, and nothing new is stored
    assert again.status_code == 409, again.text
    detail = again.json()["detail"]
    assert detail["code"] == "duplicate" and detail["person_id"] == first.json()["id"]
    assert detail["score"] >= runtime.config.face.voter.threshold
    assert runtime.store.count_persons() == 1 and len(runtime.gallery) == 1
    # and a different person is still accepted
    other = client.post("/api/persons", headers=AUTH, data={**FORM, "name": "拜登"},
                        files={"photo": ("biden.jpg", photo_bytes("biden.jpg"), "image/jpeg")})
    assert other.status_code == 201


def test_a_40_megapixel_photo_is_enrolled_from_a_reduced_copy(
        client: TestClient, runtime: EdgeRuntime, photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given a real photo enlarged to 40 megapixels (7302x5477)
    big = cv2.resize(photo("obama.jpg"), (7302, 5477), interpolation=cv2.INTER_CUBIC)
    data = jpeg(big)
    del big
    # when it is enrolled
    response = client.post("/api/persons", headers=AUTH, data=FORM, files={"photo": ("big.jpg", data, "image/jpeg")})
    # then it is accepted (checked at no more than 8 MP), the original bytes are kept,
    # and another photo of the same man finds him
    assert response.status_code == 201, response.text
    person_id = response.json()["id"]
    assert runtime.store.person_photo(person_id) == data
    probe = photo("obama2.jpg")
    best = runtime.gallery.search(engine.embed(probe, engine.detect(probe)))[0].best
    assert best is not None and best.person_id == person_id
