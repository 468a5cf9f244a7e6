"""Consent records: every enrolment carries one (PIPL art. 29: separate consent for biometric data).

A record names the purpose, the day consent was given and the operator who took it; the signed form may be
attached as evidence (PDF, JPEG or PNG, recognised by its first bytes rather than its name, at most 10 MB).
Evidence is stored encrypted in the blob store. The blob is written before the row, so it must go again when
the surrounding transaction fails: :func:`track_blob` ties a blob to the session's transaction (or savepoint)
and deletes it when that rolls back, whoever rolls it back (the enrolment of H2a, a bulk import row, or this
module's own API).

A record also says which uses it covers (:data:`PURPOSES`, stored as codes in ``covers``): ``enrolment``
(recognition from the enrolment photos, every record covers it) and ``visit_template`` (the box may add a
confirmed visit's live shot to the person's template, :mod:`edge.faces.visit_shots`). The codes a person's
records cover together travel to the edge with the person (``consent_purposes``), and a box adds live shots only
for a person whose consent covers ``visit_template``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from pathlib import PurePosixPath, PureWindowsPath
from zoneinfo import ZoneInfo

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from console.db import utcnow
from console.errors import ConsoleError
from console.storage import BlobStore
from console.tables import Branch, Consent, Person

MAX_EVIDENCE_BYTES = 10 * 1024 * 1024
EVIDENCE_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"%PDF-", "application/pdf", ".pdf"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
)
_PENDING = "console.pending_blobs"
ENROLMENT = "enrolment"
VISIT_TEMPLATE = "visit_template"
PURPOSES: dict[str, tuple[str, str]] = {  # code -> (Chinese, English)
    ENROLMENT: ("以登记照片识别迎宾", "recognition from the enrolment photos"),
    VISIT_TEMPLATE: ("以确认到访的现场照片改进识别模板", "template improvement from confirmed live visits"),
}


def check_covers(codes: Iterable[str] | None) -> str:
    """The purpose codes a record covers, as stored (space-separated, in :data:`PURPOSES` order; ``enrolment``
    always included); 422 ``invalid_consent`` naming an unknown code."""
    wanted = {c.strip() for c in codes or () if c and c.strip()}
    unknown = sorted(wanted - PURPOSES.keys())
    if unknown:
        raise ConsoleError("invalid_consent", f"未知的同意用途代码 {', '.join(unknown)}（可选：{', '.join(PURPOSES)}）"
                                              f" / unknown consent purpose code {', '.join(unknown)} (known: "
                                              f"{', '.join(PURPOSES)})", 422, field="covers")
    wanted.add(ENROLMENT)
    return " ".join(c for c in PURPOSES if c in wanted)


def covered(covers: Iterable[str]) -> list[str]:
    """The purpose codes that records with these ``covers`` values cover together, in :data:`PURPOSES` order."""
    codes = {c for value in covers for c in (value or "").split()}
    return [c for c in PURPOSES if c in codes]


def evidence_type(data: bytes) -> str:
    """The content type of ``data`` by its magic bytes; 413 ``evidence_too_large`` or 415 ``bad_evidence``."""
    if len(data) > MAX_EVIDENCE_BYTES:
        raise ConsoleError("evidence_too_large", f"同意书文件超过 10 MB / the consent evidence is over 10 MB "
                                                 f"({len(data) / 1048576:.1f} MB)", 413)
    for magic, content_type, _suffix in EVIDENCE_MAGIC:
        if data.startswith(magic):
            return content_type
    raise ConsoleError("bad_evidence", "同意书文件须为 PDF、JPEG 或 PNG / the consent evidence must be a PDF, JPEG "
                                       "or PNG file", 415)


def _today_at(branch: Branch | None) -> date:
    """Today where the consent was taken (the home branch's zone); without one, the latest date on Earth."""
    if branch is not None:
        try:
            return utcnow().astimezone(ZoneInfo(branch.timezone)).date()
        except (KeyError, ValueError):
            pass
    return (utcnow() + timedelta(hours=14)).date()


def _clean_name(name: str | None, content_type: str) -> str:
    base = PureWindowsPath(PurePosixPath(name or "").name).name.strip()
    base = "".join(c for c in base if c.isprintable())[:200]
    if base:
        return base
    suffix = next(s for _m, t, s in EVIDENCE_MAGIC if t == content_type)
    return f"consent{suffix}"


def check_consent_fields(purpose: str, given_on: date, operator: str, branch: Branch | None = None) -> tuple[str, str]:
    """The stripped purpose and operator; 422 ``invalid_consent`` naming the field that is wrong."""
    purpose, operator = (purpose or "").strip(), (operator or "").strip()
    if not 1 <= len(purpose) <= 200:
        raise ConsoleError("invalid_consent", "同意用途须为 1–200 个字符 / the consent purpose must be 1-200 "
                                              "characters", 422, field="purpose")
    if not 1 <= len(operator) <= 128:
        raise ConsoleError("invalid_consent", "经办人须为 1–128 个字符 / the operator must be 1-128 characters",
                           422, field="operator")
    if isinstance(given_on, datetime) or not isinstance(given_on, date):
        raise ConsoleError("invalid_consent", "同意日期须为 YYYY-MM-DD / the consent date must be YYYY-MM-DD",
                           422, field="given_on")
    if given_on > _today_at(branch):
        raise ConsoleError("invalid_consent", f"同意日期 {given_on} 在未来 / the consent date {given_on} is in "
                                              "the future", 422, field="given_on")
    return purpose, operator


def _walk(tx: SessionTransaction | None) -> list[SessionTransaction]:
    chain = []
    while tx is not None:
        chain.append(tx)
        tx = tx.parent
    return chain


def _on_rollback(session: Session, previous: SessionTransaction) -> None:
    pending: list[tuple[BlobStore, str, SessionTransaction]] = session.info.get(_PENDING, [])
    keep = []
    for blobs, key, tx in pending:
        if previous in _walk(tx):
            blobs.delete(key)
        else:
            keep.append((blobs, key, tx))
    session.info[_PENDING] = keep


def _on_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint was released: its blobs still go if an enclosing one fails
        return
    session.info[_PENDING] = []


def track_blob(session: Session, blobs: BlobStore, key: str) -> None:
    """Delete blob ``key`` again if the session's current transaction (or savepoint) rolls back; forget it once
    the outermost transaction commits."""
    if _PENDING not in session.info:
        session.info[_PENDING] = []
        event.listen(session, "after_soft_rollback", _on_rollback)
        event.listen(session, "after_commit", _on_commit)
    tx = session.get_nested_transaction() or session.get_transaction()
    session.info[_PENDING].append((blobs, key, tx))


def add_consent(session: Session, blobs: BlobStore, person: Person, purpose: str, given_on: date, operator: str,
                evidence: bytes | None, evidence_name: str | None, recorded_by: str,
                covers: Sequence[str] = (ENROLMENT,)) -> Consent:
    """Add a consent record to ``person`` (in the caller's transaction), with its evidence stored encrypted.

    Everything is checked before anything is written: 422 ``invalid_consent`` (purpose 1-200 characters,
    operator 1-128, ``given_on`` not after today at the home branch, ``covers`` known codes), 415
    ``bad_evidence``, 413 ``evidence_too_large``. The evidence blob is deleted again when the transaction rolls
    back."""
    branch = person.home_branch if person.home_branch is not None else (
        session.get(Branch, person.home_branch_id) if person.home_branch_id is not None else None)
    purpose, operator = check_consent_fields(purpose, given_on, operator, branch)
    codes = check_covers(covers)
    key = content_type = name = None
    if evidence is not None:
        content_type = evidence_type(evidence)
        name = _clean_name(evidence_name, content_type)
        key = blobs.put(evidence)
        track_blob(session, blobs, key)
    consent = Consent(person_id=person.id, purpose=purpose, given_on=given_on, operator=operator[:128],
                      evidence_key=key, evidence_name=name, evidence_type=content_type, recorded_by=recorded_by[:64],
                      covers=codes, created_at=utcnow())
    session.add(consent)
    session.flush()
    return consent


def consent_json(consent: Consent) -> dict[str, object]:
    """The API's Consent shape."""
    url = (f"/api/persons/{consent.person_id}/consents/{consent.id}/evidence" if consent.evidence_key else None)
    return {"id": consent.id, "purpose": consent.purpose, "given_on": consent.given_on.isoformat(),
            "operator": consent.operator, "covers": covered([consent.covers]),
            "evidence_name": consent.evidence_name, "evidence_url": url,
            "recorded_by": consent.recorded_by, "created_at": consent.created_at.isoformat()}
