"""A snapshot that comes in several pages is staged in the store, not in memory, until its last page came.

A new box's first snapshot holds every person of its branch's scope with all their photos: at 100k persons that
is gigabytes, more than an edge box should hold in memory at once. Each page is therefore embedded as it arrives
and written to the ``sync_staged`` table (encrypted like the store's other photos and embeddings); only the
templates stay in memory (100k x 128 floats: 51 MB). The apply then streams the staged persons into its one
transaction and empties the table in it. A crash while staging leaves rows that the next snapshot's first page
removes; nothing of them is ever used as the box's gallery. A page's photos are checked against their sha256 once, as
it is staged (a photo that fails is staged without); the apply reads them back unchecked, Fernet having authenticated
each staged entry.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from edge.store.db import Store
from edge.sync.changes import ChangeSet, PersonChange, parse_person
from edge.sync.tables import StagedPersonRow, create_tables
from vault.keys import decrypt
from vision.types import FloatArray

READ_BATCH = 500  # staged persons read per query while the apply streams them
Embed = Callable[[PersonChange], tuple[FloatArray | None, str | None]]


class SnapshotStage:
    """The pages of one snapshot (version ``version``), staged as they arrive."""

    def __init__(self, store: Store, version: int, embed: Embed) -> None:
        self._store = store
        self.version = version
        self._embed = embed
        self.vectors: dict[str, FloatArray] = {}
        self.failures: dict[str, str] = {}
        create_tables(store.engine)
        with store.session() as s, s.begin():
            s.execute(delete(StagedPersonRow))  # what a crashed or abandoned snapshot left

    def add(self, page: ChangeSet, entries: list[dict[str, Any]]) -> None:
        """Stage one page: ``page`` parsed, ``entries`` the console's raw person entries of it (kept as sent)."""
        cipher = self._store.cipher
        rows: list[dict[str, Any]] = []
        raw = {str(e.get("id")): e for e in entries}
        for person in page.persons.values():
            vector, failure = self._embed(person)
            if vector is not None:
                self.vectors[person.id] = vector
            self.failures.pop(person.id, None)
            if failure is not None:
                self.failures[person.id] = failure
            entry = raw[person.id]
            if len(person.photos) != len(entry.get("photos") or []):  # a photo failed its check: staged without it
                entry = {**entry, "photos": [{"sha256": p.sha256, "data": base64.b64encode(p.data).decode("ascii")}
                                             for p in person.photos]}
            body = json.dumps(entry, separators=(",", ":")).encode("utf-8")
            rows.append({"person_id": person.id, "snapshot_version": self.version, "entry": cipher.encrypt(body)})
        if not rows:
            return
        with self._store.session() as s, s.begin():  # one delete and one insert per page (a page sent again replaces)
            s.execute(delete(StagedPersonRow).where(StagedPersonRow.person_id.in_([r["person_id"] for r in rows])))
            s.execute(insert(StagedPersonRow), rows)

    def ids(self) -> set[str]:
        with self._store.session() as s:
            return set(s.scalars(select(StagedPersonRow.person_id)))

    def persons(self, session: Session) -> Iterator[PersonChange]:
        """The staged persons, one at a time, read in ``session`` (the apply's transaction)."""
        cipher = self._store.cipher
        after = ""
        while True:  # read in batches by id: one query per batch, never the whole stage in memory
            rows = session.execute(select(StagedPersonRow.person_id, StagedPersonRow.entry)
                                   .where(StagedPersonRow.person_id > after)
                                   .order_by(StagedPersonRow.person_id).limit(READ_BATCH)).all()
            if not rows:
                return
            for _person_id, entry in rows:
                yield parse_person(json.loads(decrypt(cipher, entry)), verify_photos=False)  # verified when staged
            after = rows[-1][0]

    @staticmethod
    def clear(session: Session) -> None:
        session.execute(delete(StagedPersonRow))
