"""Reading persons as a caller may see them: one person (404 outside the caller's scope, so the ids of other
branches are never confirmed), the list with its filters, and the JSON shapes of the API contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.orm import Session, selectinload

from console.consent import consent_json
from console.context import ConsoleContext
from console.errors import not_found
from console.paging import capped_count
from console.plates import plate_json
from console.security import Principal
from console.tables import AuditRow, Branch, Person, Photo, Plate


def visible_person(session: Session, actor: Principal, person_id: str) -> Person:
    """``person_id`` when their home branch is in ``actor``'s scope; 404 otherwise."""
    person = session.get(Person, person_id)
    if person is None or not actor.sees_branch(person.home_branch_id):
        raise not_found("person", person_id)
    return person


def loaded_person(session: Session, person_id: str) -> Person:
    """``person_id`` with photos, plates, consents and scope branches loaded (usable after the session ends)."""
    return session.scalars(select(Person).where(Person.id == person_id).options(
        selectinload(Person.photos), selectinload(Person.plates), selectinload(Person.consents),
        selectinload(Person.scope_branches)).execution_options(populate_existing=True)).one()


def person_id_by_external_id(ctx: ConsoleContext, external_id: str) -> str | None:
    """The id of the person with ``external_id`` (in any branch), or None."""
    with ctx.db.transaction() as session:
        return session.scalar(select(Person.id).where(Person.external_id == external_id.strip()))


def photo_hashes(ctx: ConsoleContext, person_id: str) -> list[str]:
    """The sha256 of each stored photo of ``person_id``, oldest first."""
    with ctx.db.transaction() as session:
        return list(session.scalars(select(Photo.sha256).where(Photo.person_id == person_id)
                                    .order_by(Photo.created_at, Photo.id)))


PHOTO_ROLES = ("admin", "enroller", "compliance")  # who may see a face (photos, thumbnails)
READ_ROLES = ("admin", "enroller", "compliance", "branch_it")  # who may list and read persons
MAX_LIMIT = 200
HISTORY = 50


@dataclass(frozen=True, slots=True)
class PersonFilter:
    q: str = ""
    role: str = ""
    tier: str = ""
    branch: str = ""  # a branch code
    limit: int = 50
    offset: int = 0


def _where(actor: Principal, f: PersonFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if actor.branch_ids is not None:
        clauses.append(Person.home_branch_id.in_(sorted(actor.branch_ids)) if actor.branch_ids else false())
    if f.role:
        clauses.append(Person.role == f.role)
    if f.tier:
        clauses.append(Person.tier == f.tier)
    if f.branch:
        clauses.append(Person.home_branch_id.in_(select(Branch.id).where(Branch.code == f.branch.strip().upper())))
    q = f.q.strip()
    if q:
        plates = select(Plate.person_id).where(Plate.plate.contains(q.upper().replace("·", ""), autoescape=True))
        clauses.append(or_(func.lower(Person.name).contains(q.lower(), autoescape=True),
                           func.lower(Person.external_id).contains(q.lower(), autoescape=True),
                           Person.id.in_(plates)))
    return clauses


def list_persons(session: Session, actor: Principal, f: PersonFilter) -> dict[str, Any]:
    """``{items: [PersonRow], total, total_exact}`` of the persons ``actor`` may see, newest change first."""
    clauses = _where(actor, f)
    total, exact = capped_count(session, select(Person.id).where(*clauses))
    # both keys descending, so the (updated_at, id) index is read backwards instead of sorting every person
    rows = session.scalars(select(Person).where(*clauses).order_by(Person.updated_at.desc(), Person.id.desc())
                           .limit(max(1, min(f.limit, MAX_LIMIT))).offset(max(0, f.offset))
                           .options(selectinload(Person.photos), selectinload(Person.plates),
                                    selectinload(Person.consents), selectinload(Person.scope_branches))).all()
    return {"items": [person_row(p, actor) for p in rows], "total": total, "total_exact": exact}


def photo_url(person_id: str, photo_id: str, *, thumb: bool = False) -> str:
    return f"/api/persons/{person_id}/photos/{photo_id}" + ("?thumb=1" if thumb else "")


def person_row(person: Person, actor: Principal) -> dict[str, Any]:
    """The contract's PersonRow (a thumbnail only for the roles that may see faces)."""
    first = person.photos[0] if person.photos else None
    thumb = photo_url(person.id, first.id, thumb=True) if first is not None and actor.role in PHOTO_ROLES else None
    return {"id": person.id, "external_id": person.external_id, "name": person.name, "role": person.role,
            "tier": person.tier, "home_branch": {"code": person.home_branch.code, "name": person.home_branch.name},
            "scope": {"kind": person.scope_kind, "region": person.scope_region,
                      "branches": sorted(b.code for b in person.scope_branches)},
            "photo_count": len(person.photos), "plates": [p.plate for p in person.plates],
            "has_consent": bool(person.consents), "thumbnail_url": thumb,
            "created_at": person.created_at.isoformat(), "updated_at": person.updated_at.isoformat()}


def person_detail(session: Session, person: Person, actor: Principal) -> dict[str, Any]:
    """The contract's PersonDetail: the row, notes, photos, plates, consents, recent history and version."""
    history = session.scalars(select(AuditRow).where(AuditRow.object_id == person.id)
                              .order_by(AuditRow.id.desc()).limit(HISTORY)).all()
    photos = [{"id": p.id, "url": photo_url(person.id, p.id) if actor.role in PHOTO_ROLES else None,
               "width": p.width, "height": p.height, "face_px": round(p.face_px, 1),
               "sharpness": round(p.sharpness, 1), "yaw": round(p.yaw, 3), "detector_score": round(p.detector_score, 3),
               "created_at": p.created_at.isoformat()} for p in person.photos]
    return {**person_row(person, actor), "notes": person.notes, "photos": photos,
            "plates": [plate_json(p) for p in person.plates], "consents": [consent_json(c) for c in person.consents],
            "history": [{"id": r.id, "at": r.at.isoformat(), "actor": r.actor, "actor_role": r.actor_role,
                         "action": r.action, "object_type": r.object_type, "object_id": r.object_id,
                         "branch_code": r.branch_code, "detail": r.detail, "ip": r.ip} for r in history],
            "version": person.version}
