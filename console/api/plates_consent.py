"""A person's plates and consent records. A person outside the caller's scope does not exist for them (404),
and a plate conflict names the other person's id only when the caller may see that person."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from console import audit
from console.api.deps import Caller, Ctx
from console.consent import MAX_EVIDENCE_BYTES, add_consent, consent_json, covered
from console.errors import ConsoleError
from console.plates import add_plate, hide_unseen_holder, plate_json, remove_plate, touch_person
from console.security import Principal
from console.storage import BlobNotFound
from console.tables import Consent, Person

router = APIRouter(prefix="/api", tags=["plates", "consent"])
EDITORS = ("admin", "enroller")
CONSENT_READERS = ("admin", "enroller", "compliance")


class PlateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plate: str = Field(max_length=64)


def person_in_scope(session: Session, caller: Principal, person_id: str) -> Person:
    """The person, or 404 when there is none or their home branch is outside the caller's scope."""
    person = session.get(Person, person_id)
    if person is None or not caller.sees_branch(person.home_branch_id):
        raise ConsoleError("not_found", f"没有此人 / no person {person_id}", 404)
    return person


@router.post("/persons/{person_id}/plates", status_code=201)
def post_plate(person_id: str, body: PlateIn, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    caller.require_role(*EDITORS)
    with ctx.db.transaction() as session:
        person = person_in_scope(session, caller, person_id)
        try:
            row = add_plate(session, person, body.plate)
        except ConsoleError as exc:
            raise hide_unseen_holder(session, exc, caller.branch_ids) from None
        audit.record(session, caller, "plate_add", object_type="person", object_id=person.id,
                     branch_code=person.home_branch.code, detail={"plate_id": row.id, "plate": row.plate,
                                                                  "version": person.version})
        return plate_json(row)


@router.delete("/persons/{person_id}/plates/{plate_id}", status_code=204)
def delete_plate(person_id: str, plate_id: int, ctx: Ctx, caller: Caller) -> Response:
    caller.require_role(*EDITORS)
    with ctx.db.transaction() as session:
        person = person_in_scope(session, caller, person_id)
        row = remove_plate(session, person, plate_id)
        audit.record(session, caller, "plate_remove", object_type="person", object_id=person.id,
                     branch_code=person.home_branch.code, detail={"plate_id": plate_id, "plate": row.plate,
                                                                  "version": person.version})
    return Response(status_code=204)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ConsoleError("invalid_consent", f"同意日期“{text}”须为 YYYY-MM-DD / the consent date {text!r} must be "
                                              "YYYY-MM-DD", 422, field="given_on") from None


async def _read_upload(upload: UploadFile | None) -> tuple[bytes | None, str | None]:
    """The file's bytes (None when no file was chosen), read no further than one byte past the limit."""
    if upload is None or (not upload.filename and not upload.size):
        return None, None
    data = await upload.read(MAX_EVIDENCE_BYTES + 1)
    if not data and not upload.filename:
        return None, None
    return data, upload.filename


@router.post("/persons/{person_id}/consents", status_code=201)
async def post_consent(person_id: str, ctx: Ctx, caller: Caller, purpose: Annotated[str, Form(max_length=1000)] = "",
                       given_on: Annotated[str, Form(max_length=32)] = "",
                       operator: Annotated[str, Form(max_length=1000)] = "",
                       evidence: Annotated[UploadFile | None, File()] = None,
                       covers: Annotated[list[str] | None, Form()] = None) -> dict[str, Any]:
    """Empty or missing text fields reach :func:`add_consent`, which names the field in its own 422. ``covers``
    (repeatable) names the uses the record covers besides the enrolment (``visit_template``); a record that adds
    a use the person's records did not cover yet is a gallery change, so the edges learn it."""
    caller.require_role(*EDITORS)
    data, name = await _read_upload(evidence)
    day = _date(given_on)
    with ctx.db.transaction() as session:
        person = person_in_scope(session, caller, person_id)
        before = covered(c.covers for c in person.consents)
        consent = add_consent(session, ctx.blobs, person, purpose, day, operator, data, name, caller.actor,
                              covers=covers or ())
        detail: dict[str, Any] = {"consent_id": consent.id, "purpose": consent.purpose,
                                  "evidence": consent.evidence_key is not None}
        if covered([consent.covers]) != ["enrolment"]:
            detail["covers"] = covered([consent.covers])
        if set(covered([consent.covers])) - set(before) - {"enrolment"}:
            detail["version"] = touch_person(session, person)
        audit.record(session, caller, "consent_add", object_type="person", object_id=person.id,
                     branch_code=person.home_branch.code, detail=detail)
        return consent_json(consent)


@router.get("/persons/{person_id}/consents/{consent_id}/evidence")
def get_evidence(person_id: str, consent_id: int, ctx: Ctx, caller: Caller) -> Response:
    caller.require_role(*CONSENT_READERS)
    with ctx.db.transaction() as session:
        person = person_in_scope(session, caller, person_id)
        consent = session.get(Consent, consent_id)
        if consent is None or consent.person_id != person.id or not consent.evidence_key:
            raise ConsoleError("not_found", "此同意记录没有附件 / this consent record has no evidence file", 404)
        try:
            data = ctx.blobs.get(consent.evidence_key)
        except BlobNotFound:
            raise ConsoleError("not_found", "同意书附件已被删除 / the evidence file is gone", 404) from None
        audit.record(session, caller, "consent_view", object_type="person", object_id=person.id,
                     branch_code=person.home_branch.code, detail={"consent_id": consent.id})
        name = consent.evidence_name or "consent"
        content_type = consent.evidence_type or "application/octet-stream"
    return Response(data, media_type=content_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
