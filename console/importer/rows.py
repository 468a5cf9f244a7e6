"""One import row: match it by ``external_id``, decide created / updated / unchanged / failed, and write it
through the enrolment service (:mod:`console.enrolment`), the plate and consent services
(:mod:`console.plates`, :mod:`console.consent`) and the branch lookup (:mod:`console.branches`).

The importer adds no rules of its own about persons: every refusal is the service's
:class:`~console.errors.ConsoleError`, shown in the report with its code and message. What it adds is the
*order* of the work, so that a bad row costs little and a re-run costs almost nothing:

1. the cheap checks first (branch known and in the importer's scope, plates valid and free, photo files
   present), so a row that will fail anyway never reaches the face engine;
2. a row of a person who exists is compared with what is stored (fields, plate set, the sha256 of each
   photo, a consent with the same purpose, date and operator and, where the file has ``consent_covers``, the
   same uses); if nothing differs it is ``unchanged`` and no photo is decoded, so re-running a file after a
   crash skips the finished rows at database speed;
3. only new photos go through the face engine (about 0.5 s each with dlib), outside any transaction.

A row's last write, its audit row and its count (:func:`~console.importer.jobs.count_row`) are one
transaction. A new person is created, audited and counted in the enrolment's own transaction (its ``within``
hook). A changed person's field changes (name, tier, notes, scope), plates, consent, ``import_update`` audit row
and count are one transaction too (``update_person``'s, through the same hook). Only a row that changes photos
writes more than once: its photos go first, each in the service's own transaction (they alone can still be
refused after the checks: not the same person, a duplicate). A crash after them leaves the person with the new
photos and the row not counted: the resume runs the row again, finds the photos in place and completes it.

A row whose consent (same purpose, date and operator) is stored with other uses than its ``consent_covers``
changes that record's uses (audited ``consent_update`` with both sets); like a new consent, it is a gallery change
when the uses the person's records cover together change, so the edges learn it (:mod:`console.consent`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from console import audit, branches, consent, enrolment, plates
from console.context import ConsoleContext
from console.errors import ConsoleError, forbidden
from console.importer.csvfile import ImportRow, Scope
from console.importer.jobs import JobLost, RowOutcome, count_row
from console.importer.photos import PhotoFile, PhotoMissing, PhotoSource
from console.security import Principal
from console.tables import Consent, Person
from vision.errors import VisionError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stored:
    """What the console holds of a person, in the terms of a CSV row."""

    person_id: str
    name: str
    role: str
    tier: str
    home_branch: str
    home_branch_id: int
    scope: Scope
    plates: frozenset[str]
    plate_ids: dict[str, int]
    photos: dict[str, str]  # sha256 -> photo id
    notes: str
    consents: frozenset[tuple[str, str, str]]  # (purpose, given_on iso, operator)
    version: int  # the gallery change that last touched them
    consent_covers: dict[tuple[str, str, str], tuple[tuple[int, str], ...]] = field(default_factory=dict)
    # (purpose, given_on iso, operator) -> (consent id, covers) of each record with those, oldest first


def _scope_of(person: Person) -> Scope:
    if person.scope_kind == "all":
        return Scope("all")
    if person.scope_kind == "region":
        return Scope("region", region=person.scope_region)
    return Scope("branches", branches=tuple(sorted(b.code for b in person.scope_branches)))


def load_stored(session: Session, person_id: str) -> Stored:
    person = session.get_one(Person, person_id)
    by_key: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
    for c in sorted(person.consents, key=lambda c: c.id):
        by_key.setdefault((c.purpose, c.given_on.isoformat(), c.operator), []).append((c.id, c.covers))
    return Stored(person.id, person.name, person.role, person.tier, person.home_branch.code, person.home_branch_id,
                  _scope_of(person), frozenset(p.plate for p in person.plates),
                  {p.plate: p.id for p in person.plates}, {p.sha256: p.id for p in person.photos}, person.notes,
                  frozenset((c.purpose, c.given_on.isoformat(), c.operator) for c in person.consents),
                  person.version, {k: tuple(v) for k, v in by_key.items()})


def covers_change(row: ImportRow, stored: Stored) -> tuple[int, str] | None:
    """The stored consent record the row names (same purpose, date and operator) and the ``covers`` it should
    have, when the row's ``consent_covers`` differs from every such record's; None when nothing is to change."""
    if row.consent is None or row.consent.covers is None:
        return None
    records = stored.consent_covers.get((row.consent.purpose, row.consent.given_on.isoformat(),
                                         row.consent.operator), ())
    wanted = " ".join(row.consent.covers)
    if not records or any(c == wanted for _id, c in records):
        return None
    return records[-1][0], wanted


class RowImporter:
    """Processes rows for one job as ``actor``; safe to call from several worker threads at once."""

    def __init__(self, ctx: ConsoleContext, actor: Principal, photos: PhotoSource) -> None:
        self.ctx, self.actor, self.photos = ctx, actor, photos

    def __call__(self, row: ImportRow, job_id: str, turn: Callable[[], None]) -> RowOutcome:
        """The row's outcome, written and counted (see the module docstring)."""
        counted = False
        try:
            outcome, counted = self._apply(row, job_id, turn)
        except JobLost:
            raise
        except ConsoleError as exc:
            outcome = RowOutcome.failed(row, exc.code, exc.message)
        except PhotoMissing as exc:
            outcome = RowOutcome.failed(row, "photo_missing", exc.reason)
        except VisionError as exc:  # the engine pool busy or closed: this row, not the file, failed
            outcome = RowOutcome.failed(row, "engine_error", str(exc))
        except (SQLAlchemyError, OSError):
            raise  # the database or the disk: every row would fail, so the job stops (resumable)
        except Exception as exc:  # a fault of this row's data the services did not foresee: the rest go on
            logger.exception("import job %s: row %d failed unexpectedly", job_id, row.line)
            outcome = RowOutcome.failed(row, "internal_error", f"{type(exc).__name__}: {exc}")
        if not counted:  # nothing was written: the count is the row's one transaction
            with self.ctx.db.transaction() as session:
                count_row(session, job_id, outcome)
        return outcome

    def _finish(self, session: Session, job_id: str, row: ImportRow, outcome: RowOutcome) -> RowOutcome:
        """Audit and count a created or updated row in its last write's transaction."""
        assert outcome.person_id is not None
        audit.record(session, self.actor, f"import_{outcome.status[:-1]}", object_type="person",
                     object_id=outcome.person_id, branch_code=self._home_code(session, outcome.person_id),
                     detail={"job": job_id, "row": row.line, "external_id": row.external_id,
                             **({"changed": outcome.reason.split(", ")} if outcome.reason else {})})
        count_row(session, job_id, outcome)
        return outcome

    @staticmethod
    def _home_code(session: Session, person_id: str) -> str | None:
        person = session.get(Person, person_id)
        return person.home_branch.code if person is not None else None

    # -- deciding -------------------------------------------------------------------------------------------

    def _apply(self, row: ImportRow, job_id: str, turn: Callable[[], None]) -> tuple[RowOutcome, bool]:
        """The row's outcome, and whether it was counted already (in its last write's transaction)."""
        existing = enrolment.person_id_by_external_id(self.ctx, row.external_id)
        if existing is None:
            return self._create(row, job_id, turn), True
        with self.ctx.db.transaction() as session:
            stored = load_stored(session, existing)
        if not self.actor.sees_branch(stored.home_branch_id):
            raise forbidden(f"external_id {row.external_id} belongs to a person of a branch outside your scope")
        return self._update(row, stored, job_id, turn)

    def _scope_codes(self, scope: Scope | None) -> Scope | None:
        if scope is None or scope.kind != "branches":
            return scope
        with self.ctx.db.transaction() as session:
            codes = tuple(sorted({branches.branch_by_code(session, c).code for c in scope.branches}))
        return Scope("branches", branches=codes)

    def _plates(self, wanted: tuple[str, ...], person_id: str | None) -> frozenset[str]:
        normalised = frozenset(plates.validate_plate(p)[0] for p in wanted)
        with self.ctx.db.transaction() as session:
            for plate in sorted(normalised):
                plates.ensure_plate_free(session, plate, except_person=person_id)
        return normalised

    def _read(self, names: tuple[str, ...]) -> list[PhotoFile]:
        return [self.photos.read(n) for n in names]

    def _check(self, files: list[PhotoFile]) -> list[enrolment.CheckedPhoto]:
        checked = []
        for f in files:
            try:
                checked.append(enrolment.check_photo(self.ctx, enrolment.PhotoUpload(f.data, field=f.name)))
            except ConsoleError as exc:
                raise _named(exc) from exc
        return checked

    # -- new person -----------------------------------------------------------------------------------------

    def _create(self, row: ImportRow, job_id: str, turn: Callable[[], None]) -> RowOutcome:
        """A new person. The branch, scope and plates are checked before the photos reach the engine; the
        service checks everything again, and the duplicate face and plate under its gallery lock."""
        for column in ("name", "role", "home_branch"):
            if not getattr(row, column):
                raise ConsoleError("missing_field", f"{column} is required for a new person", 422)
        if row.photos is None:
            raise ConsoleError("no_photo", "a new person needs at least one photo (photos is empty)", 422)
        if row.consent is None:
            raise ConsoleError("no_consent", "a new person needs consent_purpose, consent_date and "
                                             "consent_operator", 422)
        assert row.home_branch is not None and row.name is not None and row.role is not None
        with self.ctx.db.transaction() as session:
            home = branches.branch_by_code(session, row.home_branch)
            if not self.actor.sees_branch(home.id):
                raise forbidden(f"branch {home.code} is outside your scope")
        scope = self._scope_codes(row.scope) or Scope("branches")
        plate_set = self._plates(row.plates or (), None)
        checked = self._check(self._read(row.photos))
        turn()
        done: list[RowOutcome] = []

        def count(session: Session, person: Person) -> None:
            done.append(self._finish(session, job_id, row, RowOutcome(row.line, row.external_id, person.name,
                                                                      "created", person_id=person.id)))

        try:
            enrolment.create_person(
                self.ctx, self.actor,
                enrolment.PersonInput(name=row.name, role=row.role, tier=row.tier or "", home_branch=home.code,
                                      scope_kind=scope.kind, scope_region=scope.region,
                                      scope_branches=scope.branches, external_id=row.external_id,
                                      notes=row.notes or "", plates=tuple(sorted(plate_set))),
                checked, enrolment.ConsentInput(row.consent.purpose, row.consent.given_on, row.consent.operator,
                                                covers=row.consent.covers or ()),
                audit_detail={"import": job_id, "row": row.line}, within=count)
        except ConsoleError as exc:
            raise _named(exc) from exc
        return done[0]

    # -- existing person ------------------------------------------------------------------------------------

    def _update(self, row: ImportRow, stored: Stored, job_id: str,
                turn: Callable[[], None]) -> tuple[RowOutcome, bool]:
        if row.role is not None and row.role != stored.role:
            raise ConsoleError("cannot_change", f"role is {stored.role}; an import cannot change a person's role",
                               422)
        if row.home_branch is not None and row.home_branch.strip().upper() != stored.home_branch:
            raise ConsoleError("cannot_change", f"home_branch is {stored.home_branch}; an import cannot move a "
                                                "person to another branch", 422)
        fields: dict[str, Any] = {}
        for column in ("name", "tier", "notes"):
            value = getattr(row, column)
            if value is not None and value != getattr(stored, column):
                fields[column] = value
        if stored.role == "vip" and row.scope_given:
            scope = self._scope_codes(row.scope) or Scope("branches", branches=(stored.home_branch,))
            if scope != stored.scope:
                fields.update(scope_kind=scope.kind, scope_region=scope.region, scope_branches=scope.branches)
        plate_set = self._plates(row.plates, stored.person_id) if row.plates is not None else stored.plates
        files = self._read(row.photos) if row.photos is not None else []
        by_hash = {f.sha256: f for f in files}
        to_add = [f for h, f in by_hash.items() if h not in stored.photos]
        to_remove = [pid for h, pid in stored.photos.items() if files and h not in by_hash]
        new_consent = row.consent is not None and (row.consent.purpose, row.consent.given_on.isoformat(),
                                                   row.consent.operator) not in stored.consents
        new_covers = None if new_consent else covers_change(row, stored)
        changed = [*fields, *(["photos"] if to_add or to_remove else []),
                   *(["plates"] if plate_set != stored.plates else []),
                   *(["consent"] if new_consent or new_covers else [])]
        changed = list(dict.fromkeys("scope" if c.startswith("scope_") else c for c in changed))
        if not changed:
            return RowOutcome(row.line, row.external_id, stored.name, "unchanged", person_id=stored.person_id), False
        checked = self._check(to_add)
        turn()
        detail = {"import": job_id, "row": row.line}
        person_id = stored.person_id
        try:  # the photos first: the service may still refuse one (not the same person, a duplicate)
            self._swap_photos(person_id, checked, to_remove, detail)
        except ConsoleError as exc:
            raise _named(exc) from exc
        done: list[tuple[RowOutcome, bool]] = []

        def last_write(session: Session, person: Person) -> None:
            """Plates, consent, the audit row and the count, in the fields' transaction (or one of their own)."""
            for plate in sorted(stored.plates - plate_set):
                plates.remove_plate(session, person, stored.plate_ids[plate])
            for plate in sorted(plate_set - stored.plates):
                plates.add_plate(session, person, plate)
            before = consent.covered(c.covers for c in person.consents)
            if new_consent and row.consent is not None:
                consent.add_consent(session, self.ctx.blobs, person, row.consent.purpose, row.consent.given_on,
                                    row.consent.operator, None, None, self.actor.actor,
                                    covers=row.consent.covers or ())
            if new_covers is not None:
                self._set_covers(session, person, *new_covers, detail)
            session.flush()
            session.expire(person, ["consents"])
            if consent.covered(c.covers for c in person.consents) != before:  # the edges learn the uses
                plates.touch_person(session, person)
            if person.version == stored.version and not new_consent and new_covers is None:  # nothing to change
                outcome = RowOutcome(row.line, row.external_id, stored.name, "unchanged", person_id=person_id)
                count_row(session, job_id, outcome)
                done.append((outcome, True))
                return
            done.append((self._finish(session, job_id, row, RowOutcome(
                row.line, row.external_id, fields.get("name", stored.name), "updated", reason=", ".join(changed),
                person_id=person_id)), True))

        if fields:
            enrolment.update_person(self.ctx, self.actor, person_id, enrolment.PersonChanges(**fields),
                                    audit_detail=detail, within=last_write)
        else:
            with self.ctx.db.transaction() as session:
                last_write(session, session.get_one(Person, person_id))
        return done[0]

    def _set_covers(self, session: Session, person: Person, consent_id: int, covers: str,
                    detail: dict[str, Any]) -> None:
        """Change the uses a stored consent record covers, audited ``consent_update`` with both sets."""
        record = session.get_one(Consent, consent_id)
        old = consent.covered([record.covers])
        record.covers = consent.check_covers(covers.split())
        audit.record(session, self.actor, "consent_update", object_type="person", object_id=person.id,
                     branch_code=person.home_branch.code,
                     detail={"consent_id": consent_id, "before": old, "covers": consent.covered([record.covers]),
                             **detail})

    def _swap_photos(self, person_id: str, checked: list[enrolment.CheckedPhoto], to_remove: list[str],
                     detail: dict[str, Any]) -> None:
        """Add the new photos and remove the dropped ones, never above the maximum nor down to none."""
        count = len(enrolment.photo_hashes(self.ctx, person_id))
        removing = list(to_remove)
        for photo in checked:
            if count >= enrolment.MAX_PHOTOS and removing:
                enrolment.remove_photo(self.ctx, self.actor, person_id, removing.pop(0), audit_detail=detail)
                count -= 1
            enrolment.add_photo(self.ctx, self.actor, person_id, photo, audit_detail=detail)
            count += 1
        for photo_id in removing:
            enrolment.remove_photo(self.ctx, self.actor, person_id, photo_id, audit_detail=detail)


def _named(exc: ConsoleError) -> ConsoleError:
    """``exc`` with the photo's file name in front of its message when it is about one photo."""
    name = exc.extra.get("photo")
    if not isinstance(name, str) or name in exc.message:
        return exc
    return ConsoleError(exc.code, f"{name}: {exc.message}", exc.status, **exc.extra)
