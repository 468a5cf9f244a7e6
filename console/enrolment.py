"""Enrolment at the console: check a photo, create, change and erase a person, add and remove their photos.

The rule: nothing is written unless every check passes, and every change is one numbered gallery change.

- A photo is decoded safely (:func:`vision.imageio.decode_image`, the policy's byte and pixel limits) and goes
  through the edge's own quality gates (:func:`vision.enrolment.check_face` on the context's engine pool). A
  refusal is a :class:`~console.errors.ConsoleError`: 413/415 for a bad file, 422 with the gate's code
  (``no_face``, ``multiple_faces``, ``face_too_small``, ``blurred``, ``profile``, ``low_score``) and
  ``photo=<form field>`` so that a form can point at the file it means.
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
            checked, enrolment.ConsentInput("VIP greeting", date(2026, 1, 5), "李四"),
            audit_detail={"import": job_id})
    else:
        person = enrolment.update_person(ctx, actor, existing, enrolment.PersonChanges(name=..., tier=...))
        # photos: enrolment.photo_hashes(ctx, existing) gives the sha256 of the stored photos, so a row
        # whose photos are unchanged needs no engine work; enrolment.add_photo / remove_photo change them.

Every function runs its own transaction and returns a detached :class:`~console.tables.Person` with its home
branch, scope branches, photos, plates and consents loaded. Every refusal is a ConsoleError (``code``,
``status``, ``extra``), the same the API answers, so a report can show ``exc.code`` and ``exc.message``.
``check_photo`` is the slow step (about 0.5 s with dlib) and touches no database: an importer may run it on
several threads; the write functions serialise on the gallery lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from console.context import ConsoleContext
from console.security import Principal
from console.tables import Person
from vision.enrolment import FaceCheck

MAX_PHOTOS = 5  # enrolment photos per person, the first included (as at the edge)
PERSON_ROLES = ("vip", "staff")
WRITE_ROLES = ("admin", "enroller")
ERASE_ROLES = ("admin", "enroller", "compliance")


@dataclass(frozen=True, slots=True)
class PhotoUpload:
    """One uploaded photo: its bytes and the form field (or file name) a refusal should name."""

    data: bytes
    field: str = "photo"


@dataclass(frozen=True, slots=True)
class CheckedPhoto:
    """A photo that passed every gate: its face check, the decoded size and what is stored of the file."""

    upload: PhotoUpload
    face: FaceCheck
    width: int
    height: int
    content_type: str
    model_id: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.upload.data).hexdigest()


@dataclass(frozen=True, slots=True)
class ConsentInput:
    """The consent recorded with an enrolment (purpose, date and operator are required)."""

    purpose: str
    given_on: date | None
    operator: str
    evidence: bytes | None = None
    evidence_name: str | None = None


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


@dataclass(frozen=True, slots=True)
class DuplicateMatch:
    """The enrolled person a face already is, as a refusal shows it (``person_id`` only when in scope)."""

    person_id: str
    name: str
    role: str
    tier: str
    branch_code: str
    branch_name: str
    score: float
    in_scope: bool = field(default=False)

    def public(self) -> dict[str, Any]:
        """What a 409 ``duplicate`` carries as ``match``."""
        out: dict[str, Any] = {"name": self.name, "role": self.role, "branch_code": self.branch_code,
                               "branch_name": self.branch_name, "score": round(self.score, 4)}
        if self.in_scope:
            out = {"person_id": self.person_id, **out}
        return out


def check_photo(ctx: ConsoleContext, upload: PhotoUpload) -> CheckedPhoto:
    """Decode and check one photo (no database): ConsoleError 413/415/422 naming ``upload.field``."""
    raise NotImplementedError


def find_duplicate(ctx: ConsoleContext, actor: Principal, embedding: Any, *,
                   exclude: str | None = None) -> DuplicateMatch | None:
    """The best enrolled person at or above ``config.face.duplicate_threshold`` (other than ``exclude``)."""
    raise NotImplementedError


def person_id_by_external_id(ctx: ConsoleContext, external_id: str) -> str | None:
    """The id of the person with ``external_id`` (in any branch), or None."""
    raise NotImplementedError


def photo_hashes(ctx: ConsoleContext, person_id: str) -> list[str]:
    """The sha256 of each stored photo of ``person_id``, oldest first."""
    raise NotImplementedError


def create_person(ctx: ConsoleContext, actor: Principal, data: PersonInput,
                  photos: Sequence[CheckedPhoto | PhotoUpload], consent: ConsentInput, *,
                  audit_detail: dict[str, Any] | None = None) -> Person:
    """Enrol a new person with 1 to 5 photos, their plates and a consent; 409 duplicate / plate_taken, 422
    invalid fields or no_consent, 403 outside the actor's scope. Audited ``enrol``."""
    raise NotImplementedError


def update_person(ctx: ConsoleContext, actor: Principal, person_id: str, changes: PersonChanges, *,
                  audit_detail: dict[str, Any] | None = None) -> Person:
    """Change names, tier, notes, scope or external id; audited ``person_update`` with the changed fields."""
    raise NotImplementedError


def add_photo(ctx: ConsoleContext, actor: Principal, person_id: str, photo: CheckedPhoto | PhotoUpload, *,
              audit_detail: dict[str, Any] | None = None) -> Person:
    """Add a photo (409 too_many_photos / duplicate, 422 not_same_person); the template becomes the mean."""
    raise NotImplementedError


def remove_photo(ctx: ConsoleContext, actor: Principal, person_id: str, photo_id: str, *,
                 audit_detail: dict[str, Any] | None = None) -> Person:
    """Delete a photo (409 last_photo); the template becomes the mean of the rest."""
    raise NotImplementedError


def erase_person(ctx: ConsoleContext, actor: Principal, person_id: str, *,
                 audit_detail: dict[str, Any] | None = None) -> int:
    """Erase ``person_id`` for good (see the module docstring); returns the erasing gallery change's seq."""
    raise NotImplementedError
