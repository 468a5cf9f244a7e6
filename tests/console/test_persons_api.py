"""Persons over HTTP with real photos and the real dlib engine, on SQLite and PostgreSQL: enrol, read, list,
change, photos added and removed, and refusals that write nothing. Helpers here are shared by the other
person tests (duplicates, erasure, scope)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from console.context import ConsoleContext
from console.dupindex import TemplateCipher
from console.tables import AuditRow, GalleryChange, Person, Photo
from tests.console.conftest import add_branch, add_token, add_user, session_headers

PhotoBytes = Callable[[str], bytes]


@dataclass(frozen=True)
class Bank:
    """Two branches (A: SH001 in east, B: BJ001 in north) and an admin with an API token."""

    a: int
    b: int
    admin: dict[str, str]


def bearer(ctx: ConsoleContext, username: str, role: str, **scope: Any) -> dict[str, str]:
    user = add_user(ctx, username, role, **scope)
    return {"Authorization": f"Bearer {add_token(ctx, user)}"}


def make_bank(ctx: ConsoleContext) -> Bank:
    a = add_branch(ctx, "SH001", region="east", name="上海第一支行")
    b = add_branch(ctx, "BJ001", region="north", name="北京第一支行")
    return Bank(a, b, bearer(ctx, "admin", "admin"))


def enrol(client: TestClient, headers: dict[str, str], photo: bytes | None, name: str, *, home: str = "SH001",
          files: dict[str, tuple[str, bytes, str]] | None = None, **fields: str) -> Response:
    """POST /api/persons with the consent filled in (any field can be overridden, "" to leave it out)."""
    data = {"name": name, "role": "vip", "tier": "gold", "home_branch": home, "consent_purpose": "VIP 迎宾",
            "consent_date": "2026-01-05", "consent_operator": "李经理", **fields}
    upload = dict(files or {})
    if photo is not None:
        upload["photo"] = ("face.jpg", photo, "image/jpeg")
    response: Response = client.post("/api/persons", data={k: v for k, v in data.items() if v != ""},
                                     files=upload, headers=headers)
    return response


def blob_files(ctx: ConsoleContext) -> list[Path]:
    return [p for p in (ctx.config.data_dir / "blobs").rglob("*") if p.is_file()]


def count(ctx: ConsoleContext, table: Any, *where: Any) -> int:
    with ctx.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def actions(ctx: ConsoleContext, object_id: str | None = None) -> list[str]:
    with ctx.db.transaction() as session:
        query = select(AuditRow.action).order_by(AuditRow.id)
        if object_id is not None:
            query = query.where(AuditRow.object_id == object_id)
        return list(session.scalars(query))


def blurred(data: bytes) -> bytes:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    ok, buf = cv2.imencode(".jpg", cv2.GaussianBlur(image, (0, 0), 6))
    assert ok
    return bytes(buf.tobytes())


def test_enrol_a_vip_from_a_real_photo(console_ctx: ConsoleContext, client: TestClient,
                                       photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    original = photo_bytes("obama.jpg")
    res = enrol(client, bank.admin, original, "  Barack\u202e Obama ", external_id="C-001", plates="沪A12345",
                notes="喜欢靠窗")
    assert res.status_code == 201, res.text
    person = res.json()
    assert person["name"] == "Barack Obama"  # cleaned: the bidi override is gone, spaces trimmed
    assert (person["role"], person["tier"], person["external_id"]) == ("vip", "gold", "C-001")
    assert person["home_branch"] == {"code": "SH001", "name": "上海第一支行"}
    assert person["scope"] == {"kind": "branches", "region": None, "branches": ["SH001"]}
    assert person["plates"][0]["plate"] == "沪A12345" and person["has_consent"]
    assert person["consents"][0]["operator"] == "李经理" and person["photo_count"] == 1
    [photo] = person["photos"]
    assert photo["face_px"] >= 80 and photo["sharpness"] > 15
    assert [h["action"] for h in person["history"]] == ["enrol"]

    # one gallery change, and the version is its seq; the template is the photo's embedding, encrypted
    with console_ctx.db.transaction() as session:
        row = session.get_one(Person, person["id"])
        [change] = session.scalars(select(GalleryChange)).all()
        stored = session.scalars(select(Photo)).one()
        cipher = TemplateCipher(console_ctx.key)
        template, embedding = cipher.decrypt(row.template or b""), cipher.decrypt(stored.embedding)
        assert row.version == change.seq == person["version"] and change.kind == "upsert"
        assert row.model_id == stored.model_id == console_ctx.engine().model_id
    assert template.shape == (128,) and abs(float(np.linalg.norm(template)) - 1) < 1e-5
    assert float(template @ embedding) > 0.999
    [blob] = blob_files(console_ctx)
    assert original[100:140] not in blob.read_bytes()  # encrypted at rest

    listed = client.get("/api/persons", params={"q": "obama"}, headers=bank.admin).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == person["id"]
    assert client.get("/api/persons", params={"q": "A1234"}, headers=bank.admin).json()["total"] == 1  # by plate
    assert client.get("/api/persons", params={"q": "nobody"}, headers=bank.admin).json()["total"] == 0

    # the photo itself, and its thumbnail, are each an audited view
    got = client.get(photo["url"], headers=bank.admin)
    assert got.status_code == 200 and got.content == original and got.headers["content-type"] == "image/jpeg"
    thumb = client.get(listed["items"][0]["thumbnail_url"], headers=bank.admin)
    image = cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert thumb.headers["content-type"] == "image/jpeg" and max(image.shape[:2]) == 160
    assert actions(console_ctx, person["id"]) == ["enrol", "photo_view", "photo_view"]


def test_a_blurred_copy_is_refused_and_nothing_is_written(console_ctx: ConsoleContext, client: TestClient,
                                                          photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    res = enrol(client, bank.admin, blurred(photo_bytes("obama.jpg")), "Obama")
    assert res.status_code == 422, res.text
    assert res.json()["error"] == "blurred" and res.json()["photo"] == "photo"
    assert "模糊" in res.json()["detail"]
    assert count(console_ctx, Person) == count(console_ctx, GalleryChange) == count(console_ctx, Photo) == 0
    assert blob_files(console_ctx) == [] and actions(console_ctx) == []


def test_refusals_before_any_face_work_write_nothing(console_ctx: ConsoleContext, client: TestClient,
                                                     photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    obama = photo_bytes("obama.jpg")
    no_consent = enrol(client, bank.admin, obama, "Obama", consent_operator="")
    assert (no_consent.status_code, no_consent.json()["error"]) == (422, "no_consent")
    not_image = enrol(client, bank.admin, b"%PDF-1.4 not a photo", "Obama")
    assert (not_image.status_code, not_image.json()["error"]) == (415, "not_an_image")
    bad_plate = enrol(client, bank.admin, obama, "Obama", plates="ABC")
    assert (bad_plate.status_code, bad_plate.json()["error"]) == (422, "invalid_plate")
    bad_role = enrol(client, bank.admin, obama, "Obama", role="boss")
    assert bad_role.status_code == 422
    no_photo = enrol(client, bank.admin, None, "Obama")
    assert (no_photo.status_code, no_photo.json()["error"]) == (422, "no_photo")
    assert count(console_ctx, Person) == count(console_ctx, GalleryChange) == 0 and blob_files(console_ctx) == []


def test_a_plate_already_taken_is_409_and_writes_nothing(console_ctx: ConsoleContext, client: TestClient,
                                                         photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    first = enrol(client, bank.admin, photo_bytes("obama.jpg"), "Obama", plates="沪A12345")
    assert first.status_code == 201, first.text
    taken = enrol(client, bank.admin, photo_bytes("biden.jpg"), "Biden", plates="沪A1234S")  # S: read as 5
    assert taken.status_code == 409, taken.text
    assert taken.json()["error"] == "plate_taken"
    assert taken.json()["match"]["name"] == "Obama" and taken.json()["match"]["person_id"] == first.json()["id"]
    assert count(console_ctx, Person) == 1 and len(blob_files(console_ctx)) == 1


def test_change_fields_and_photos(console_ctx: ConsoleContext, client: TestClient, photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    person = enrol(client, bank.admin, photo_bytes("obama.jpg"), "Obama").json()
    pid = person["id"]

    patched = client.patch(f"/api/persons/{pid}", json={"tier": "platinum", "scope_kind": "region",
                                                         "scope_region": "east"}, headers=bank.admin)
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["tier"] == "platinum" and body["scope"] == {"kind": "region", "region": "east", "branches": []}
    assert body["version"] > person["version"]
    same = client.patch(f"/api/persons/{pid}", json={"tier": "platinum"}, headers=bank.admin).json()
    assert same["version"] == body["version"]  # nothing changed: no gallery change
    assert client.patch(f"/api/persons/{pid}", json={"height": 2}, headers=bank.admin).status_code == 422

    added = client.post(f"/api/persons/{pid}/photos", files={"photo": ("o3.jpg", photo_bytes("obama3.jpg"))},
                        headers=bank.admin)
    assert added.status_code == 201, added.text
    assert added.json()["photo_count"] == 2 and added.json()["version"] > body["version"]
    stranger = client.post(f"/api/persons/{pid}/photos", files={"photo": ("b.jpg", photo_bytes("biden.jpg"))},
                           headers=bank.admin)
    assert (stranger.status_code, stranger.json()["error"]) == (422, "not_same_person")

    first, second = (p["id"] for p in added.json()["photos"])
    removed = client.delete(f"/api/persons/{pid}/photos/{first}", headers=bank.admin)
    assert removed.status_code == 200 and [p["id"] for p in removed.json()["photos"]] == [second]
    assert client.get(f"/api/persons/{pid}/photos/{first}", headers=bank.admin).status_code == 404
    last = client.delete(f"/api/persons/{pid}/photos/{second}", headers=bank.admin)
    assert (last.status_code, last.json()["error"]) == (409, "last_photo")
    assert len(blob_files(console_ctx)) == 1
    assert actions(console_ctx, pid) == ["enrol", "person_update", "photo_add", "photo_remove"]
    with console_ctx.db.transaction() as session:  # the template is the one remaining photo's embedding again
        row = session.get_one(Person, pid)
        cipher = TemplateCipher(console_ctx.key)
        remaining = session.get_one(Photo, second)
        assert float(cipher.decrypt(row.template or b"") @ cipher.decrypt(remaining.embedding)) > 0.999


@pytest.mark.parametrize("role", ["regional_manager"])
def test_roles_without_person_access_get_403(console_ctx: ConsoleContext, client: TestClient, role: str) -> None:
    make_bank(console_ctx)
    headers = bearer(console_ctx, "someone", role)
    assert client.get("/api/persons", headers=headers).status_code == 403
    assert client.post("/api/search/photo", files={"photo": ("x.jpg", b"x")}, headers=headers).status_code == 403


def test_a_session_needs_its_csrf_token_to_enrol(console_ctx: ConsoleContext, client: TestClient) -> None:
    make_bank(console_ctx)
    user = add_user(console_ctx, "enroller", "enroller")
    csrf = session_headers(console_ctx, user, client)
    res = enrol(client, {}, b"whatever", "Obama")
    assert (res.status_code, res.json()["error"]) == (403, "csrf")
    assert enrol(client, csrf, None, "Obama").json()["error"] == "no_photo"  # past the CSRF check


def test_a_photo_embedded_by_an_older_model_is_embedded_again_before_a_new_photo_is_compared(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    pid = enrol(client, bank.admin, photo_bytes("obama.jpg"), "Obama").json()["id"]
    cipher = TemplateCipher(console_ctx.key)
    with console_ctx.db.transaction() as session:  # as if the console had changed engines since
        old = session.scalars(select(Photo)).one()
        old.model_id, old.embedding = "an-older-model", cipher.encrypt(np.ones(128, np.float32) / np.sqrt(128))
    stranger = client.post(f"/api/persons/{pid}/photos", files={"photo": ("b.jpg", photo_bytes("biden.jpg"))},
                           headers=bank.admin)
    assert (stranger.status_code, stranger.json()["error"]) == (422, "not_same_person")
    added = client.post(f"/api/persons/{pid}/photos", files={"photo": ("o3.jpg", photo_bytes("obama3.jpg"))},
                        headers=bank.admin)
    assert added.status_code == 201, added.text
    with console_ctx.db.transaction() as session:
        assert set(session.scalars(select(Photo.model_id))) == {console_ctx.engine().model_id}
