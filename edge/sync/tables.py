"""The sync's own table in the edge store: which persons came from the console (and at which version).

A person that is not in it was enrolled on this box and is never touched by a console snapshot. The rows hold no
personal data; the person's own row (and with it this one, ON DELETE CASCADE) goes when the console erases them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from edge.store.tables import ENCRYPTED, Base, UTCDateTime

META_VERSION = "gallery_version"  # the console version this box applied completely
META_ERASED_PENDING = "sync_erased_pending"  # erased ids applied here, not yet confirmed to the console (JSON list)
META_EMBED_FAILURES = "sync_embed_failures"  # console persons this box could not embed (JSON {id: code})


class SyncedPersonRow(Base):
    __tablename__ = "synced_persons"

    person_id: Mapped[str] = mapped_column(String(32), ForeignKey("persons.id", ondelete="CASCADE"),
                                           primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StagedPersonRow(Base):
    """One person of a snapshot that arrives in several pages, held here (not in memory) until the last page
    came and the whole snapshot is applied in one transaction; emptied in that transaction. ``entry`` is the
    console's JSON entry as sent without its photos and template (name, tier, plates...), encrypted with the data
    key; the photos are in :class:`StagedPhotoRow`."""

    __tablename__ = "sync_staged"

    person_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    snapshot_version: Mapped[int] = mapped_column(Integer)
    entry: Mapped[bytes] = mapped_column(LargeBinary, info=ENCRYPTED)


class StagedPhotoRow(Base):
    """One checked photo of a staged person, in the order sent. ``photo`` is the JPEG encrypted with the data key
    exactly as the store's person photos are: the apply moves it into ``persons``/``person_photos`` unchanged, never
    decrypted. Key rotation re-encrypts it like every ``info=ENCRYPTED`` column."""

    __tablename__ = "sync_staged_photos"

    person_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    photo: Mapped[bytes] = mapped_column(LargeBinary, info=ENCRYPTED)


def create_tables(engine: Engine) -> None:
    """Add the sync's tables to a store made before sync existed (``create_all`` only adds what is missing)."""
    tables = [SyncedPersonRow.__table__, StagedPersonRow.__table__, StagedPhotoRow.__table__]
    Base.metadata.create_all(engine, tables=tables)  # type: ignore[arg-type]
