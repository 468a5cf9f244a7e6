"""Which persons each stored alert and outbox event names, and the scrub that makes them stop naming a person.

An erased person (the console's tombstone, applied by :mod:`edge.sync.apply`) leaves the box's store, gallery
and plates; the alerts and outbox events about them stay (the branch's record: arrivals, waits, services), but
their envelopes and bodies carry the name, tier, photo URL and plate the rules wrote at the time.
:func:`scrub_persons` rewrites them by :mod:`alerts.erasure`'s rule, in the caller's transaction, so a terminal's
replay and the events still waiting for the console no longer say who.

Finding them is an index lookup, not a read of every body: :meth:`edge.store.db.Store.append` and
:meth:`~edge.store.db.Store.stage_event` note the person ids a body names here (``alert_persons``,
``outbox_persons``), in the transaction that writes it. The rows go with their alert or event (ON DELETE
CASCADE: pruned sent events take theirs along). A store made before this index existed is indexed once, at
start (:func:`index_existing`).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerts.erasure import person_ids, scrub
from edge.store.tables import AlertRow, Base, MetaRow, OutboxRow

META_INDEXED = "person_mentions_indexed"  # set once the alerts and events stored before the index are indexed
PAGE = 500


class AlertPersonRow(Base):
    __tablename__ = "alert_persons"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(32), ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True,
                                          index=True)


class OutboxPersonRow(Base):
    __tablename__ = "outbox_persons"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, ForeignKey("outbox.seq", ondelete="CASCADE"), primary_key=True,
                                     index=True)


def _json(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def note_alert(session: Session, alert_id: str, body: Any) -> None:
    """Index a stored alert (its row is flushed first: the index refers to it)."""
    ids = person_ids(body)
    if ids:
        session.flush()
        session.add_all(AlertPersonRow(person_id=pid, alert_id=alert_id) for pid in sorted(ids))


def note_event(session: Session, row: OutboxRow, body: Any) -> None:
    """Index an outbox event (flushed first when it names someone: its seq is the database's)."""
    ids = person_ids(body)
    if ids:
        session.flush()
        session.add_all(OutboxPersonRow(person_id=pid, seq=row.seq) for pid in sorted(ids))


def index_existing(session: Session) -> int:
    """Index the alerts and events stored before the index existed, once per store; returns how many rows."""
    if session.get(MetaRow, META_INDEXED) is not None:
        return 0
    done = 0
    for model, key, mention in ((AlertRow, AlertRow.id, AlertPersonRow), (OutboxRow, OutboxRow.seq, OutboxPersonRow)):
        column = "alert_id" if mention is AlertPersonRow else "seq"
        last: Any = None
        while True:
            query = select(key, model.body).order_by(key).limit(PAGE)
            rows = session.execute(query if last is None else query.where(key > last)).all()
            if not rows:
                break
            session.add_all(mention(**{"person_id": pid, column: ident}) for ident, body in rows
                            for pid in sorted(person_ids(_loads(body))))
            session.flush()
            done += len(rows)
            last = rows[-1][0]
    session.add(MetaRow(key=META_INDEXED, value="1"))
    return done


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Scrubbed:
    alerts: tuple[str, ...]  # ids of the alerts that changed (a terminal showing one may take it again)
    events: int  # outbox events that changed


def scrub_persons(session: Session, erased: Collection[str]) -> Scrubbed:
    """Scrub the ``erased`` persons from every alert and outbox event that names them, in ``session``'s
    transaction; returns what changed."""
    ids = set(erased)
    if not ids:
        return Scrubbed((), 0)
    alerts = select(AlertPersonRow.alert_id).where(AlertPersonRow.person_id.in_(ids))
    changed = _scrub_pages(session, AlertRow, AlertRow.id, alerts, ids)
    events = select(OutboxPersonRow.seq).where(OutboxPersonRow.person_id.in_(ids))
    count = len(_scrub_pages(session, OutboxRow, OutboxRow.seq, events, ids))
    session.execute(delete(AlertPersonRow).where(AlertPersonRow.person_id.in_(ids)))
    session.execute(delete(OutboxPersonRow).where(OutboxPersonRow.person_id.in_(ids)))
    session.flush()
    return Scrubbed(tuple(str(k) for k in changed), count)


def _scrub_pages(session: Session, model: type[AlertRow] | type[OutboxRow], key: Any, wanted: Any,
                 ids: set[str]) -> list[Any]:
    """Scrub the rows of ``model`` whose ``key`` is in ``wanted``, a page at a time (a staff member is named by
    every episode they served; the pages leave the session once written); returns the keys of those changed."""
    changed: list[Any] = []
    last = None
    while True:
        query = select(model).where(key.in_(wanted)).order_by(key).limit(PAGE)
        rows: list[AlertRow | OutboxRow] = list(session.scalars(query if last is None else query.where(key > last)))
        if not rows:
            return changed
        changed += [getattr(row, key.key) for row in rows if _scrub_row(row, ids)]
        session.flush()
        for row in rows:
            session.expunge(row)
        last = getattr(rows[-1], key.key)


def _scrub_row(row: AlertRow | OutboxRow, ids: set[str]) -> int:
    body = _loads(row.body)
    if body is None or not scrub(body, ids):
        return 0
    row.body = _json(body)
    return 1
