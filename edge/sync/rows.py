"""The console's persons written into the edge store in batches: a few statements per batch of persons, not
several per person.

A first snapshot of 100k persons spent most of its apply in the ORM's round trips (a lookup, two deletes, a merge
and a flush for every person). Here each batch of :data:`BATCH` persons costs one lookup of which rows exist, one
delete per table of what the batch replaces, one insert per table and one update; the rows and photos written
are the same as one at a time (the first photo is the card photo on the person's row, the others, without
repeats, beside it). A person without a photo is left as the box holds them. It runs inside the apply's one
transaction, so the batches commit together or not at all.

A staged snapshot's photos (``staged=True``, :mod:`edge.sync.stage`) are never read back into Python: the persons
come with each photo's sha256 only, and the photos move from ``sync_staged_photos`` into ``persons`` and
``person_photos`` by ``INSERT … SELECT`` and ``UPDATE … SET photo = (SELECT …)``, their ciphertext unchanged. Which
photo goes where is decided in Python from the positions and sha256, exactly as for photos held in memory.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import bindparam, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session

from edge.store.tables import ConsentPurposeRow, PersonPhotoRow, PersonRow, PlateRow
from edge.sync.changes import PersonChange, PhotoChange
from edge.sync.tables import StagedPhotoRow, SyncedPersonRow

BATCH = 500
Plates = tuple[tuple[str, str], ...]


def _sealed(cipher: Fernet, photo: PhotoChange) -> bytes:
    """The photo encrypted for the store: a staged photo is already (moved as it is, never decrypted)."""
    return photo.sealed if photo.sealed is not None else cipher.encrypt(photo.data)


def _batches(persons: Iterable[PersonChange]) -> Iterator[list[PersonChange]]:
    it = iter(persons)
    while batch := list(islice(it, BATCH)):
        yield batch


def _first_staged(column: Any) -> Any:
    """``column`` of the first staged photo of the person bound as ``b_id``, as a scalar subquery."""
    return (select(column).where(StagedPhotoRow.person_id == bindparam("b_id"), StagedPhotoRow.position == 0)
            .scalar_subquery())


def _write_staged(s: Session, new: list[dict[str, Any]], old: list[dict[str, Any]],
                  extra: list[dict[str, Any]], now: datetime) -> None:
    """The batch's rows with their photos taken from the stage by SQL (``photo`` of a row: its staged position)."""
    fields = ("name", "tier", "role", "consent", "model_id")
    conn = s.connection()  # Core statements run one by one per person (executemany), in the session's transaction
    if new:
        conn.execute(insert(PersonRow).from_select(
            ["id", *fields, "photo", "photo_sha256", "created_at"],
            select(StagedPhotoRow.person_id, *(bindparam(f"b_{f}") for f in fields), StagedPhotoRow.photo,
                   StagedPhotoRow.sha256, literal(now, PersonRow.created_at.type))
            .where(StagedPhotoRow.person_id == bindparam("b_id"), StagedPhotoRow.position == 0)),
            [{"b_id": r["id"], **{f"b_{f}": r[f] for f in fields}} for r in new])
    if old:
        conn.execute(update(PersonRow).where(PersonRow.id == bindparam("b_id"))
                     .values(**{f: bindparam(f"b_{f}") for f in fields}, photo=_first_staged(StagedPhotoRow.photo),
                             photo_sha256=_first_staged(StagedPhotoRow.sha256)),
                     [{"b_id": r["id"], **{f"b_{f}": r[f] for f in fields}} for r in old])
    if extra:
        conn.execute(insert(PersonPhotoRow).from_select(
            ["id", "person_id", "photo", "photo_sha256", "created_at"],
            select(func.lower(func.hex(func.randomblob(16))), StagedPhotoRow.person_id, StagedPhotoRow.photo,
                   StagedPhotoRow.sha256, literal(now, PersonPhotoRow.created_at.type))
            .where(StagedPhotoRow.person_id == bindparam("b_id"), StagedPhotoRow.position == bindparam("b_pos"))),
            [{"b_id": e["person_id"], "b_pos": e["photo"]} for e in extra])


def write_persons(s: Session, persons: Iterable[PersonChange], *, cipher: Fernet, model_id: str, consent: str,
                  now: datetime, staged: bool = False) -> list[tuple[str, Plates]]:
    """Write every person that has a photo (rows, photos, the synced mark); their (id, plates), in order, for the
    plates to be written once all persons are (a plate may move between two of them). ``staged``: the photos are
    in the stage (:mod:`edge.sync.stage`), each person's listed by position with its sha256 only."""
    def sealed(photo: PhotoChange, position: int) -> bytes | int:  # staged: its position, taken by SQL
        return position if staged else _sealed(cipher, photo)

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
                         "role": person.role[:16], "consent": consent, "photo": sealed(first, 0),
                         "photo_sha256": first.sha256, "model_id": model_id})
            seen = {first.sha256}
            for position, photo in enumerate(person.photos[1:], start=1):
                if photo.sha256 not in seen:
                    seen.add(photo.sha256)
                    extra.append({"id": secrets.token_hex(16), "person_id": person.id,
                                  "photo": sealed(photo, position), "photo_sha256": photo.sha256,
                                  "created_at": now})
        new = [{**r, "created_at": now} for r in rows if r["id"] not in existing]
        old = [r for r in rows if r["id"] in existing]
        if staged:
            _write_staged(s, new, old, extra, now)
        else:
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
