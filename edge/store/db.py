"""The edge store: SQLite in WAL mode through SQLAlchemy 2.0.

Holds persons (encrypted enrolment photos: the first on the person's row, extra ones in
``person_photos``), alerts with a per-branch monotonic ``seq`` and their acks, and the outbox; each alert and
event is indexed by the person ids it names (:mod:`edge.store.mentions`), so that an erasure can scrub them.
It implements :class:`alerts.envelope.AlertLog`.

Every column that holds data encrypted with the data key is declared with ``info=ENCRYPTED``, in
:mod:`edge.store.tables` or in any other table on its ``Base``: the key check verifies a stored value of each, and key
rotation re-encrypts all of them in one transaction (:mod:`edge.store.reencrypt`). The database file is
created 0600 (SQLite gives its ``-wal`` and ``-shm`` files the same mode).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.orm import Session, sessionmaker

from alerts.envelope import Alert, AlertDraft
from alerts.text import display_text
from edge.store.mentions import index_existing, note_alert, note_event
from edge.store.tables import (
    AlertRow,
    ClipUploadRow,
    MetaRow,
    OutboxRow,
    PersonPhotoRow,
    PersonRow,
    PlateRow,
    SnapshotRow,
    make_engine,
)
from vault.keys import decrypt


@dataclass(frozen=True, slots=True)
class Plate:
    id: str
    person_id: str
    plate: str
    kind: str
    created_at: datetime


def _plate(row: PlateRow) -> Plate:
    return Plate(row.id, row.person_id, row.plate, row.kind, row.created_at)


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    tier: str
    role: str
    consent: str
    model_id: str
    created_at: datetime


def _person(row: PersonRow) -> Person:
    """A person as shown: names and tiers stored before enrolment normalised them (bidi overrides, zero-width
    characters) are cleaned here too, so no reader of the store ever shows a spoofed name."""
    return Person(row.id, display_text(row.name), display_text(row.tier), row.role, row.consent, row.model_id,
                  row.created_at)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def event_json(body: dict[str, object]) -> str:
    """An outbox body as JSON text (datetimes as ISO 8601)."""
    return json.dumps(body, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _alert(row: AlertRow) -> Alert:
    alert = Alert.model_validate_json(row.body)
    return alert.model_copy(update={"acked_at": row.acked_at, "acked_by": row.acked_by})


class Store:
    def __init__(self, db_path: Path, *, branch_id: str, cipher: Fernet) -> None:
        self.engine = make_engine(db_path)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._branch_id = branch_id
        self._cipher = cipher
        self._seq_lock = threading.Lock()
        self.epoch = self._ensure_meta("epoch", uuid.uuid4().hex)
        with self.session() as s, s.begin():  # once per store: what was stored before the erasure index
            index_existing(s)

    def _ensure_meta(self, key: str, default: str) -> str:
        """The stored value of ``key``; ``default`` is stored first when the key is new."""
        with self.session() as s, s.begin():
            row = s.get(MetaRow, key)
            if row is None:
                row = MetaRow(key=key, value=default)
                s.add(row)
            return row.value

    def meta(self, key: str) -> str | None:
        with self.session() as s:
            row = s.get(MetaRow, key)
            return None if row is None else row.value

    def set_meta(self, key: str, value: str) -> None:
        with self.session() as s, s.begin():
            s.merge(MetaRow(key=key, value=value))

    def delete_meta(self, key: str) -> None:
        with self.session() as s, s.begin():
            row = s.get(MetaRow, key)
            if row is not None:
                s.delete(row)

    @property
    def cipher(self) -> Fernet:
        """The data key's cipher every encrypted column is read and written with."""
        return self._cipher

    def use_cipher(self, cipher: Fernet) -> None:
        """From now on encrypt and decrypt with ``cipher`` (after a key rotation was committed)."""
        self._cipher = cipher

    def session(self) -> Session:
        return self._sessions()

    # -- persons -------------------------------------------------------------------------------
    def add_person(self, session: Session, *, name: str, tier: str, role: str, consent: str,
                   photo: bytes, photo_sha256: str, model_id: str) -> Person:
        """Stage a person in ``session``; the caller commits once the gallery is saved."""
        row = PersonRow(id=uuid.uuid4().hex, name=name, tier=tier, role=role, consent=consent,
                        photo=self._cipher.encrypt(photo), photo_sha256=photo_sha256, model_id=model_id,
                        created_at=datetime.now(UTC))
        session.add(row)
        session.flush()
        return _person(row)

    def get_person(self, person_id: str) -> Person | None:
        with self.session() as s:
            row = s.get(PersonRow, person_id)
            return None if row is None else _person(row)

    def list_persons(self) -> list[Person]:
        with self.session() as s:
            return [_person(r) for r in s.scalars(select(PersonRow).order_by(PersonRow.created_at))]

    def person_photo(self, person_id: str) -> bytes | None:
        with self.session() as s:
            row = s.get(PersonRow, person_id)
            return None if row is None else decrypt(self._cipher, row.photo)

    def add_person_photo(self, session: Session, *, person_id: str, photo: bytes, photo_sha256: str) -> None:
        """Stage an extra photo of ``person_id`` in ``session``; the caller commits once the gallery is saved."""
        session.add(PersonPhotoRow(id=uuid.uuid4().hex, person_id=person_id, photo=self._cipher.encrypt(photo),
                                   photo_sha256=photo_sha256, created_at=datetime.now(UTC)))
        session.flush()

    def person_photos(self, person_id: str) -> list[bytes]:
        """All enrolment photos of the person, decrypted, the primary first; [] for an unknown person."""
        with self.session() as s:
            row = s.get(PersonRow, person_id)
            if row is None:
                return []
            extra = s.scalars(select(PersonPhotoRow.photo).where(PersonPhotoRow.person_id == person_id)
                              .order_by(PersonPhotoRow.created_at, PersonPhotoRow.id))
            return [decrypt(self._cipher, blob) for blob in [row.photo, *extra]]

    def person_photo_hashes(self, person_id: str) -> list[str]:
        """sha256 of each enrolment photo of the person, the primary first; [] for an unknown person."""
        with self.session() as s:
            primary = s.scalar(select(PersonRow.photo_sha256).where(PersonRow.id == person_id))
            if primary is None:
                return []
            extra = s.scalars(select(PersonPhotoRow.photo_sha256).where(PersonPhotoRow.person_id == person_id)
                              .order_by(PersonPhotoRow.created_at, PersonPhotoRow.id))
            return [primary, *extra]

    def count_person_photos(self, person_id: str) -> int:
        """Enrolment photos of the person, the primary included; 0 for an unknown person."""
        return len(self.person_photo_hashes(person_id))

    def photo_counts(self) -> dict[str, int]:
        """Enrolment photos per enrolled person, the primary included (one query for a listing)."""
        with self.session() as s:
            rows = s.execute(select(PersonPhotoRow.person_id, func.count()).group_by(PersonPhotoRow.person_id))
            extra = {str(person_id): int(count) for person_id, count in rows}
            return {person_id: 1 + extra.get(person_id, 0) for person_id in s.scalars(select(PersonRow.id))}

    def set_model_id(self, person_ids: list[str], model_id: str) -> None:
        """Record that these persons' gallery entries were (re)made with ``model_id``."""
        with self.session() as s, s.begin():
            for person_id in person_ids:
                row = s.get(PersonRow, person_id)
                if row is not None:
                    row.model_id = model_id

    def count_persons(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(PersonRow)) or 0)

    # -- plates --------------------------------------------------------------------------------------
    def add_plate(self, *, person_id: str, plate: str, kind: str) -> Plate:
        """Register a normalised, grammar-checked plate; raises IntegrityError if it is already taken."""
        with self.session() as s, s.begin():
            row = PlateRow(id=uuid.uuid4().hex, person_id=person_id, plate=plate, kind=kind,
                           created_at=datetime.now(UTC))
            s.add(row)
            s.flush()
            return _plate(row)

    def plate_owner(self, plate: str) -> Plate | None:
        with self.session() as s:
            row = s.scalar(select(PlateRow).where(PlateRow.plate == plate))
            return None if row is None else _plate(row)

    def list_plates(self, person_id: str | None = None) -> list[Plate]:
        with self.session() as s:
            query = select(PlateRow).order_by(PlateRow.created_at)
            if person_id is not None:
                query = query.where(PlateRow.person_id == person_id)
            return [_plate(r) for r in s.scalars(query)]

    def delete_plate(self, *, person_id: str, plate: str) -> bool:
        with self.session() as s, s.begin():
            row = s.scalar(select(PlateRow).where(PlateRow.plate == plate, PlateRow.person_id == person_id))
            if row is None:
                return False
            s.delete(row)
            return True

    # -- snapshots -----------------------------------------------------------------------------
    def add_snapshot(self, *, camera_id: str, jpeg: bytes) -> str:
        with self.session() as s, s.begin():
            row = SnapshotRow(id=uuid.uuid4().hex, camera_id=camera_id, jpeg=self._cipher.encrypt(jpeg),
                              created_at=datetime.now(UTC))
            s.add(row)
            return row.id

    def delete_snapshots(self, before: datetime) -> int:
        """Delete the alert snapshots taken before ``before``; returns how many."""
        with self.session() as s, s.begin():
            rows = list(s.scalars(select(SnapshotRow).where(SnapshotRow.created_at < before)))
            for row in rows:
                s.delete(row)
            return len(rows)

    def snapshot(self, snapshot_id: str) -> bytes | None:
        with self.session() as s:
            row = s.get(SnapshotRow, snapshot_id)
            return None if row is None else decrypt(self._cipher, row.jpeg)

    # -- outbox (the sync's store-and-forward queue, edge.sync.outbox reads it) -------------------
    @staticmethod
    def stage_event(session: Session, *, kind: str, at: datetime, body: str | dict[str, object]) -> None:
        """Add an outbox event to ``session``: it is committed with (and only with) the thing it reports."""
        text = body if isinstance(body, str) else event_json(body)
        row = OutboxRow(kind=kind, at=at, body=text, sent=False)
        session.add(row)
        note_event(session, row, json.loads(text))  # the persons it names, for erasure (edge.store.mentions)

    @staticmethod
    def queue_clip_upload(session: Session, clip_id: str) -> None:
        """Owe the console this clip's file (the sender uploads it in the background, under its cap)."""
        session.add(ClipUploadRow(clip_id=clip_id, state="pending", attempts=0, updated_at=datetime.now(UTC)))

    # -- alerts (AlertLog) ---------------------------------------------------------------------
    def append(self, draft: AlertDraft) -> Alert:
        with self._seq_lock, self.session() as s, s.begin():
            last = s.scalar(select(func.max(AlertRow.seq)).where(AlertRow.branch_id == draft.branch_id))
            alert = Alert(**draft.model_dump(), id=uuid.uuid4().hex, seq=int(last or 0) + 1,
                          created_at=datetime.now(UTC))
            body = alert.model_dump_json()
            s.add(AlertRow(id=alert.id, branch_id=alert.branch_id, seq=alert.seq, type=alert.type.value,
                           camera_id=alert.camera_id, person_id=alert.person_id, body=body,
                           created_at=alert.created_at))
            note_alert(s, alert.id, json.loads(body))
            self.stage_event(s, kind="alert", at=alert.created_at, body=body)
        return alert

    def since(self, seq: int, limit: int = 500) -> list[Alert]:
        with self.session() as s:
            rows = s.scalars(select(AlertRow).where(AlertRow.branch_id == self._branch_id, AlertRow.seq > seq)
                             .order_by(AlertRow.seq.desc()).limit(limit))
            return [_alert(r) for r in reversed(list(rows))]

    def get_alert(self, alert_id: str) -> Alert | None:
        with self.session() as s:
            row = s.get(AlertRow, alert_id)
            return None if row is None else _alert(row)

    def ack(self, alert_id: str, by: str) -> Alert | None:
        """Acknowledge once; a second ack keeps the first one's time and author."""
        with self.session() as s, s.begin():
            row = s.get(AlertRow, alert_id)
            if row is None or row.branch_id != self._branch_id:  # another branch's alert is not ours to ack
                return None
            if row.acked_at is None:
                row.acked_at = datetime.now(UTC)
                row.acked_by = by
                self.stage_event(s, kind="ack", at=row.acked_at,
                                 body={"alert_id": row.id, "seq": row.seq, "acked_at": row.acked_at, "acked_by": by})
            return _alert(row)

    def last_seq(self) -> int:
        with self.session() as s:
            value = s.scalar(select(func.max(AlertRow.seq)).where(AlertRow.branch_id == self._branch_id))
            return int(value or 0)
