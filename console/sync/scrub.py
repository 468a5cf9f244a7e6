"""Erasure reaches the events: an erased person's name leaves every event and projection that named them.

Erasing a person (:func:`console.enrolment.erase_person`) deletes their photos, templates, plates and row; the
events the edges sent about them stay, because the bank view counts them, but stop saying who
(:mod:`alerts.erasure` says what is kept and what goes). Two ways in, both in the transaction that writes:

- :func:`scrub_person`, in the erasure's own transaction: the event bodies that name the person (found by
  ``edge_event_persons``, indexed), and ``staff_name`` / ``vip_name`` of ``central_interactions`` and
  ``central_clips`` (indexed ids). Counts and service times are untouched; the audit is never touched.
- the bulk-import reports that list the person (name and customer number), in the same transaction; a report
  that an import still running saves again afterwards is not covered (erase after the import finished);
- :func:`scrub_incoming`, in the ingest's transaction: an edge that was offline may send, after the erasure, an
  old event naming the person; a body naming a tombstoned id is scrubbed before it is stored or projected.

The two must not miss each other: an ingest that read no tombstone must not commit its named rows after the
erasure scrubbed. On PostgreSQL the erasure holds an exclusive advisory lock, each ingest a shared one (ingests
do not wait for one another). SQLite has one writer: both take the write lock first (a write that changes
nothing), so the second waits for the first to commit and then reads what it wrote.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, Text, bindparam, delete, select, text, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from alerts.erasure import ERASED_NAME, person_ids, scrub
from console.tables import CentralClip, CentralInteraction, EdgeEvent, EdgeEventPerson, ImportJob, Tombstone

ERASURE_LOCK_KEY = 0x5342_4552  # "SBER": pg_advisory lock between an erasure and the ingests
PAGE = 500


def erasure_barrier(session: Session, *, exclusive: bool) -> None:
    """Order this transaction against erasures (exclusive) or ingests (shared); see the module docstring."""
    if session.get_bind().dialect.name == "postgresql":
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        session.execute(text(f"SELECT {function}(:k)"), {"k": ERASURE_LOCK_KEY})
    else:
        session.execute(text("UPDATE tombstones SET seq = seq WHERE seq < 0"))


def scrub_person(session: Session, person_id: str) -> dict[str, int]:
    """Scrub ``person_id`` from the stored events and projections; returns how many rows of each changed."""
    erasure_barrier(session, exclusive=True)
    erased = {person_id}
    events = 0
    linked = select(EdgeEventPerson.event_id).where(EdgeEventPerson.person_id == person_id)
    table = cast(Table, EdgeEvent.__table__)
    last = 0
    while True:  # page by page: a staff member is named by every episode they served
        rows = session.execute(select(EdgeEvent.id, EdgeEvent.body).where(EdgeEvent.id.in_(linked),
                                                                          EdgeEvent.id > last)
                               .order_by(EdgeEvent.id).limit(PAGE)).all()
        if not rows:
            break
        changed = []
        for ident, body in rows:
            clean = copy.deepcopy(body)
            if scrub(clean, erased):
                changed.append({"eid": ident, "clean": clean})
        if changed:
            session.connection().execute(update(table).where(table.c.id == bindparam("eid"))
                                         .values(body=bindparam("clean")), changed)
            events += len(changed)
        last = int(rows[-1][0])
    session.execute(delete(EdgeEventPerson).where(EdgeEventPerson.person_id == person_id))
    counts = {"events": events, "interactions": 0, "clips": 0}
    for key, model in (("interactions", CentralInteraction), ("clips", CentralClip)):
        for id_column, name_column in ((model.staff_id, model.staff_name), (model.vip_id, model.vip_name)):
            result = session.execute(update(model).where(id_column == person_id, name_column.is_not(None),
                                                         name_column != ERASED_NAME)
                                     .values({name_column: ERASED_NAME}).execution_options(synchronize_session=False))
            counts[key] += int(getattr(result, "rowcount", 0) or 0)
    counts["imports"] = _scrub_import_reports(session, person_id)
    return counts


def _scrub_import_reports(session: Session, person_id: str) -> int:
    """The bulk-import reports that list the person (a line per row: name, customer number, person id). Few jobs,
    long reports: the database picks the ones whose text holds the id, only those are read."""
    table = cast(Table, ImportJob.__table__)
    found = session.execute(select(table.c.id, table.c.report)
                            .where(sql_cast(table.c.report, Text).contains(person_id))).all()
    changed = []
    for ident, report in found:
        clean = copy.deepcopy(report)
        if scrub(clean, {person_id}):
            changed.append({"jid": ident, "clean": clean})
    if changed:
        session.connection().execute(update(table).where(table.c.id == bindparam("jid"))
                                     .values(report=bindparam("clean")), changed)
    return len(changed)


def scrub_incoming(session: Session, bodies: Iterable[Any]) -> tuple[list[Any], list[set[str]]]:
    """The bodies as they may be stored (a body naming a tombstoned person scrubbed, in a copy) and, for each,
    the person ids to index it under (the erased ones left out: nothing will look for them again)."""
    erasure_barrier(session, exclusive=False)
    items = list(bodies)
    named = [person_ids(body) for body in items]
    wanted = set().union(*named) if named else set()
    erased = set(session.scalars(select(Tombstone.person_id).where(Tombstone.person_id.in_(wanted)))) if wanted \
        else set()
    out: list[Any] = []
    for body, ids in zip(items, named, strict=True):
        if ids & erased:
            body = copy.deepcopy(body)
            scrub(body, erased)
        out.append(body)
    return out, [ids - erased for ids in named]
