"""SQLite tables of the review store: interactions, unattended events, clips, verdicts and the audit log.

The verdict and audit tables are append-only. The ORM never updates or deletes them, and
:func:`install_append_only_triggers` makes SQLite itself refuse an ``UPDATE`` or ``DELETE`` on them
(``RAISE(ABORT, ...)``), whoever issues it through SQL. A trigger does not stop ``DROP TABLE`` or
someone who edits the database file: it protects the trail from the application and from careless
hands, it is not tamper evidence.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, Integer, String, Text, false, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from edge.store.tables import Base, UTCDateTime

APPEND_ONLY_TABLES = ("clip_verdicts", "review_audit")


class InteractionRow(Base):
    __tablename__ = "interactions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # ClipParticipants.interaction_id
    camera_id: Mapped[str] = mapped_column(String(64), index=True)
    staff_track: Mapped[int] = mapped_column(Integer)
    customer_track: Mapped[int] = mapped_column(Integer)
    staff_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    vip_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    wait_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    # closed at a start after the process that followed it was killed; ended_at is then the last time the box
    # knew of it (its clip's last frame), and duration_s a lower bound
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class UnattendedRow(Base):
    __tablename__ = "unattended_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(String(64), index=True)
    customer_track: Mapped[int] = mapped_column(Integer)
    vip_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    zone: Mapped[str] = mapped_column(String(64))
    waited_s: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    alert_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ClipRow(Base):
    __tablename__ = "clips"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    interaction_id: Mapped[str] = mapped_column(String(64), index=True)
    camera_id: Mapped[str] = mapped_column(String(64), index=True)
    staff_track: Mapped[int] = mapped_column(Integer)
    customer_track: Mapped[int] = mapped_column(Integer)
    staff_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    vip_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    duration_s: Mapped[float] = mapped_column(Float)
    frames: Mapped[int] = mapped_column(Integer)
    pre_roll_frames: Mapped[int] = mapped_column(Integer)
    dropped_frames: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    hold: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    hold_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class VerdictRow(Base):
    """Append-only: the row with the highest id of a clip is its current verdict."""

    __tablename__ = "clip_verdicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    clip_id: Mapped[str] = mapped_column(String(64), index=True)
    verdict: Mapped[str] = mapped_column(String(32))
    notes: Mapped[str] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditRow(Base):
    """Append-only: who did what to which clip, and whether it was allowed."""

    __tablename__ = "review_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(32))
    clip_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)


ADDED_COLUMNS = {"interactions": {"interrupted": "BOOLEAN NOT NULL DEFAULT 0"}}


def add_missing_columns(engine: Engine) -> None:
    """Add the columns that later versions added to existing tables (``create_all`` only makes new tables)."""
    for table, columns in ADDED_COLUMNS.items():
        present = {c["name"] for c in inspect(engine).get_columns(table)}
        with engine.begin() as conn:
            for name, ddl in columns.items():
                if name not in present:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))


def install_append_only_triggers(engine: Engine) -> None:
    """Make SQLite abort any UPDATE or DELETE on the append-only tables (idempotent)."""
    with engine.begin() as conn:
        for table in APPEND_ONLY_TABLES:
            for op in ("UPDATE", "DELETE"):
                conn.execute(text(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"))
