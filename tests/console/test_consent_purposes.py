"""Consent purposes on SQLite and PostgreSQL: a consent record says whether it covers template improvement from
live visits (``visit_template``) besides the enrolment; a record that adds that use is a gallery change, and
the edges' feed carries the uses a person's records cover (``consent_purposes``), in a delta and in a snapshot."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from console.context import ConsoleContext
from console.tables import AuditRow, Consent
from tests.console.conftest import add_branch
from tests.console.sync_helpers import add_edge, put_person, version_of
from tests.console.test_consent import FORM, bearer, blob_files

PDF = b"%PDF-1.4\n%%EOF\n"


def pull(client: TestClient, auth: dict[str, str], **params: Any) -> dict[str, Any]:
    answer = client.get("/api/sync/gallery", params=params, headers=auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def purposes(body: dict[str, Any], person_id: str) -> list[str]:
    [entry] = [p for p in body["persons"] if p["id"] == person_id]
    found: list[str] = entry["consent_purposes"]
    return found


def test_a_consent_covering_visit_templates_reaches_the_edge_in_changes_and_snapshots(
        client: TestClient, console_ctx: ConsoleContext) -> None:
    # given a VIP of A001 with a consent record for the enrolment only, and A001's edge up to date
    add_branch(console_ctx, "A001")
    pid = put_person(console_ctx, "张三", "A001", branches=["A001"])
    enroller = bearer(console_ctx, "enr", "enroller")
    first = client.post(f"/api/persons/{pid}/consents", data=FORM, headers=enroller)
    assert first.status_code == 201 and first.json()["covers"] == ["enrolment"], first.text
    _, edge = add_edge(console_ctx, "A001")
    snapshot = pull(client, edge, since=0)
    assert purposes(snapshot, pid) == ["enrolment"]
    since = snapshot["version"]
    # and another record for the enrolment only is no gallery change
    again = client.post(f"/api/persons/{pid}/consents", data={**FORM, "covers": "enrolment"}, headers=enroller)
    assert again.status_code == 201 and version_of(console_ctx) == since
    # when a record that also covers template improvement from live visits is added
    added = client.post(f"/api/persons/{pid}/consents", data={**FORM, "covers": ["visit_template"]},
                        files={"evidence": ("同意书.pdf", PDF, "application/pdf")}, headers=enroller)
    assert added.status_code == 201, added.text
    assert added.json()["covers"] == ["enrolment", "visit_template"]
    # then the edge's next changes carry the person with both uses, and so does a snapshot
    changes = pull(client, edge, since=since)
    assert changes["snapshot"] is False and purposes(changes, pid) == ["enrolment", "visit_template"]
    assert purposes(pull(client, edge, since=0), pid) == ["enrolment", "visit_template"]
    # and the audit says which uses the record covers and which gallery version it made
    with console_ctx.db.transaction() as session:
        details = [a.detail for a in session.scalars(select(AuditRow).where(AuditRow.action == "consent_add")
                                                     .order_by(AuditRow.id))]
    assert details[-1]["covers"] == ["enrolment", "visit_template"]
    assert details[-1]["version"] == changes["version"] and "version" not in details[1]
    # and the person's page lists it
    shown = client.get(f"/api/persons/{pid}", headers=enroller).json()
    assert [c["covers"] for c in shown["consents"]] == [["enrolment"], ["enrolment"], ["enrolment", "visit_template"]]


@pytest.mark.parametrize("covers", [["marketing"], ["visit_template", "face_sale"]])
def test_an_unknown_purpose_code_is_refused_naming_it_and_nothing_is_written(
        client: TestClient, console_ctx: ConsoleContext, covers: list[str]) -> None:
    add_branch(console_ctx, "A001")
    pid = put_person(console_ctx, "张三", "A001", branches=["A001"])
    version = version_of(console_ctx)
    enroller = bearer(console_ctx, "e", "enroller")
    r = client.post(f"/api/persons/{pid}/consents", data={**FORM, "covers": covers},
                    files={"evidence": ("同意书.pdf", PDF, "application/pdf")}, headers=enroller)
    assert r.status_code == 422, r.text
    detail = r.json()
    assert "covers" in str(detail) and covers[-1] in str(detail) and "未知的同意用途" in str(detail)
    with console_ctx.db.transaction() as session:
        assert list(session.scalars(select(Consent))) == []
    assert blob_files(console_ctx) == [] and version_of(console_ctx) == version
