"""A snapshot that comes in several pages is staged in the store, not in memory, until its last page came.

A new box's first snapshot holds every person of its branch's scope with all their photos: at 100k persons that
is gigabytes, more than an edge box should hold in memory at once. Each page is therefore embedded as it arrives
and written to the store; only the templates stay in memory (100k x 128 floats: 51 MB). The apply then streams the
staged persons into its one transaction and empties the stage in it. A crash while staging leaves rows that the
next snapshot's first page removes; nothing of them is ever used as the box's gallery.

The layout (:mod:`edge.sync.tables`): each person's entry as the console sent it, less its photos and template
(name, tier, plates..., a few hundred bytes), encrypted, in ``sync_staged``; each of their photos in
``sync_staged_photos``, encrypted with the data key exactly as the store keeps person photos. The apply moves those
ciphertexts into the store unchanged: a staged photo is encrypted once, never decrypted and encrypted again, and
never base64- or JSON-encoded at the box. A page's photos are checked against their sha256 once, as it is parsed
(a photo that fails is not staged).

Key rotation re-encrypts both staged columns with everything else (they are ``info=ENCRYPTED``). A stage also
remembers the key it was staged under: when the store's key changed since (a rotation in the middle of a
snapshot), adding to it or applying it raises :class:`StageKeyChanged`, nothing is applied, and the next pull
stages the snapshot anew, so no ciphertext of a retired key can reach the store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from edge.store.db import Store
from edge.sync.changes import ChangeSet, PersonChange, PhotoChange, parse_person
from edge.sync.tables import StagedPersonRow, StagedPhotoRow, create_tables
from vault.keys import decrypt
from vision.types import FloatArray

READ_BATCH = 500  # staged persons read per query while the apply streams them
UNSTAGED = ("photos", "template")  # what of a console entry is not kept in its staged entry
Embed = Callable[[PersonChange], tuple[FloatArray | None, str | None]]


class StageKeyChanged(RuntimeError):
    """The store's data key changed while a snapshot was staged: the snapshot is staged again from its start."""


class SnapshotStage:
    """The pages of one snapshot (version ``version``), staged as they arrive."""

    def __init__(self, store: Store, version: int, embed: Embed) -> None:
        self._store = store
        self.version = version
        self._embed = embed
        self._cipher = store.cipher  # the key the photos are staged under (and stored under, unchanged)
        self.vectors: dict[str, FloatArray] = {}
        self.failures: dict[str, str] = {}
        create_tables(store.engine)
        with store.session() as s, s.begin():
            self.clear(s)  # what a crashed or abandoned snapshot left

    def _check_key(self) -> None:
        if self._store.cipher is not self._cipher:
            raise StageKeyChanged("the store's data key changed while a snapshot was staged; it is staged again")

    def add(self, page: ChangeSet, entries: list[dict[str, Any]]) -> None:
        """Stage one page: ``page`` parsed (its photos checked), ``entries`` the console's raw person entries of it
        (kept as sent, less their photos and template)."""
        self._check_key()
        cipher = self._cipher
        persons: list[dict[str, Any]] = []
        photos: list[dict[str, Any]] = []
        raw = {str(e.get("id")): e for e in entries}
        for person in page.persons.values():
            vector, failure = self._embed(person)
            if vector is not None:
                self.vectors[person.id] = vector
            self.failures.pop(person.id, None)
            if failure is not None:
                self.failures[person.id] = failure
            entry = {k: v for k, v in raw[person.id].items() if k not in UNSTAGED}
            body = json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            persons.append({"person_id": person.id, "snapshot_version": self.version, "entry": cipher.encrypt(body)})
            photos.extend({"person_id": person.id, "position": i, "sha256": photo.sha256,
                           "photo": cipher.encrypt(photo.data)} for i, photo in enumerate(person.photos))
        if not persons:
            return
        ids = [r["person_id"] for r in persons]
        with self._store.session() as s, s.begin():  # a delete and an insert per table and page (sent again: replaced)
            s.execute(delete(StagedPersonRow).where(StagedPersonRow.person_id.in_(ids)))
            s.execute(delete(StagedPhotoRow).where(StagedPhotoRow.person_id.in_(ids)))
            s.execute(insert(StagedPersonRow), persons)
            if photos:
                s.execute(insert(StagedPhotoRow), photos)

    def ids(self) -> set[str]:
        with self._store.session() as s:
            return set(s.scalars(select(StagedPersonRow.person_id)))

    def persons(self, session: Session) -> Iterator[PersonChange]:
        """The staged persons, one at a time, read in ``session`` (the apply's transaction). Their photos come as
        their sha256 only, in the order staged (position 0 first): the apply moves the ciphertexts from the stage
        into the store by SQL (:func:`edge.sync.rows.write_persons` with ``staged=True``), never through Python."""
        self._check_key()
        cipher = self._cipher
        after = ""
        while True:  # read in batches by id: two queries per batch, never the whole stage in memory
            rows = session.execute(select(StagedPersonRow.person_id, StagedPersonRow.entry)
                                   .where(StagedPersonRow.person_id > after)
                                   .order_by(StagedPersonRow.person_id).limit(READ_BATCH)).all()
            if not rows:
                return
            photos: dict[str, list[PhotoChange]] = {}
            for person_id, sha256 in session.execute(
                    select(StagedPhotoRow.person_id, StagedPhotoRow.sha256)
                    .where(StagedPhotoRow.person_id.in_([r[0] for r in rows]))
                    .order_by(StagedPhotoRow.person_id, StagedPhotoRow.position)):
                photos.setdefault(person_id, []).append(PhotoChange(sha256, b""))
            for person_id, entry in rows:
                person = parse_person(json.loads(decrypt(cipher, entry)))
                yield replace(person, photos=tuple(photos.get(person_id, ())))
            after = rows[-1][0]

    @staticmethod
    def clear(session: Session) -> None:
        session.execute(delete(StagedPhotoRow))
        session.execute(delete(StagedPersonRow))
