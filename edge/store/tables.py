"""The edge store's tables: every row class on :class:`Base`, the UTC column type, and the SQLite engine
(WAL, foreign keys, a file created 0600). Columns that hold data encrypted with the data key are declared with
``info=ENCRYPTED`` (:mod:`edge.store.db` documents what that means)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


@dataclass(frozen=True, slots=True)
class Plate:
    id: str
    person_id: str
    plate: str
    kind: str
    created_at: datetime


ENCRYPTED = {"encrypted": True}  # ``info`` of a column that holds data encrypted with the data key


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns timezone-aware UTC (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class PersonRow(Base):
    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    tier: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16), default="vip")
    consent: Mapped[str] = mapped_column(Text)
    photo: Mapped[bytes] = mapped_column(LargeBinary, info=ENCRYPTED)
    photo_sha256: Mapped[str] = mapped_column(String(64))
    model_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PersonPhotoRow(Base):
    """An extra enrolment photo (encrypted like PersonRow.photo, which stays the primary, shown on cards)."""

    __tablename__ = "person_photos"
    __table_args__ = (UniqueConstraint("person_id", "photo_sha256", name="uq_person_photo_sha256"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    photo: Mapped[bytes] = mapped_column(LargeBinary, info=ENCRYPTED)
    photo_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("branch_id", "seq", name="uq_alert_branch_seq"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    branch_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    camera_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class PairingRow(Base):
    """A tablet paired to the box (edge.api.pairing): a one-time code until it is redeemed, then the hash of
    the session secret its HttpOnly cookie carries. Revoked rows stay, for the list."""

    __tablename__ = "pairings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    code_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    code_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    secret_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PlateRow(Base):
    __tablename__ = "plates"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    plate: Mapped[str] = mapped_column(String(16), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MetaRow(Base):
    """Facts about this data folder itself, one row each: ``epoch`` (the store's identity, made once when the
    database is created; alert seqs are only comparable within one epoch), and whatever else a part of the
    box must know about the folder it runs on (key check, gallery binding)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SnapshotRow(Base):
    """A face or person crop shown on an alert card (encrypted like enrolment photos)."""

    __tablename__ = "snapshots"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    jpeg: Mapped[bytes] = mapped_column(LargeBinary, info=ENCRYPTED)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class OutboxRow(Base):
    """One event waiting for (or already taken by) the console: the store-and-forward outbox of the sync.

    ``seq`` is AUTOINCREMENT so a seq is never handed out twice, even after sent rows are pruned: the console
    keys events on (edge, epoch, seq) and would take a reused seq for a duplicate. ``kind``: alert |
    interaction | stats_hourly | camera_health | clip | ack; ``body`` is JSON text."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_sent_seq", "sent", "seq"), {"sqlite_autoincrement": True})

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    body: Mapped[str] = mapped_column(Text)
    sent: Mapped[bool] = mapped_column(Boolean, default=False)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ClipUploadRow(Base):
    """A clip file the sender still owes the console (``state`` pending), has sent (uploaded) or cannot send
    because retention removed the file first (gone). Queued with the clip's index row, in its transaction."""

    __tablename__ = "clip_uploads"
    __table_args__ = (Index("ix_clip_uploads_state", "state"),)

    clip_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PopulationRow(Base):
    """The face population's aggregates of one face model (:mod:`edge.store.population`), encrypted."""

    __tablename__ = "face_population"

    model_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    stats: Mapped[bytes] = mapped_column(LargeBinary, info=ENCRYPTED)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VisitShotRow(Base):
    """A confirmed visit's live shot of a VIP (:mod:`edge.faces.visit_shots`): its embedding, encrypted; it goes
    with the person (ON DELETE CASCADE)."""

    __tablename__ = "visit_shots"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    alert_id: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary, info=ENCRYPTED)
    quality: Mapped[float] = mapped_column()
    score: Mapped[float] = mapped_column()
    margin: Mapped[float] = mapped_column()
    confirmed_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsentPurposeRow(Base):
    """A use the person's consent covers, as the console recorded it (``visit_template``: live shots of confirmed
    visits may join their template, :mod:`edge.faces.visit_shots`); it goes with the person."""

    __tablename__ = "consent_purposes"

    person_id: Mapped[str] = mapped_column(String(32), ForeignKey("persons.id", ondelete="CASCADE"),
                                           primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA foreign_keys=ON")  # SQLite ignores REFERENCES / ON DELETE CASCADE without it
    cur.close()


def make_engine(db_path: Path) -> Engine:
    db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not db_path.exists():  # created private before SQLite opens it; -wal and -shm inherit the mode
        os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT, 0o600))
    engine = create_engine(f"sqlite:///{db_path}", connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    Base.metadata.create_all(engine)
    return engine
