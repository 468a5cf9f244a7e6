"""Reading persons as a caller may see them: one person (404 outside the caller's scope, so the ids of other
branches are never confirmed), the list with its filters, and the JSON shapes of the API contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, String, cast, exists, false, func, literal_column, select, union
from sqlalchemy.orm import Session, selectinload

from console.consent import consent_json
from console.context import ConsoleContext
from console.errors import not_found
from console.paging import capped_count
from console.plates import plate_json
from console.security import Principal
from console.tables import AuditRow, Branch, Consent, Person, PersonBranch, Photo, Plate


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


def _search(q: str, backend: str) -> ColumnElement[bool]:
    """Persons whose name, customer number or plate holds ``q`` (LIKE's wildcards literal, any case): a union
    of one index read each, not an OR, which no index serves. PostgreSQL reads trigram indexes on lower(name)
    and lower(external_id) (revision 0006). SQLite's LIKE ignores ASCII case by itself, and it reads the name's
    and the customer number's b-tree indexes whole, which hold the rowid but not the id (reading the table's
    wide rows instead costs five times more). Materialised, so that the matches are found once per query
    rather than the planner walking the newest-first index and probing each person."""
    key: ColumnElement[Any]
    name: ColumnElement[Any]
    external_id: ColumnElement[Any]
    if backend == "postgresql":
        key, text_q = Person.id.expression, q.lower()
        name, external_id = func.lower(Person.name), func.lower(Person.external_id)
    else:
        key, text_q = literal_column("persons.rowid"), q
        name, external_id = Person.name.expression, Person.external_id.expression
    plates = select(Plate.person_id).where(Plate.plate.contains(q.upper().replace("·", ""), autoescape=True))
    matches = union(select(key.label("key")).select_from(Person).where(name.contains(text_q, autoescape=True)),
                    select(key).select_from(Person).where(external_id.contains(text_q, autoescape=True)),
                    select(key).select_from(Person).where(Person.id.in_(plates))
                    ).cte("matches").prefix_with("MATERIALIZED")
    return key.in_(select(matches.c.key))


def _where(actor: Principal, f: PersonFilter, backend: str) -> list[ColumnElement[bool]]:
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
        clauses.append(_search(q, backend))
    return clauses


_SEP = "\x1f"  # joins a person's plates and scope codes in one column: neither a plate nor a code holds it


def _joined(column: Any, where: ColumnElement[bool]) -> Any:
    return select(func.aggregate_strings(column, _SEP)).where(where).scalar_subquery()


def list_persons(session: Session, actor: Principal, f: PersonFilter,
                 known_total: tuple[int, bool] | None = None) -> dict[str, Any]:
    """``{items: [PersonRow], total, total_exact}`` of the persons ``actor`` may see, newest change first.

    One query of the page's columns: the page's ids first (the (updated_at, id) index read backwards, so the
    skipped rows cost an index step each), then per listed person the home branch, photo count, first photo,
    plates, consent and scope codes as subqueries. No ORM objects and no template is read. ``known_total``: the
    (total, exact) of the same filter and scope when the caller already knows it (in this transaction's data),
    which saves the count."""
    clauses = _where(actor, f, session.get_bind().dialect.name)
    total, exact = known_total or capped_count(session, select(Person.id).where(*clauses))
    page = (select(Person.id, Person.updated_at).where(*clauses)
            .order_by(Person.updated_at.desc(), Person.id.desc())
            .limit(max(1, min(f.limit, MAX_LIMIT))).offset(max(0, f.offset)).subquery())
    first_photo = (select(Photo.id).where(Photo.person_id == Person.id).order_by(Photo.created_at, Photo.id)
                   .limit(1).scalar_subquery())
    rows = session.execute(
        select(Person.id, Person.external_id, Person.name, Person.role, Person.tier, Branch.code, Branch.name,
               Person.scope_kind, Person.scope_region, Person.created_at, Person.updated_at,
               select(func.count()).where(Photo.person_id == Person.id).scalar_subquery(), first_photo,
               _joined(cast(Plate.id, String) + ":" + Plate.plate, Plate.person_id == Person.id),
               exists().where(Consent.person_id == Person.id),
               select(func.aggregate_strings(Branch.code, _SEP)).select_from(PersonBranch)
               .join(Branch, Branch.id == PersonBranch.branch_id).where(PersonBranch.person_id == Person.id)
               .correlate(Person).scalar_subquery())
        .join(page, page.c.id == Person.id).join(Branch, Branch.id == Person.home_branch_id)
        .order_by(page.c.updated_at.desc(), page.c.id.desc())).all()
    faces = actor.role in PHOTO_ROLES
    items = [{"id": pid, "external_id": ext, "name": name, "role": role, "tier": tier,
              "home_branch": {"code": code, "name": branch_name},
              "scope": {"kind": kind, "region": region, "branches": sorted(_split(scope))},
              "photo_count": int(photos), "plates": _plates(plates), "has_consent": bool(consent),
              "thumbnail_url": photo_url(pid, first, thumb=True) if first is not None and faces else None,
              "created_at": created.isoformat(), "updated_at": updated.isoformat()}
             for (pid, ext, name, role, tier, code, branch_name, kind, region, created, updated, photos, first,
                  plates, consent, scope) in rows]
    return {"items": items, "total": total, "total_exact": exact}


def _split(joined: str | None) -> list[str]:
    return joined.split(_SEP) if joined else []


def _plates(joined: str | None) -> list[str]:
    """The plates in the order they were added (by id): ``id:plate`` parts, joined in no particular order."""
    parts = [part.partition(":") for part in _split(joined)]
    return [plate for _id, _sep, plate in sorted(parts, key=lambda p: int(p[0]))]


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
