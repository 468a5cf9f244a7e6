"""Consent records on SQLite and PostgreSQL: field checks, evidence by magic bytes, encrypted at rest, audited
reads, and no blob left behind by a refused or rolled-back record."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import cv2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from console.consent import MAX_EVIDENCE_BYTES, add_consent
from console.context import ConsoleContext
from console.errors import ConsoleError
from console.tables import AuditRow, Consent, Person
from tests.console.conftest import add_branch, add_token, add_user
from vision.imageio import decode_image

PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")


def add_person(ctx: ConsoleContext, branch_id: int, name: str = "张三") -> str:
    pid = secrets.token_hex(8)
    with ctx.db.transaction() as session:
        session.add(Person(id=pid, name=name, role="vip", tier="gold", home_branch_id=branch_id))
    return pid


def bearer(ctx: ConsoleContext, username: str, role: str, **kw: object) -> dict[str, str]:
    uid = add_user(ctx, username, role, **kw)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {add_token(ctx, uid)}"}


def blob_files(ctx: ConsoleContext) -> list[Path]:
    root = ctx.config.data_dir / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def consents(ctx: ConsoleContext) -> list[Consent]:
    with ctx.db.transaction() as session:
        return list(session.scalars(select(Consent)))


FORM = {"purpose": "贵宾到店识别与问候", "given_on": "2026-11-30", "operator": "柜员 王五"}


def test_a_consent_with_a_pdf_round_trips_through_the_encrypted_store(client: TestClient,
                                                                      console_ctx: ConsoleContext) -> None:
    pid = add_person(console_ctx, add_branch(console_ctx, "BJ001"))
    enroller = bearer(console_ctx, "enr", "enroller")
    r = client.post(f"/api/persons/{pid}/consents", data=FORM, files={"evidence": ("同意书.pdf", PDF, "x/y")},
                    headers=enroller)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body == {"id": body["id"], "purpose": "贵宾到店识别与问候", "given_on": "2026-11-30",
                    "operator": "柜员 王五", "covers": ["enrolment"], "evidence_name": "同意书.pdf",
                    "evidence_url": f"/api/persons/{pid}/consents/{body['id']}/evidence",
                    "recorded_by": "enr/token:script", "created_at": body["created_at"]}
    [stored] = blob_files(console_ctx)
    on_disk = stored.read_bytes()
    assert on_disk != PDF and b"%PDF" not in on_disk and b"Catalog" not in on_disk
    got = client.get(body["evidence_url"], headers=enroller)
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf" and got.headers["cache-control"] == "no-store"
    assert "filename*=UTF-8''%E5%90%8C%E6%84%8F%E4%B9%A6.pdf" in got.headers["content-disposition"]
    with console_ctx.db.transaction() as session:
        actions = [(a.action, a.object_id, a.detail) for a in session.scalars(select(AuditRow).order_by(AuditRow.id))]
    assert actions == [("consent_add", pid, {"consent_id": body["id"], "purpose": FORM["purpose"], "evidence": True}),
                       ("consent_view", pid, {"consent_id": body["id"]})]


def test_jpeg_and_png_evidence_are_recognised_by_their_bytes_not_their_names(
        client: TestClient, console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes]) -> None:
    pid = add_person(console_ctx, add_branch(console_ctx, "BJ001"))
    enroller = bearer(console_ctx, "enr", "enroller")
    jpeg = photo_bytes("obama.jpg")
    ok, png = cv2.imencode(".png", decode_image(jpeg)[:120, :120])
    assert ok
    for name, data, kind in (("scan.pdf", jpeg, "image/jpeg"), ("photo", png.tobytes(), "image/png")):
        r = client.post(f"/api/persons/{pid}/consents", data=FORM, files={"evidence": (name, data)}, headers=enroller)
        assert r.status_code == 201, r.text
        got = client.get(r.json()["evidence_url"], headers=enroller)
        assert (got.content, got.headers["content-type"]) == (data, kind)


@pytest.mark.parametrize(("name", "data", "status", "error"), [
    ("consent.pdf", b"GIF89a" + bytes(64), 415, "bad_evidence"),
    ("consent.pdf", b"<html><script>alert(1)</script></html>", 415, "bad_evidence"),
    ("consent.pdf", b"", 415, "bad_evidence"),
    ("big.pdf", b"%PDF-1.4\n" + bytes(MAX_EVIDENCE_BYTES), 413, "evidence_too_large"),
])
def test_a_bad_evidence_file_is_refused_and_nothing_is_written(client: TestClient, console_ctx: ConsoleContext,
                                                               name: str, data: bytes, status: int, error: str) -> None:
    pid = add_person(console_ctx, add_branch(console_ctx, "BJ001"))
    r = client.post(f"/api/persons/{pid}/consents", data=FORM, files={"evidence": (name, data)},
                    headers=bearer(console_ctx, "enr", "enroller"))
    assert r.status_code == status and r.json()["error"] == error, r.text
    assert "PDF" in r.json()["detail"] or "10 MB" in r.json()["detail"]
    assert consents(console_ctx) == [] and blob_files(console_ctx) == []


@pytest.mark.parametrize(("change", "field"), [
    ({"purpose": "  "}, "purpose"),
    ({"purpose": "用" * 201}, "purpose"),
    ({"operator": ""}, "operator"),
    ({"operator": "x" * 129}, "operator"),
    ({"given_on": "2026-13-01"}, "given_on"),
    ({"given_on": "yesterday"}, "given_on"),
    ({"given_on": (date.today() + timedelta(days=3)).isoformat()}, "given_on"),
])
def test_a_bad_field_is_refused_naming_it_and_nothing_is_written(client: TestClient, console_ctx: ConsoleContext,
                                                                 change: dict[str, str], field: str) -> None:
    pid = add_person(console_ctx, add_branch(console_ctx, "BJ001"))
    r = client.post(f"/api/persons/{pid}/consents", data=FORM | change, files={"evidence": ("c.pdf", PDF)},
                    headers=bearer(console_ctx, "enr", "enroller"))
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_consent" and r.json()["field"] == field
    assert consents(console_ctx) == [] and blob_files(console_ctx) == []


def test_a_consent_without_evidence_has_no_evidence_url(client: TestClient, console_ctx: ConsoleContext) -> None:
    pid = add_person(console_ctx, add_branch(console_ctx, "BJ001"))
    enroller = bearer(console_ctx, "enr", "enroller")
    r = client.post(f"/api/persons/{pid}/consents", data=FORM, headers=enroller)
    assert r.status_code == 201, r.text
    assert (r.json()["evidence_name"], r.json()["evidence_url"]) == (None, None)
    missing = client.get(f"/api/persons/{pid}/consents/{r.json()['id']}/evidence", headers=enroller)
    assert missing.status_code == 404
    assert blob_files(console_ctx) == []


def test_the_blob_is_deleted_again_when_the_transaction_fails(console_ctx: ConsoleContext) -> None:
    pid = add_person(console_ctx, add_branch(console_ctx, "BJ001"))

    class Later(Exception):
        """Something after the consent fails (say, the enrolment's photo)."""

    with pytest.raises(Later), console_ctx.db.transaction() as session:
        person = session.get_one(Person, pid)
        consent = add_consent(session, console_ctx.blobs, person, "用途", date(2026, 11, 1), "王五", PDF, "c.pdf", "t")
        assert consent.evidence_key is not None and console_ctx.blobs.exists(consent.evidence_key)
        raise Later
    assert not console_ctx.blobs.exists(consent.evidence_key or "") and blob_files(console_ctx) == []
    assert consents(console_ctx) == []
    with console_ctx.db.transaction() as session:  # a committed one stays, and a later rollback leaves it alone
        kept = add_consent(session, console_ctx.blobs, session.get_one(Person, pid), "用途", date(2026, 11, 1),
                           "王五", PDF, "c.pdf", "t")
    with pytest.raises(Later), console_ctx.db.transaction() as session:
        session.get_one(Person, pid).notes = "changed"
        raise Later
    assert kept.evidence_key is not None and console_ctx.blobs.get(kept.evidence_key) == PDF


def test_the_service_refuses_before_it_writes(console_ctx: ConsoleContext) -> None:
    pid = add_person(console_ctx, add_branch(console_ctx, "BJ001"))
    with console_ctx.db.transaction() as session:
        person = session.get_one(Person, pid)
        with pytest.raises(ConsoleError) as caught:
            add_consent(session, console_ctx.blobs, person, "用途", date(2999, 1, 1), "王五", PDF, "c.pdf", "t")
    assert (caught.value.code, caught.value.extra["field"]) == ("invalid_consent", "given_on")
    assert blob_files(console_ctx) == [] and consents(console_ctx) == []


def test_scope_roles_and_erasure(client: TestClient, console_ctx: ConsoleContext) -> None:
    a, b = add_branch(console_ctx, "AAA"), add_branch(console_ctx, "BBB")
    at_a, at_b = add_person(console_ctx, a), add_person(console_ctx, b, "李四")
    admin = bearer(console_ctx, "root", "admin")
    r = client.post(f"/api/persons/{at_a}/consents", data=FORM, files={"evidence": ("c.pdf", PDF)}, headers=admin)
    url = r.json()["evidence_url"]
    enroller_b = bearer(console_ctx, "enr_b", "enroller", scope_kind="branches", branch_ids=(b,))
    assert client.get(url, headers=enroller_b).status_code == 404
    assert client.post(f"/api/persons/{at_a}/consents", data=FORM, headers=enroller_b).status_code == 404
    assert client.post(f"/api/persons/{at_b}/consents", data=FORM, headers=enroller_b).status_code == 201
    assert client.get(url, headers=bearer(console_ctx, "it", "branch_it")).status_code == 403
    assert client.get(url, headers=bearer(console_ctx, "comp", "compliance")).status_code == 200
    assert client.get(f"/api/persons/{at_a}/consents/99999/evidence", headers=admin).status_code == 404
    with console_ctx.db.transaction() as session:  # erasure is another helper's; the row going is what matters
        session.execute(text("DELETE FROM persons WHERE id = :id"), {"id": at_a})
    assert client.get(url, headers=admin).status_code == 404


def test_a_rolled_back_savepoint_deletes_its_blob_and_keeps_the_others(console_ctx: ConsoleContext) -> None:
    """A bulk import may run each row in a savepoint: a failed row's evidence goes, the committed rows' stays."""
    pid = add_person(console_ctx, add_branch(console_ctx, "BJ001"))
    with console_ctx.db.transaction() as session:
        person = session.get_one(Person, pid)
        kept = add_consent(session, console_ctx.blobs, person, "用途", date(2026, 11, 1), "王五", PDF, "a.pdf", "t")
        with pytest.raises(ConsoleError), session.begin_nested():
            gone = add_consent(session, console_ctx.blobs, person, "用途", date(2026, 11, 1), "王五", PDF, "b.pdf",
                               "t")
            raise ConsoleError("later", "a later check of this row fails")
        assert gone.evidence_key is not None and not console_ctx.blobs.exists(gone.evidence_key)
        with session.begin_nested():
            also = add_consent(session, console_ctx.blobs, person, "用途", date(2026, 11, 1), "王五", PDF, "c.pdf",
                               "t")
    assert [c.evidence_name for c in consents(console_ctx)] == ["a.pdf", "c.pdf"]
    assert len(blob_files(console_ctx)) == 2
    assert console_ctx.blobs.exists(kept.evidence_key or "") and console_ctx.blobs.exists(also.evidence_key or "")
    with pytest.raises(ConsoleError), console_ctx.db.transaction() as session:
        with session.begin_nested():  # released, but the whole transaction then fails
            inner = add_consent(session, console_ctx.blobs, session.get_one(Person, pid), "用途", date(2026, 11, 1),
                                "王五", PDF, "d.pdf", "t")
        raise ConsoleError("later", "the enclosing transaction fails")
    assert not console_ctx.blobs.exists(inner.evidence_key or "") and len(blob_files(console_ctx)) == 2
