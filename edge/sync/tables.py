"""The sync's own table in the edge store: which persons came from the console (and at which version).

A person that is not in it was enrolled on this box and is never touched by a console snapshot. The rows hold no
personal data; the person's own row (and with it this one, ON DELETE CASCADE) goes when the console erases them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from edge.store.tables import Base, UTCDateTime

META_VERSION = "gallery_version"  # the console version this box applied completely
META_ERASED_PENDING = "sync_erased_pending"  # erased ids applied here, not yet confirmed to the console (JSON list)
META_EMBED_FAILURES = "sync_embed_failures"  # console persons this box could not embed (JSON {id: code})


class SyncedPersonRow(Base):
    __tablename__ = "synced_persons"

    person_id: Mapped[str] = mapped_column(String(32), ForeignKey("persons.id", ondelete="CASCADE"),
                                           primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime())


def create_tables(engine: Engine) -> None:
    """Add the sync's table to a store made before sync existed (``create_all`` only adds what is missing)."""
    Base.metadata.create_all(engine, tables=[SyncedPersonRow.__table__])  # type: ignore[list-item]
