"""The gallery feed an edge pulls: the persons of its branch's scope that changed since its version, or all of
them (a snapshot), in pages.

The rules (the sync protocol, "Down"):

- The version V is the newest :class:`~console.tables.GalleryChange` seq. Every writer appends changes under the
  gallery lock (:func:`console.dupindex.lock_gallery`) held until its commit, so seqs become visible in order:
  an edge that has seen V never misses a smaller seq committed later.
- A change answer lists each person with a change in (since, V] once: in full as they are now when they are in
  the branch's scope (:mod:`console.sync.scope`), else their id in ``erased`` (erased, or out of scope now; the
  console keeps no per-branch history, so an id the edge never had may be listed, which it ignores). A person
  whose very first change is after ``since`` and who is not in scope is left out altogether: the edge cannot
  hold them, so a VIP of branch A alone never shows up in B's feed, not even by id.
- A snapshot (since 0, since beyond V after a restore, or asked for) lists every person in scope, ordered by id,
  paged by ``cursor``/``after``; every page carries the version of the first page.
- A page holds at most ``limit`` persons and stops early once its photos pass ``max_bytes``; ``more`` says so,
  and V is then the seq up to which the page is complete (the seq before the first person left out).
- A template is sent only when its model_id is the edge's; otherwise null, and the edge embeds the photos it
  receives anyway (it keeps them for the greeting card), so an engine change never leaves a branch blind.
- ``consent_purposes`` lists the uses the person's consent records cover (:data:`console.consent.PURPOSES`); the
  edge adds live visit shots to a template only when it holds ``visit_template``.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography.fernet import InvalidToken
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, selectinload

from console.consent import covered
from console.context import ConsoleContext
from console.dupindex import TemplateCipher
from console.storage import BlobNotFound
from console.sync.auth import EdgeCaller
from console.sync.scope import in_scope, in_scope_clause
from console.tables import Consent, GalleryChange, Person, Photo, Plate

log = logging.getLogger(__name__)
SCAN_BATCH = 1000  # change rows read per query while collecting a page's persons


@dataclass(frozen=True)
class FeedRequest:
    since: int = 0
    model_id: str = ""
    limit: int = 200
    snapshot: bool = False
    after: str | None = None


def current_version(session: Session) -> int:
    return int(session.scalar(select(func.max(GalleryChange.seq))) or 0)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _Writer:
    """Turns loaded persons into the wire shape, counting the bytes of the photos it has written."""

    def __init__(self, ctx: ConsoleContext, model_id: str) -> None:
        self.ctx, self.model_id, self.bytes = ctx, model_id, 0
        self.cipher = TemplateCipher(ctx.key)

    def person(self, person: Person) -> dict[str, Any]:
        return self.entry(_Row(person.id, person.name, person.role, person.tier, person.version, person.template,
                               person.model_id),
                          [(p.id, p.blob_key, p.sha256, p.content_type) for p in person.photos],
                          [(p.plate, p.kind) for p in person.plates], covered(c.covers for c in person.consents))

    def entry(self, person: _Row, photo_rows: list[tuple[str, str, str, str]],
              plates: list[tuple[str, str]], purposes: list[str] | None = None) -> dict[str, Any]:
        photos = []
        for photo_id, blob_key, sha256, content_type in photo_rows:
            try:
                data = self.ctx.blobs.get(blob_key)
            except BlobNotFound:
                log.error("photo %s of person %s has no blob %s; sent without it", photo_id, person.id, blob_key)
                continue
            encoded = _b64(data)
            self.bytes += len(encoded)
            photos.append({"id": photo_id, "sha256": sha256, "content_type": content_type, "data": encoded})
        template = None
        if person.template is not None and person.model_id and person.model_id == self.model_id:
            try:
                vector = self.cipher.decrypt(person.template)
                template = {"model_id": person.model_id, "vector": _b64(np.asarray(vector, dtype="<f4").tobytes())}
            except InvalidToken:  # sealed under another key: the edge embeds the photos instead
                log.error("the template of person %s cannot be read with this console's key; sent without it",
                          person.id)
        return {"id": person.id, "name": person.name, "role": person.role, "tier": person.tier,
                "version": person.version, "photos": photos, "template": template,
                "plates": [{"plate": plate, "kind": kind} for plate, kind in plates],
                "consent_purposes": purposes or []}


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    name: str
    role: str
    tier: str
    version: int
    template: bytes | None
    model_id: str | None


def _snapshot_rows(session: Session, ids: list[str],
                   scope: ColumnElement[bool]) -> dict[str, tuple[_Row, list[tuple[str, str, str, str]],
                                                                        list[tuple[str, str]], list[str]]]:
    """The persons of a snapshot page as plain rows: four queries, no ORM objects (a page holds hundreds)."""
    if not ids:
        return {}
    # the page as a subquery (in scope, within its first and last id), not a list of hundreds of bound ids that the
    # driver and the server parse again for every query of every page
    page = select(Person.id).where(scope, Person.id.between(ids[0], ids[-1])).correlate(None)
    rows = session.execute(select(Person.id, Person.name, Person.role, Person.tier, Person.version, Person.template,
                                  Person.model_id).where(Person.id.in_(page)))
    out: dict[str, tuple[_Row, list[tuple[str, str, str, str]], list[tuple[str, str]], list[str]]] = {
        r[0]: (_Row(*r), [], [], []) for r in rows}
    for person_id, *photo in session.execute(select(Photo.person_id, Photo.id, Photo.blob_key, Photo.sha256,
                                                    Photo.content_type).where(Photo.person_id.in_(page))
                                             .order_by(Photo.person_id, Photo.created_at, Photo.id)):
        if person_id in out:
            out[person_id][1].append((photo[0], photo[1], photo[2], photo[3]))
    for person_id, plate, kind in session.execute(select(Plate.person_id, Plate.plate, Plate.kind)
                                                  .where(Plate.person_id.in_(page)).order_by(Plate.id)):
        if person_id in out:
            out[person_id][2].append((plate, kind))
    for person_id, covers in session.execute(select(Consent.person_id, Consent.covers)
                                             .where(Consent.person_id.in_(page))):
        if person_id in out:  # the consent purposes: every code any record covers, in PURPOSES order
            out[person_id][3][:] = covered([*out[person_id][3], covers])
    return out


def _load(session: Session, ids: list[str]) -> dict[str, Person]:
    if not ids:
        return {}
    query = (select(Person).where(Person.id.in_(ids))
             .options(selectinload(Person.photos), selectinload(Person.plates), selectinload(Person.scope_branches),
                      selectinload(Person.consents)))
    return {p.id: p for p in session.scalars(query)}


def _answer(edge: EdgeCaller, version: int, *, snapshot: bool, more: bool, persons: list[dict[str, Any]],
            erased: list[str], cursor: str | None = None) -> dict[str, Any]:
    return {"branch": edge.branch_code, "version": version, "snapshot": snapshot, "more": more, "cursor": cursor,
            "persons": persons, "erased": erased}


def snapshot_page(ctx: ConsoleContext, session: Session, edge: EdgeCaller, req: FeedRequest, version: int,
                  max_bytes: int) -> dict[str, Any]:
    scope = in_scope_clause(edge.branch_id, edge.branch_region)
    query = select(Person.id).where(scope).order_by(Person.id)
    if req.after is not None:
        query = query.where(Person.id > req.after)
    ids = list(session.scalars(query.limit(req.limit + 1)))
    more = len(ids) > req.limit
    ids = ids[:req.limit]
    loaded, writer, persons = _snapshot_rows(session, ids, scope), _Writer(ctx, req.model_id), []
    last = req.after
    for i, person_id in enumerate(ids):
        last = person_id
        found = loaded.get(person_id)
        if found is not None:  # None: erased between the two queries, so absent from the snapshot
            persons.append(writer.entry(*found))
        if writer.bytes > max_bytes and i + 1 < len(ids):
            more = True
            break
    cursor = last if more else None
    return _answer(edge, version, snapshot=True, more=more, persons=persons, erased=[], cursor=cursor)


def _changed(session: Session, since: int, top: int, limit: int) -> tuple[dict[str, int], int]:
    """The persons with a change in (since, top], at most ``limit``, each with its first seq there, and the seq
    up to which that list is complete."""
    first: dict[str, int] = {}
    cursor = since
    while cursor < top:
        rows = session.execute(select(GalleryChange.seq, GalleryChange.person_id)
                               .where(GalleryChange.seq > cursor, GalleryChange.seq <= top)
                               .order_by(GalleryChange.seq).limit(SCAN_BATCH)).all()
        if not rows:
            break
        for seq, person_id in rows:
            if person_id not in first:
                if len(first) >= limit:
                    return first, seq - 1
                first[person_id] = seq
        cursor = rows[-1][0]
    return first, top


def changes_page(ctx: ConsoleContext, session: Session, edge: EdgeCaller, req: FeedRequest, top: int,
                 max_bytes: int) -> dict[str, Any]:
    first, complete = _changed(session, req.since, top, req.limit)
    loaded, writer = _load(session, list(first)), _Writer(ctx, req.model_id)
    wanted = {i: p is not None and in_scope(p, edge.branch_id, edge.branch_region) for i, p in
              ((i, loaded.get(i)) for i in first)}
    outside = [i for i, ok in wanted.items() if not ok]
    born: dict[str, int] = {}
    if outside:
        for person_id, seq in session.execute(select(GalleryChange.person_id, func.min(GalleryChange.seq))
                                              .where(GalleryChange.person_id.in_(outside))
                                              .group_by(GalleryChange.person_id)):
            born[person_id] = int(seq)
    persons: list[dict[str, Any]] = []
    erased: list[str] = []
    for sent, (person_id, first_seq) in enumerate(first.items()):  # in the order of their first change
        if sent and writer.bytes > max_bytes:
            complete = first_seq - 1  # everything before this person's first change is in the page
            break
        person = loaded.get(person_id)
        if person is not None and wanted[person_id]:
            persons.append(writer.person(person))
        elif born.get(person_id, 0) <= req.since:  # else they did not exist at since: the edge cannot hold them
            erased.append(person_id)
    return _answer(edge, complete, snapshot=False, more=complete < top, persons=persons, erased=erased)


def gallery_page(ctx: ConsoleContext, edge: EdgeCaller, req: FeedRequest, *, top: int | None = None) -> dict[str, Any]:
    """One answer to ``GET /api/sync/gallery`` without waiting (the route long-polls around it), at version
    ``top`` (None: the newest; :mod:`console.sync.pages` passes the version its cache key holds)."""
    max_bytes = int(ctx.config.sync.page_max_mb * 1024 * 1024)
    with ctx.db.transaction() as session:
        top = current_version(session) if top is None else top
        if req.after is not None and 0 <= req.since <= top:  # the next page of a snapshot taken at since
            return snapshot_page(ctx, session, edge, req, req.since, max_bytes)
        if req.snapshot or req.since <= 0 or req.since > top:
            return snapshot_page(ctx, session, edge, FeedRequest(req.since, req.model_id, req.limit, True, None),
                                 top, max_bytes)
        return changes_page(ctx, session, edge, req, top, max_bytes)


def empty_answer(edge: EdgeCaller, version: int) -> dict[str, Any]:
    return _answer(edge, version, snapshot=False, more=False, persons=[], erased=[])


def poll_version(ctx: ConsoleContext) -> int:
    """The console's version now: one short query (the long-poll's check)."""
    with ctx.db.sessions() as session:
        return current_version(session)
