"""Consent purposes where a person is enrolled, on SQLite and PostgreSQL: the enrol form's ``consent_covers``
and the bulk import's ``consent_covers`` column say whether the consent also covers template improvement from
confirmed live visits (``visit_template``); an unknown code is refused naming it and writes nothing (the enrol
form) or refuses that row only (the import); a re-run of the same file changes nothing, and a changed set
updates the consent and is a gallery change."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from console.context import ConsoleContext
from console.importer.csvfile import ImportRow, RowProblem, parse_csv
from console.tables import AuditRow, Consent, GalleryChange, Person
from tests.console.conftest import add_branch
from tests.console.test_import import CONSENT, _admin, _changes, _run, csv_bytes
from tests.console.test_persons_api import blob_files, count, enrol, make_bank

PhotoBytes = Callable[[str], bytes]
HEADER = "external_id,name,role,tier,home_branch,photos,consent_purpose,consent_date,consent_operator,consent_covers"


def test_the_enrol_form_records_the_uses_the_consent_covers(console_ctx: ConsoleContext, client: TestClient,
                                                            photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    # when a VIP is enrolled with a consent that also covers template improvement from live visits
    res = client.post("/api/persons", headers=bank.admin, data={
        "name": "奥巴马", "role": "vip", "tier": "gold", "home_branch": "SH001", "consent_purpose": "VIP 迎宾",
        "consent_date": "2026-01-05", "consent_operator": "李经理", "consent_covers": ["visit_template"]},
        files={"photo": ("face.jpg", photo_bytes("obama.jpg"), "image/jpeg")})
    # then the person's one consent record covers both uses, and the enrolment audit says so
    assert res.status_code == 201, res.text
    assert [c["covers"] for c in res.json()["consents"]] == [["enrolment", "visit_template"]]
    # and a person enrolled without the field has a consent for the enrolment only
    other = enrol(client, bank.admin, photo_bytes("biden.jpg"), "拜登")
    assert other.status_code == 201, other.text
    assert [c["covers"] for c in other.json()["consents"]] == [["enrolment"]]


@pytest.mark.parametrize("covers", [["marketing"], ["visit_template", "face_sale"]])
def test_an_unknown_code_on_the_enrol_form_is_422_naming_it_and_nothing_is_written(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: PhotoBytes, covers: list[str]) -> None:
    bank = make_bank(console_ctx)
    res = client.post("/api/persons", headers=bank.admin, data={
        "name": "奥巴马", "role": "vip", "tier": "gold", "home_branch": "SH001", "consent_purpose": "VIP 迎宾",
        "consent_date": "2026-01-05", "consent_operator": "李经理", "consent_covers": covers},
        files={"photo": ("face.jpg", photo_bytes("obama.jpg"), "image/jpeg"),
               "consent_evidence": ("同意书.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")})
    assert res.status_code == 422, res.text
    assert covers[-1] in res.text and "未知的同意用途" in res.text and "covers" in res.text
    assert count(console_ctx, Person) == count(console_ctx, Consent) == count(console_ctx, GalleryChange) == 0
    assert blob_files(console_ctx) == []


def test_the_csv_column_is_parsed_and_an_unknown_code_refuses_its_row() -> None:
    parsed = parse_csv(csv_bytes(f"E1,张三,vip,gold,SH001,a.jpg,{CONSENT},visit_template",
                                 f"E2,李四,vip,gold,SH001,a.jpg,{CONSENT},",
                                 f"E3,王五,vip,gold,SH001,a.jpg,{CONSENT},enrolment；visit_template",
                                 f"E4,赵六,vip,gold,SH001,a.jpg,{CONSENT},visit_template;marketing",
                                 "E5,钱七,vip,gold,SH001,a.jpg,,,,visit_template", header=HEADER))
    rows = {r.external_id: r for r in parsed.rows}
    e1, e2, e3 = rows["E1"], rows["E2"], rows["E3"]
    assert isinstance(e1, ImportRow) and isinstance(e2, ImportRow) and isinstance(e3, ImportRow)
    assert e1.consent is not None and e1.consent.covers == ("enrolment", "visit_template")
    assert e2.consent is not None and e2.consent.covers == ("enrolment",)
    assert e3.consent is not None and e3.consent.covers == ("enrolment", "visit_template")
    e4, e5 = rows["E4"], rows["E5"]
    assert isinstance(e4, RowProblem) and e4.code == "invalid_consent" and "marketing" in e4.reason
    assert isinstance(e5, RowProblem) and e5.code == "no_consent" and "consent_covers" in e5.reason
    # without the column, the stored uses are kept
    plain = parse_csv(csv_bytes(f"E1,张三,vip,gold,SH001,a.jpg,{CONSENT}", header=HEADER.rsplit(",", 1)[0]))
    first = plain.rows[0]
    assert isinstance(first, ImportRow) and first.consent is not None and first.consent.covers is None


def _covers(ctx: ConsoleContext, external_id: str) -> list[str]:
    with ctx.db.transaction() as session:
        person = session.scalars(select(Person).where(Person.external_id == external_id)).one()
        return [c.covers for c in sorted(person.consents, key=lambda c: c.id)]


def test_an_import_records_covers_a_rerun_changes_nothing_and_a_changed_set_updates_the_consent(
        console_ctx: ConsoleContext, photo_bytes: PhotoBytes) -> None:
    add_branch(console_ctx, "SH001")
    admin = _admin(console_ctx)
    photos = {"obama.jpg": photo_bytes("obama.jpg"), "biden.jpg": photo_bytes("biden.jpg")}
    file = csv_bytes(f"E1,奥巴马,vip,gold,SH001,obama.jpg,{CONSENT},visit_template",
                     f"E2,拜登,vip,gold,SH001,biden.jpg,{CONSENT},visit_template;marketing", header=HEADER)
    # when a file with one good row and one row naming an unknown use is imported
    report = _run(console_ctx, admin, file, photos)
    # then the good row is created with a consent covering both uses, and the other is refused naming the code
    assert [(o.external_id, o.status, o.code) for o in report] == [("E1", "created", ""),
                                                                    ("E2", "failed", "invalid_consent")]
    assert "marketing" in report[1].reason
    assert _covers(console_ctx, "E1") == ["enrolment visit_template"]
    # when the same file is imported again, nothing changes
    changes = _changes(console_ctx)
    again = _run(console_ctx, admin, file, photos)
    assert [o.status for o in again] == ["unchanged", "failed"] and _changes(console_ctx) == changes
    # when the row now covers the enrolment only, the consent is updated and the edges learn it
    narrower = csv_bytes(f"E1,奥巴马,vip,gold,SH001,obama.jpg,{CONSENT},", header=HEADER)
    report = _run(console_ctx, admin, narrower, photos)
    assert [(o.status, o.reason) for o in report] == [("updated", "consent")]
    assert _covers(console_ctx, "E1") == ["enrolment"] and _changes(console_ctx) == changes + 1
    assert [o.status for o in _run(console_ctx, admin, narrower, photos)] == ["unchanged"]
    assert _changes(console_ctx) == changes + 1
    # and back: a wider set is a gallery change again, still one record, audited with both sets
    report = _run(console_ctx, admin, file, photos)
    assert [o.status for o in report] == ["updated", "failed"]
    assert _covers(console_ctx, "E1") == ["enrolment visit_template"] and _changes(console_ctx) == changes + 2
    with console_ctx.db.transaction() as session:
        details = [a.detail for a in session.scalars(select(AuditRow).where(AuditRow.action == "consent_update")
                                                     .order_by(AuditRow.id))]
        assert session.scalar(select(func.count()).select_from(Consent)) == 1
    assert [(d["before"], d["covers"]) for d in details] == [(["enrolment", "visit_template"], ["enrolment"]),
                                                            (["enrolment"], ["enrolment", "visit_template"])]
    # and a file without the column keeps the stored uses
    plain = csv_bytes(f"E1,奥巴马,vip,gold,SH001,obama.jpg,{CONSENT}", header=HEADER.rsplit(",", 1)[0])
    assert [o.status for o in _run(console_ctx, admin, plain, photos)] == ["unchanged"]
    assert _covers(console_ctx, "E1") == ["enrolment visit_template"]
