"""Erasure with a real enrolment on both backends: every URL of the person is 404 afterwards, the blobs and
rows are gone, the audit rows stay, a tombstone and an erase change are left, and the face can be enrolled
again (the duplicate index no longer matches it)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from console.context import ConsoleContext
from console.tables import Consent, GalleryChange, Person, PersonBranch, Photo, Plate, Tombstone
from tests.console.test_persons_api import PhotoBytes, actions, bearer, blob_files, count, enrol, make_bank

PDF = b"%PDF-1.4\n% signed consent form\n%%EOF\n"


def test_erasure_removes_everything_but_the_audit_and_frees_the_face(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    created = enrol(client, bank.admin, photo_bytes("obama.jpg"), "Barack Obama", plates="沪A12345",
                    scope_kind="branches", scope_branches="SH001,BJ001",
                    files={"consent_evidence": ("consent.pdf", PDF, "application/pdf")})
    assert created.status_code == 201, created.text
    person = created.json()
    pid = person["id"]
    photo_url = person["photos"][0]["url"]
    evidence_url = person["consents"][0]["evidence_url"]
    urls = [f"/api/persons/{pid}", photo_url, f"{photo_url}?thumb=1", evidence_url]
    assert all(client.get(url, headers=bank.admin).status_code == 200 for url in urls)
    assert len(blob_files(console_ctx)) == 2  # the photo and the consent form

    erased = client.delete(f"/api/persons/{pid}", headers=bank.admin)
    assert erased.status_code == 200, erased.text
    seq = erased.json()["seq"]
    assert erased.json() == {"erased": pid, "seq": seq}

    assert [client.get(url, headers=bank.admin).status_code for url in urls] == [404, 404, 404, 404]
    assert client.delete(f"/api/persons/{pid}", headers=bank.admin).status_code == 404
    assert client.get("/api/persons", headers=bank.admin).json()["total"] == 0
    assert blob_files(console_ctx) == []
    for table in (Person, Photo, Plate, Consent):
        assert count(console_ctx, table) == 0
    assert count(console_ctx, PersonBranch) == 0
    with console_ctx.db.transaction() as session:
        tombstone = session.get_one(Tombstone, pid)
        last = session.scalars(select(GalleryChange).order_by(GalleryChange.seq.desc())).first()
    assert tombstone.seq == seq and tombstone.erased_by == "admin/token:script" and tombstone.home_branch_id == bank.a
    assert last is not None and (last.seq, last.person_id, last.kind) == (seq, pid, "erase")
    assert actions(console_ctx, pid) == ["enrol", "photo_view", "photo_view", "consent_view", "erase"]

    # the same face (another photo of it) and the same plate are free again
    again = enrol(client, bank.admin, photo_bytes("obama2.jpg"), "Barack Obama", plates="沪A12345")
    assert again.status_code == 201, again.text
    assert again.json()["id"] != pid


def test_erasure_needs_a_role_and_the_scope(console_ctx: ConsoleContext, client: TestClient,
                                            photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    pid = enrol(client, bank.admin, photo_bytes("biden.jpg"), "Joe Biden").json()["id"]
    branch_it = bearer(console_ctx, "it", "branch_it", scope_kind="branches", branch_ids=(bank.a,))
    other_branch = bearer(console_ctx, "bj", "compliance", scope_kind="branches", branch_ids=(bank.b,))
    assert client.delete(f"/api/persons/{pid}", headers=branch_it).status_code == 403
    assert client.delete(f"/api/persons/{pid}", headers=other_branch).status_code == 404
    assert count(console_ctx, Person) == 1 and len(blob_files(console_ctx)) == 1
    compliance = bearer(console_ctx, "sh", "compliance", scope_kind="region", region="east")
    assert client.delete(f"/api/persons/{pid}", headers=compliance).status_code == 200
    assert count(console_ctx, Person) == 0
