"""Enrolment at the console: check a photo, create, change and erase a person, add and remove their photos.

The rule: nothing is written unless every check passes, and every change is one numbered gallery change.

- A photo goes through the edge's own quality gates (:mod:`console.enrol_photos`); a refusal is a
  :class:`~console.errors.ConsoleError` (413/415 bad file, 422 with the gate's code and ``photo=<field>``).
- Photo bytes go to the encrypted blob store before the database transaction and are deleted again when it
  fails. Embeddings and the person's template (the mean of their photos' embeddings) are Fernet tokens under a
  key derived from the data key (:class:`console.dupindex.TemplateCipher`), stored with the engine's model_id.
- The bank-wide duplicate check (:mod:`console.dupindex`) and the insert run under one lock: a process lock,
  and on PostgreSQL a transaction-level advisory lock (:func:`console.dupindex.lock_gallery`), so two
  enrolments of the same face on two replicas cannot both pass the check.
- Each change appends a :class:`~console.tables.GalleryChange` and sets ``Person.version`` to its seq; an
  erasure deletes photos, embeddings, template, plates, consents and their blobs, keeps the audit rows, and
  leaves a :class:`~console.tables.Tombstone`.
- Role and scope are checked here, not only in the API, so the bulk importer obeys the same rules: writing
  needs the role admin or enroller and the person's home branch in the actor's scope.

How the bulk importer (and any other caller outside a request) uses it::

    from console import enrolment
    from console.security import principal_for

    with ctx.db.transaction() as session:           # the importing user, as a Principal (scope, role)
        actor = principal_for(session, session.get_one(User, user_id), "import")
    photos = [enrolment.PhotoUpload(data, field=name) for name, data in files]
    checked = [enrolment.check_photo(ctx, p) for p in photos]   # ConsoleError 413/415/422: a failed row
    existing = enrolment.person_id_by_external_id(ctx, "E123")
    if existing is None:
        person = enrolment.create_person(ctx, actor, enrolment.PersonInput(
            name="张三", role="vip", tier="gold", home_branch="SH001", scope_kind="branches",
            scope_branches=("SH001",), external_id="E123", plates=("沪A12345",), notes=""),
            checked, enrolment.ConsentInput("VIP greeting", date(2026, 1, 5), "李四", covers=("visit_template",)),
            audit_detail={"import": job_id})
    else:
        person = enrolment.update_person(ctx, actor, existing, enrolment.PersonChanges(name=..., tier=...))
        # photo_hashes(ctx, existing): the stored photos' sha256 (unchanged photos need no engine work)

Every function runs its own transaction and returns a detached :class:`~console.tables.Person` with its home
branch, scope branches, photos, plates and consents loaded. Every refusal is a ConsoleError (``code``,
``status``, ``extra``), the same the API answers, so a report can show ``exc.code`` and ``exc.message``.
``update_person`` writes nothing when nothing given differs (it returns the old ``version``: "unchanged").
``check_photo`` is the slow step (about 0.5 s with dlib) and touches no database, so an importer may run it on
several threads; the writes serialise on the gallery lock. A photo checked by another model is checked again.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts.text import display_text
from console.audit import record
from console.branches import branch_by_code
from console.consent import add_consent, check_consent_fields, check_covers, evidence_type
from console.context import ConsoleContext
from console.db import utcnow
from console.dupindex import TemplateCipher, lock_gallery
from console.enrol_photos import (
    CheckedPhoto,
    DuplicateMatch,
    PhotoUpload,
    check_photo,
    delete_blobs,
    duplicate_error,
    embeddings,
    ensure_checked,
    find_duplicate,
    matches_for,
    photo_row,
    put_photos,
    refuse_duplicates,
    same_person,
)
from console.errors import ConsoleError, not_found
from console.person_fields import (
    clean_external_id,
    clean_text,
    ensure_external_id_free,
    plate_free_for,
    require_consent,
    resolve_scope,
)
from console.persons_query import loaded_person, person_id_by_external_id, photo_hashes, visible_person
from console.plates import validate_plate
from console.security import Principal
from console.sync.scrub import scrub_person
from console.tables import Consent, GalleryChange, Person, PersonBranch, Photo, Plate, Tombstone
from vision.enrolment import mean_template

__all__ = ["MAX_PHOTOS", "CheckedPhoto", "ConsentInput", "DuplicateMatch", "PersonChanges", "PersonInput",
           "PhotoUpload", "add_photo", "check_photo", "create_person", "erase_person", "find_duplicate",
           "matches_for", "person_id_by_external_id", "photo_hashes", "remove_photo", "update_person"]

MAX_PHOTOS = 5  # enrolment photos per person, the first included (as at the edge)
PERSON_ROLES = ("vip", "staff")
WRITE_ROLES = ("admin", "enroller")
ERASE_ROLES = ("admin", "enroller", "compliance")


@dataclass(frozen=True, slots=True)
class ConsentInput:
    """The consent recorded with an enrolment (purpose, date and operator are required). ``covers``: the uses
    it covers besides the enrolment (codes of :data:`console.consent.PURPOSES`, e.g. ``visit_template``)."""

    purpose: str
    given_on: date | None
    operator: str
    evidence: bytes | None = None
    evidence_name: str | None = None
    covers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PersonInput:
    """A new person. A staff member's scope is forced to their home branch."""

    name: str
    role: str
    tier: str
    home_branch: str  # branch code
    scope_kind: str = "branches"  # all | region | branches
    scope_region: str | None = None
    scope_branches: tuple[str, ...] = ()  # codes; empty with kind branches: the home branch
    external_id: str | None = None
    notes: str = ""
    plates: tuple[str, ...] = ()
    distinct_from: tuple[str, ...] = ()  # enrolled persons a 409 showed whom the enroller confirmed as others


@dataclass(frozen=True, slots=True)
class PersonChanges:
    """A partial update: None leaves a field as it is (``external_id=""`` clears it)."""

    name: str | None = None
    tier: str | None = None
    notes: str | None = None
    scope_kind: str | None = None
    scope_region: str | None = None
    scope_branches: tuple[str, ...] | None = None
    external_id: str | None = None

    def given(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


_LOCK = threading.Lock()  # one enrolment's check-and-commit at a time in this process (see lock_gallery for replicas)


def _touch(session: Session, person: Person, kind: str = "upsert") -> int:
    """Append a gallery change for ``person`` (under the gallery lock) and set their version to it."""
    lock_gallery(session)
    change = GalleryChange(person_id=person.id, kind=kind)
    session.add(change)
    session.flush()
    person.version = change.seq
    person.updated_at = utcnow()
    return change.seq


# -- writes --------------------------------------------------------------------------------------------------
def create_person(ctx: ConsoleContext, actor: Principal, data: PersonInput,
                  photos: Sequence[CheckedPhoto | PhotoUpload], consent: ConsentInput, *,
                  audit_detail: dict[str, Any] | None = None,
                  within: Callable[[Session, Person], None] | None = None) -> Person:
    """Enrol a new person with 1 to 5 photos, their plates and a consent; 409 duplicate / plate_taken, 422
    invalid fields or no_consent, 403 outside the actor's scope. Audited ``enrol``. ``within`` runs last in
    the enrolment's transaction (the bulk importer counts its row there, so the two commit together)."""
    actor.require_role(*WRITE_ROLES)
    name = clean_text(data.name, "name", 128, "姓名")
    if data.role not in PERSON_ROLES:
        raise ConsoleError("invalid", "类别须为 vip 或 staff / role must be vip or staff", 422, field="role")
    tier = clean_text(data.tier or ("staff" if data.role == "staff" else ""), "tier", 32, "等级")
    notes = display_text(data.notes or "", compatibility=False)[:2000]
    external_id = clean_external_id(data.external_id)
    require_consent(consent.purpose, consent.given_on, consent.operator)
    if not photos:
        raise ConsoleError("no_photo", "至少需要一张照片 / at least one photo is needed", 422, photo="photo")
    if len(photos) > MAX_PHOTOS:
        raise ConsoleError("too_many_photos", f"最多 {MAX_PHOTOS} 张照片 / at most {MAX_PHOTOS} photos", 409)
    plates: list[tuple[str, str]] = []
    with ctx.db.transaction() as session:  # everything that needs no face first: a refusal costs no engine time
        home = branch_by_code(session, data.home_branch)
        actor.require_branch(home.id)
        resolve_scope(session, data.scope_kind, data.scope_region, data.scope_branches, home, data.role)
        ensure_external_id_free(session, external_id)
        check_consent_fields(consent.purpose, consent.given_on or date.min, consent.operator, home)
        check_covers(consent.covers)
        if consent.evidence is not None:
            evidence_type(consent.evidence)
        for text_ in data.plates:
            plates.append(validate_plate(text_))
            plate_free_for(session, actor, plates[-1][0])
    photos_ok = [ensure_checked(ctx, p) for p in photos]
    if len({p.sha256 for p in photos_ok}) < len(photos_ok):
        raise ConsoleError("duplicate_photo", "同一张照片上传了两次 / the same photo was uploaded twice", 409)
    template = photos_ok[0].face.embedding
    for i in range(1, len(photos_ok)):
        same_person(ctx, template, photos_ok[i], name)
        template = mean_template([c.face.embedding for c in photos_ok[:i + 1]])
    keys = put_photos(ctx, photos_ok)
    try:
        with _LOCK, ctx.db.transaction() as session:
            lock_gallery(session)
            home = branch_by_code(session, data.home_branch)
            kind, region, scope_branches = resolve_scope(session, data.scope_kind, data.scope_region,
                                                         data.scope_branches, home, data.role)
            ensure_external_id_free(session, external_id)
            confirmed = [m for photo in photos_ok for m in refuse_duplicates(
                ctx, actor, photo.face.embedding, photo_field=photo.upload.field, distinct_from=data.distinct_from,
                session=session)]
            for plate_text, _kind in plates:
                plate_free_for(session, actor, plate_text)
            person = Person(id=secrets.token_hex(16), external_id=external_id, name=name, role=data.role, tier=tier,
                            notes=notes, home_branch_id=home.id, scope_kind=kind, scope_region=region,
                            template=TemplateCipher(ctx.key).encrypt(template), model_id=photos_ok[0].model_id,
                            created_by=actor.actor[:64], created_at=utcnow(), updated_at=utcnow())
            person.scope_branches = scope_branches
            session.add(person)
            session.flush()
            session.add_all([photo_row(ctx, person.id, c, k, actor) for c, k in zip(photos_ok, keys, strict=True)])
            session.add_all([Plate(person_id=person.id, plate=p, kind=k) for p, k in plates])
            add_consent(session, ctx.blobs, person, consent.purpose, consent.given_on or date.min, consent.operator,
                        consent.evidence, consent.evidence_name, actor.actor, covers=consent.covers)
            _flush_unique(session)
            seq = _touch(session, person)
            record(session, actor, "enrol", object_type="person", object_id=person.id, branch_code=home.code,
                   detail={"role": data.role, "tier": tier, "photos": len(photos_ok), "plates": len(plates),
                           "seq": seq, **(audit_detail or {})})
            for match in {m.person_id: m for m in confirmed}.values():  # the enroller said: another person
                record(session, actor, "duplicate_override", object_type="person", object_id=person.id,
                       branch_code=home.code, detail={"match": match.person_id, "score": round(match.score, 4)})
            if within is not None:
                within(session, person)
            return loaded_person(session, person.id)
    except BaseException:
        delete_blobs(ctx, keys)
        raise


def _flush_unique(session: Session) -> None:
    """Flush; a unique key taken meanwhile (plate, external id) by a writer that skipped the gallery lock is 409."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConsoleError("conflict", "刚有其他操作登记了相同的车牌或外部编号，请重试 / a plate or external id was "
                                       "registered meanwhile; try again", 409) from exc


def update_person(ctx: ConsoleContext, actor: Principal, person_id: str, changes: PersonChanges, *,
                  audit_detail: dict[str, Any] | None = None,
                  within: Callable[[Session, Person], None] | None = None) -> Person:
    """Change name, tier, notes, scope or external id; audited ``person_update`` with the changed fields.

    Nothing given differs: nothing is written and the person's ``version`` stays as it was. ``within`` runs
    last in the transaction either way (as in :func:`create_person`)."""
    actor.require_role(*WRITE_ROLES)
    with _LOCK, ctx.db.transaction() as session:
        person = visible_person(session, actor, person_id)
        new: dict[str, Any] = {}
        if changes.name is not None:
            new["name"] = clean_text(changes.name, "name", 128, "姓名")
        if changes.tier is not None:
            new["tier"] = clean_text(changes.tier, "tier", 32, "等级")
        if changes.notes is not None:
            new["notes"] = display_text(changes.notes, compatibility=False)[:2000]
        if changes.external_id is not None:
            new["external_id"] = clean_external_id(changes.external_id)
            ensure_external_id_free(session, new["external_id"], person.id)
        changed = [f for f, v in new.items() if getattr(person, f) != v]
        for field_ in changed:
            setattr(person, field_, new[field_])
        if changes.scope_kind is not None or changes.scope_region is not None or changes.scope_branches is not None:
            codes = changes.scope_branches if changes.scope_branches is not None else tuple(
                b.code for b in person.scope_branches)
            region_in = changes.scope_region if changes.scope_region is not None else person.scope_region
            kind, region, branches = resolve_scope(session, changes.scope_kind or person.scope_kind, region_in, codes,
                                                   person.home_branch, person.role)
            if (kind, region, sorted(b.id for b in branches)) != (person.scope_kind, person.scope_region,
                                                                  sorted(b.id for b in person.scope_branches)):
                person.scope_kind, person.scope_region, person.scope_branches = kind, region, branches
                changed.append("scope")
        if changed:
            _flush_unique(session)
            seq = _touch(session, person)
            record(session, actor, "person_update", object_type="person", object_id=person.id,
                   branch_code=person.home_branch.code, detail={"fields": changed, "seq": seq,
                                                                **(audit_detail or {})})
        if within is not None:
            within(session, person)
        return loaded_person(session, person.id)


def add_photo(ctx: ConsoleContext, actor: Principal, person_id: str, photo: CheckedPhoto | PhotoUpload, *,
              audit_detail: dict[str, Any] | None = None) -> Person:
    """Add a photo (409 too_many_photos / duplicate_photo / duplicate, 422 not_same_person); the template
    becomes the mean of every photo's embedding. Audited ``photo_add``."""
    actor.require_role(*WRITE_ROLES)
    with ctx.db.transaction() as session:
        visible_person(session, actor, person_id)  # 404 before any engine work
    checked = ensure_checked(ctx, photo)
    keys = put_photos(ctx, [checked])
    try:
        with _LOCK, ctx.db.transaction() as session:
            lock_gallery(session)
            person = visible_person(session, actor, person_id)
            stored = list(session.scalars(select(Photo).where(Photo.person_id == person.id)))
            if len(stored) >= MAX_PHOTOS:
                raise ConsoleError("too_many_photos", f"此人已有 {len(stored)} 张照片，最多 {MAX_PHOTOS} 张 / "
                                                      f"{person.name} already has {len(stored)} photos; at most "
                                                      f"{MAX_PHOTOS} are kept", 409)
            if checked.sha256 in {p.sha256 for p in stored}:
                raise ConsoleError("duplicate_photo", "这张照片已登记 / this photo is already enrolled", 409)
            vectors = embeddings(ctx, stored, checked.model_id)
            own = mean_template(vectors) if vectors else checked.face.embedding
            other = find_duplicate(ctx, actor, checked.face.embedding, exclude=person.id, session=session)
            if other is not None and other.score > float(np.dot(own, checked.face.embedding)):
                raise duplicate_error(other, checked.upload.field)
            same_person(ctx, own, checked, person.name)
            session.add(photo_row(ctx, person.id, checked, keys[0], actor))
            person.template = TemplateCipher(ctx.key).encrypt(mean_template([*vectors, checked.face.embedding]))
            person.model_id = checked.model_id
            seq = _touch(session, person)
            record(session, actor, "photo_add", object_type="person", object_id=person.id,
                   branch_code=person.home_branch.code, detail={"photos": len(stored) + 1, "seq": seq,
                                                                **(audit_detail or {})})
            return loaded_person(session, person.id)
    except BaseException:
        delete_blobs(ctx, keys)
        raise


def remove_photo(ctx: ConsoleContext, actor: Principal, person_id: str, photo_id: str, *,
                 audit_detail: dict[str, Any] | None = None) -> Person:
    """Delete a photo and its blob (409 last_photo); the template becomes the mean of the rest."""
    actor.require_role(*WRITE_ROLES)
    with _LOCK, ctx.db.transaction() as session:
        lock_gallery(session)
        person = visible_person(session, actor, person_id)
        stored = list(session.scalars(select(Photo).where(Photo.person_id == person.id)))
        target = next((p for p in stored if p.id == photo_id), None)
        if target is None:
            raise not_found("photo", photo_id)
        if len(stored) == 1:
            raise ConsoleError("last_photo", "每人至少保留一张照片 / a person keeps at least one photo", 409)
        rest = [p for p in stored if p.id != photo_id]
        model_id = person.model_id or ctx.engine().model_id
        vectors = embeddings(ctx, rest, model_id)
        person.template = TemplateCipher(ctx.key).encrypt(mean_template(vectors)) if vectors else None
        session.delete(target)
        seq = _touch(session, person)
        record(session, actor, "photo_remove", object_type="person", object_id=person.id,
               branch_code=person.home_branch.code, detail={"photo_id": photo_id, "seq": seq, **(audit_detail or {})})
        blob = target.blob_key
        result = loaded_person(session, person.id)
    ctx.blobs.delete(blob)  # after the commit: a failed transaction keeps the photo it still lists
    return result


def erase_person(ctx: ConsoleContext, actor: Principal, person_id: str, *,
                 audit_detail: dict[str, Any] | None = None) -> int:
    """Erase ``person_id`` for good (see the module docstring); returns the erasing gallery change's seq."""
    actor.require_role(*ERASE_ROLES)
    with _LOCK, ctx.db.transaction() as session:
        lock_gallery(session)
        person = visible_person(session, actor, person_id)
        blobs = [*session.scalars(select(Photo.blob_key).where(Photo.person_id == person.id)),
                 *session.scalars(select(Consent.evidence_key).where(Consent.person_id == person.id))]
        tables = (("photos", Photo), ("plates", Plate), ("consents", Consent), ("scope", PersonBranch))
        counts = {name: _deleted(session, table, person.id) for name, table in tables}
        branch_code, home_id = person.home_branch.code, person.home_branch_id
        session.expunge(person)
        session.execute(delete(Person).where(Person.id == person_id))
        change = GalleryChange(person_id=person_id, kind="erase")
        session.add(change)
        session.flush()
        session.add(Tombstone(person_id=person_id, erased_by=actor.actor[:64], seq=change.seq, home_branch_id=home_id))
        session.flush()  # the tombstone before the scrub: an ingest waiting on the scrub's lock then sees it
        scrubbed = scrub_person(session, person_id)  # their name leaves the edges' events (console.sync.scrub)
        record(session, actor, "erase", object_type="person", object_id=person_id, branch_code=branch_code,
               detail={**counts, "seq": change.seq, "scrubbed": scrubbed, **(audit_detail or {})})
        seq = change.seq
    delete_blobs(ctx, blobs)  # after the commit: the rows that named them are gone for good
    return seq


def _deleted(session: Session, table: type[Photo] | type[Plate] | type[Consent] | type[PersonBranch],
             person_id: str) -> int:
    result = session.execute(delete(table).where(table.person_id == person_id))
    return int(getattr(result, "rowcount", 0) or 0)
