"""The console's tables of what the edges send up: their outbox events and the projections made of them (clips,
service episodes, hourly counts, verdicts, population aggregates). Same ``Base`` as :mod:`console.tables`, which
imports this module so that its metadata holds them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from console.db import UtcDateTime, utcnow
from console.tables_base import Base

# --- Up: events from the edges and their projections (revision 0004) --------------------------------------------

class EdgeEvent(Base):
    """One outbox event of an edge as received; (edge, epoch, seq) is unique, so a re-sent event is stored once.
    ``epoch`` is the edge store's identity: a box whose database was made anew starts its seqs again."""

    __tablename__ = "edge_events"
    __table_args__ = (UniqueConstraint("edge_id", "epoch", "seq"), Index("ix_edge_events_branch_kind_at",
                                                                           "branch_id", "kind", "at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edge_id: Mapped[int] = mapped_column(ForeignKey("edges.id", ondelete="CASCADE"))
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"))
    epoch: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    body: Mapped[Any] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class EdgeEventPerson(Base):
    """A person id an edge event's body names (revision 0005): erasing the person finds the events to scrub by
    this index instead of reading every body (console.sync.scrub)."""

    __tablename__ = "edge_event_persons"
    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("edge_events.id", ondelete="CASCADE"), primary_key=True,
                                          index=True)


class CentralClip(Base):
    """A clip of some branch, from its edge's ``clip`` event; ``blob_key`` is set once the file is uploaded."""

    __tablename__ = "central_clips"
    __table_args__ = (Index("ix_central_clips_branch_id_started_at", "branch_id", "started_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"))
    edge_id: Mapped[int] = mapped_column(ForeignKey("edges.id", ondelete="CASCADE"), index=True)
    interaction_id: Mapped[str] = mapped_column(String(64), index=True)
    camera: Mapped[str] = mapped_column(String(64))
    staff_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # erasure's lookup (0005)
    staff_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    vip_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    vip_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    duration_s: Mapped[float] = mapped_column(Float)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    uploaded_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CentralInteraction(Base):
    """A finished service episode of some branch (its edge's ``interaction`` event)."""

    __tablename__ = "central_interactions"
    __table_args__ = (Index("ix_central_interactions_branch_id_started_at", "branch_id", "started_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"))
    edge_id: Mapped[int] = mapped_column(ForeignKey("edges.id", ondelete="CASCADE"), index=True)
    camera: Mapped[str] = mapped_column(String(64))
    staff_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # erasure's lookup (0005)
    staff_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    vip_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    vip_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    wait_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    clip_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class CentralHour(Base):
    """Counts per branch and branch-local hour (``hour``: the local hour's start, in UTC), added to as events
    arrive (each event once: only a newly stored event is counted), plus the edge's own ``stats_hourly`` row."""

    __tablename__ = "central_hours"
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    vip_arrivals: Mapped[int] = mapped_column(Integer, default=0)
    unattended: Mapped[int] = mapped_column(Integer, default=0)
    unstaffed: Mapped[int] = mapped_column(Integer, default=0)
    interactions: Mapped[int] = mapped_column(Integer, default=0)
    edge_stats: Mapped[Any | None] = mapped_column(JSON, nullable=True)


class ClipVerdict(Base):
    """Append-only (a trigger refuses UPDATE and DELETE): the newest row of a clip is its current verdict."""

    __tablename__ = "clip_verdicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clip_id: Mapped[str] = mapped_column(ForeignKey("central_clips.id"), index=True)
    verdict: Mapped[str] = mapped_column(String(32))
    notes: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class EdgePopulation(Base):
    """The newest face population aggregates (count, mean, scatter) an edge sent (revision 0009): no person, yet
    biometric, so ``stats`` is a Fernet token (:mod:`console.population`). The region is the edge's branch's now."""

    __tablename__ = "edge_populations"
    edge_id: Mapped[int] = mapped_column(ForeignKey("edges.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(128), index=True)
    count: Mapped[int] = mapped_column(Integer)
    stats: Mapped[bytes] = mapped_column(LargeBinary)
    epoch: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
