"""The console's persons written into the edge store in batches: a few statements per batch of persons, not
several per person.

A first snapshot of 100k persons spent most of its apply in the ORM's round trips (a lookup, two deletes, a merge
and a flush for every person). Here each batch of :data:`BATCH` persons costs one lookup of which rows exist, one
delete per table of what the batch replaces, one insert per table and one update; the rows and photos written
are the same as one at a time (the first photo is the card photo on the person's row, the others, without
repeats, beside it). A person without a photo is left as the box holds them. It runs inside the apply's one
transaction, so the batches commit together or not at all.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from edge.store.tables import ConsentPurposeRow, PersonPhotoRow, PersonRow, PlateRow
from edge.sync.changes import PersonChange, PhotoChange
from edge.sync.tables import SyncedPersonRow

BATCH = 500
Plates = tuple[tuple[str, str], ...]


def _sealed(cipher: Fernet, photo: PhotoChange) -> bytes:
    """The photo encrypted for the store: a staged photo is already (moved as it is, never decrypted)."""
    return photo.sealed if photo.sealed is not None else cipher.encrypt(photo.data)


def _batches(persons: Iterable[PersonChange]) -> Iterator[list[PersonChange]]:
    it = iter(persons)
    while batch := list(islice(it, BATCH)):
        yield batch


def write_persons(s: Session, persons: Iterable[PersonChange], *, cipher: Fernet, model_id: str, consent: str,
                  now: datetime) -> list[tuple[str, Plates]]:
    """Write every person that has a photo (rows, photos, the synced mark); their (id, plates), in order, for the
    plates to be written once all persons are (a plate may move between two of them)."""
    written: list[tuple[str, Plates]] = []
    for batch in _batches(persons):
        batch = [p for p in batch if p.photos]
        if not batch:
            continue
        ids = [p.id for p in batch]
        existing = set(s.scalars(select(PersonRow.id).where(PersonRow.id.in_(ids))))
        for table in (PlateRow, PersonPhotoRow, SyncedPersonRow, ConsentPurposeRow):
            s.execute(delete(table).where(table.person_id.in_(ids)), execution_options={"synchronize_session": False})
        rows: list[dict[str, Any]] = []
        extra: list[dict[str, Any]] = []
        for person in batch:
            first = person.photos[0]
            rows.append({"id": person.id, "name": person.name[:128], "tier": person.tier[:32],
                         "role": person.role[:16], "consent": consent, "photo": _sealed(cipher, first),
                         "photo_sha256": first.sha256, "model_id": model_id})
            seen = {first.sha256}
            for photo in person.photos[1:]:
                if photo.sha256 not in seen:
                    seen.add(photo.sha256)
                    extra.append({"id": secrets.token_hex(16), "person_id": person.id,
                                  "photo": _sealed(cipher, photo), "photo_sha256": photo.sha256,
                                  "created_at": now})
        new = [{**r, "created_at": now} for r in rows if r["id"] not in existing]
        old = [r for r in rows if r["id"] in existing]
        if new:
            s.execute(insert(PersonRow), new)
        if old:
            s.execute(update(PersonRow), old)
        if extra:
            s.execute(insert(PersonPhotoRow), extra)
        purposes = [{"person_id": p.id, "purpose": c[:32]} for p in batch for c in dict.fromkeys(p.purposes)]
        if purposes:  # the uses their consent covers (edge.faces.visit_shots asks)
            s.execute(insert(ConsentPurposeRow), purposes)
        s.execute(insert(SyncedPersonRow), [{"person_id": p.id, "version": p.version, "synced_at": now}
                                            for p in batch])
        written.extend((p.id, p.plates) for p in batch)
    return written
