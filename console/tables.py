"""The console's tables (SQLAlchemy 2.0). Alembic's revisions in ``console/migrations`` create them.

Biometric data never sits here in the clear: photos and consent evidence are encrypted blobs in the
:mod:`console.storage` store (a row holds only the blob's key), templates and photo embeddings are Fernet
tokens. ``audit`` is append-only (a trigger refuses UPDATE and DELETE on both backends).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from console.db import UtcDateTime, utcnow
from console.tables_base import NAMING as NAMING
from console.tables_base import Base as Base


class Branch(Base):
    __tablename__ = "branches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    region: Mapped[str] = mapped_column(String(64), index=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Edge(Base):
    """An edge box registered to a branch; it signs in with its own token (hash kept)."""

    __tablename__ = "edges"
    __table_args__ = (UniqueConstraint("branch_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    gallery_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    camera_health: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # its token is refused from then on


class EdgeCode(Base):
    """A one-time registration code for a new edge box of a branch: only its sha256 is kept; it is good once,
    until ``expires_at``, and ``edge_id`` names the edge that redeemed it."""

    __tablename__ = "edge_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    edge_id: Mapped[int | None] = mapped_column(ForeignKey("edges.id", ondelete="SET NULL"), nullable=True)


class Person(Base):
    """A VIP or a staff member. ``scope_kind``: all | region | branches (a VIP's greeting scope; staff: their
    one branch)."""

    __tablename__ = "persons"
    # the persons list pages newest change first; without this index every page sorts the whole table
    __table_args__ = (Index("ix_persons_updated_at_id", "updated_at", "id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    role: Mapped[str] = mapped_column(String(8), index=True)
    tier: Mapped[str] = mapped_column(String(32), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    home_branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"), index=True)
    scope_kind: Mapped[str] = mapped_column(String(8), default="branches")
    scope_region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    template: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # Fernet(float32 mean template)
    model_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)  # the gallery change that last touched them
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    home_branch: Mapped[Branch] = relationship(lazy="joined")
    scope_branches: Mapped[list[Branch]] = relationship(secondary="person_branches", lazy="selectin")
    photos: Mapped[list[Photo]] = relationship(back_populates="person", cascade="all, delete-orphan",
                                               passive_deletes=True, order_by="Photo.created_at")
    plates: Mapped[list[Plate]] = relationship(back_populates="person", cascade="all, delete-orphan",
                                               passive_deletes=True, order_by="Plate.id")
    consents: Mapped[list[Consent]] = relationship(back_populates="person", cascade="all, delete-orphan",
                                                   passive_deletes=True, order_by="Consent.id")


class PersonBranch(Base):
    __tablename__ = "person_branches"
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), primary_key=True)


class PersonsListVersion(Base):
    """One row: a number that triggers (revision 0006) bump at every write to what the persons list shows
    (persons, photos, plates, consents, scope branches, branches): a list answer kept under it stays current."""

    __tablename__ = "persons_list_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class Photo(Base):
    __tablename__ = "photos"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    blob_key: Mapped[str] = mapped_column(String(80))
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(32), default="image/jpeg")
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    face_px: Mapped[float] = mapped_column(Float)
    sharpness: Mapped[float] = mapped_column(Float)
    yaw: Mapped[float] = mapped_column(Float, default=0.0)
    detector_score: Mapped[float] = mapped_column(Float, default=0.0)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # Fernet(float32 embedding)
    model_id: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    person: Mapped[Person] = relationship(back_populates="photos")


class Plate(Base):
    __tablename__ = "plates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    plate: Mapped[str] = mapped_column(String(16), unique=True)  # normalised (vision.plates.grammar)
    kind: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    person: Mapped[Person] = relationship(back_populates="plates")


# The persons search matches any part of a name, customer number or plate, which a b-tree cannot answer: pg_trgm
# GIN indexes on PostgreSQL (revision 0006); none on SQLite, whose search reads the b-tree indexes whole.
for _name, _expression, _label in (
        ("ix_persons_name_trgm", func.lower(Person.name), "name_lower"),
        ("ix_persons_external_id_trgm", func.lower(Person.external_id), "external_id_lower"),
        ("ix_plates_plate_trgm", Plate.plate, "plate")):
    Index(_name, _expression.label(_label), postgresql_using="gin",
          postgresql_ops={_label: "gin_trgm_ops"}).ddl_if(dialect="postgresql")


class Consent(Base):
    __tablename__ = "consents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(200))
    given_on: Mapped[date] = mapped_column(Date)
    operator: Mapped[str] = mapped_column(String(128))
    evidence_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    evidence_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    evidence_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recorded_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # the uses it covers (console.consent.PURPOSES codes, space-separated; revision 0008)
    covers: Mapped[str] = mapped_column(String(200), default="enrolment", server_default="enrolment")
    person: Mapped[Person] = relationship(back_populates="consents")


class GalleryChange(Base):
    """One numbered change of the bank's gallery (the sync's version); ``kind``: upsert | erase."""

    __tablename__ = "gallery_changes"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Tombstone(Base):
    """What stays of an erased person: their id, when, by whom, and the change that erased them."""

    __tablename__ = "tombstones"
    person_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    erased_by: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    home_branch_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class User(Base):
    """``role``: admin | enroller | compliance | branch_it | regional_manager; ``scope_kind``: all | region |
    branches."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(20))
    scope_kind: Mapped[str] = mapped_column(String(8), default="branches")
    scope_region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    branches: Mapped[list[Branch]] = relationship(secondary="user_branches", lazy="selectin")


class UserBranch(Base):
    __tablename__ = "user_branches"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), primary_key=True)


class ApiToken(Base):
    """A script's credential: the bearer token's sha256 only; it acts as its user, with the user's scope."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class WebSession(Base):
    """A browser sign-in: the session cookie's sha256 is the key; the CSRF token's sha256 is kept beside it."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LoginAttempt(Base):
    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_username_at", "username", "at"), Index("ix_login_attempts_ip_at",
                                                                                      "ip", "at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)


class AuditRow(Base):
    """Append-only: who did what to which object, when and from where (the trigger refuses UPDATE/DELETE)."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    actor_role: Mapped[str] = mapped_column(String(20), default="")
    action: Mapped[str] = mapped_column(String(40), index=True)
    object_type: Mapped[str] = mapped_column(String(20), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    branch_code: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    detail: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    ip: Mapped[str] = mapped_column(String(64), default="")


class ImportJob(Base):
    """A bulk import: counters for the progress bar and the per-row report (JSON list)."""

    __tablename__ = "import_jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_by: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(200))
    # queued | running | done | failed | interrupted (its runner is gone: resumable) | abandoned
    status: Mapped[str] = mapped_column(String(12), default="queued", index=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    ok: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    report: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    runner: Mapped[str | None] = mapped_column(String(128), nullable=True)  # host:pid:token of the running process
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # its lease, renewed
    csv_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source: Mapped[str] = mapped_column(String(8), default="cli", server_default="cli")  # cli | upload


class ImportJobRow(Base):
    """A finished row of an import job (revision 0007), written in the row's own transaction: what a resume
    skips. No name, no reason: those are in the report, which an erasure scrubs."""

    __tablename__ = "import_job_rows"
    job_id: Mapped[str] = mapped_column(ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(12))
    code: Mapped[str] = mapped_column(String(40), default="")
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


# The tables of what the edges send up live in console.tables_up; imported here so that Base.metadata (Alembic,
# the schema checks) holds them and ``from console.tables import EdgeEvent`` keeps working.
from console.tables_up import (  # noqa: E402, I001
    CentralClip as CentralClip,
    CentralHour as CentralHour,
    CentralInteraction as CentralInteraction,
    ClipVerdict as ClipVerdict,
    EdgeEvent as EdgeEvent,
    EdgeEventPerson as EdgeEventPerson,
    EdgePopulation as EdgePopulation,
)
