"""Ingest of the edges' outbox events: stored once each, projected in the same transaction.

An edge sends its events in batches (``POST /api/sync/events``) and re-sends whatever it did not see
acknowledged, so the same event may arrive twice, or from two console replicas at once. ``edge_events`` is
unique on (edge, epoch, seq) and the batch goes in as one ``INSERT ... ON CONFLICT DO NOTHING RETURNING seq``
(PostgreSQL and SQLite alike): the seqs it returns are the events new to the console, and only those are
projected. The projections therefore count each event once however often it is sent:

- ``clip`` -> ``central_clips`` (the index; the file follows by ``PUT /api/sync/clips/{id}``);
- ``interaction`` -> ``central_interactions`` (one finished service episode) and its hour's count;
- ``alert`` -> the hour's counts of VIP arrivals, unattended customers and unstaffed counters;
- ``stats_hourly`` -> the edge's own statistics row beside the hour's counts;
- ``camera_health`` and ``ack`` are kept as events only;
- ``population``: its aggregates are taken out before the batch is stored (:mod:`console.population`).

The person ids a body names are indexed (``edge_event_persons``) for erasure, and a body naming a person erased
before it arrived is stored with the name scrubbed (:mod:`console.sync.scrub`).

Hours are the branch's local hours (their start stored in UTC), so a day in the bank view is the branch's day.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from console.db import utcnow
from console.errors import ConsoleError
from console.sync.auth import EdgeCaller
from console.sync.scrub import scrub_incoming
from console.tables import Branch, CentralClip, CentralHour, CentralInteraction, EdgeEvent, EdgeEventPerson

KINDS = frozenset({"alert", "interaction", "stats_hourly", "camera_health", "clip", "ack", "population"})
MAX_BATCH = 500
ALERT_COUNTS = {"vip_arrival": "vip_arrivals", "customer_unattended": "unattended", "counter_unstaffed": "unstaffed"}


@dataclass(frozen=True, slots=True)
class InEvent:
    seq: int
    kind: str
    at: datetime
    body: Any


def insert_for(session: Session, table: Table | Any) -> Any:
    """The dialect's INSERT (it has ``on_conflict_do_nothing`` on both backends)."""
    name = session.get_bind().dialect.name
    return postgresql.insert(table) if name == "postgresql" else sqlite.insert(table)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from an edge; a time without a zone is UTC (the edge writes UTC only)."""
    if isinstance(value, datetime):
        found = value
    elif isinstance(value, str) and value:
        try:
            found = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def branch_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def local_hour(at: datetime, tz: ZoneInfo) -> datetime:
    """The start of the branch-local hour holding ``at``, in UTC."""
    return at.astimezone(tz).replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def ingest(session: Session, edge: EdgeCaller, epoch: str, events: Sequence[InEvent]) -> list[int]:
    """Store the events new to the console and project them; returns every seq of the batch (stored now or
    before): the edge may mark them all sent."""
    if len(events) > MAX_BATCH:
        raise ConsoleError("batch_too_large", f"at most {MAX_BATCH} events per batch", 413)
    if not events:
        return []
    unique = {e.seq: e for e in events}  # a seq twice in one batch is the same event
    # an event naming a person erased meanwhile (an edge that was offline) is stored scrubbed (console.sync.scrub)
    bodies, named = scrub_incoming(session, [e.body for e in unique.values()])
    unique = {e.seq: replace(e, body=body) for e, body in zip(unique.values(), bodies, strict=True)}
    names = dict(zip(unique, named, strict=True))
    now = utcnow()
    rows = [{"edge_id": edge.edge_id, "branch_id": edge.branch_id, "epoch": epoch, "seq": e.seq, "kind": e.kind,
             "at": e.at, "body": e.body, "received_at": now} for e in unique.values()]
    table = EdgeEvent.__table__
    stmt = (insert_for(session, table).on_conflict_do_nothing(index_elements=["edge_id", "epoch", "seq"])
            .returning(table.c.id, table.c.seq))
    # one compiled statement, executed for many rows (SQLAlchemy's "insertmanyvalues" batches them with RETURNING)
    stored = {int(seq): int(ident) for ident, seq in session.connection().execute(stmt, rows)}
    new = set(stored)
    links = [{"person_id": pid, "event_id": stored[seq]} for seq in sorted(new) for pid in sorted(names[seq])]
    if links:
        session.connection().execute(insert_for(session, EdgeEventPerson.__table__), links)
    if new:
        branch = session.get_one(Branch, edge.branch_id)
        _project(session, edge, branch_zone(branch.timezone), [unique[s] for s in sorted(new)])
    return sorted(unique)


def _project(session: Session, edge: EdgeCaller, tz: ZoneInfo, events: Sequence[InEvent]) -> None:
    hours: dict[datetime, Counter[str]] = {}
    edge_stats: dict[datetime, Any] = {}
    clips: list[dict[str, Any]] = []
    episodes: list[dict[str, Any]] = []
    for event in events:
        body = event.body if isinstance(event.body, dict) else {}
        if event.kind == "alert":
            column = ALERT_COUNTS.get(str(body.get("type", "")))
            if column is not None:
                hours.setdefault(local_hour(event.at, tz), Counter())[column] += 1
        elif event.kind == "interaction":
            row = _episode(edge, body)
            if row is not None:
                episodes.append(row)
                hours.setdefault(local_hour(row["started_at"], tz), Counter())["interactions"] += 1
        elif event.kind == "clip":
            row = _clip(edge, body)
            if row is not None:
                clips.append(row)
        elif event.kind == "stats_hourly":
            hour = parse_time(body.get("hour"))
            if hour is not None:
                edge_stats[hour] = body
                hours.setdefault(hour, Counter())
    connection = session.connection()
    if clips:
        connection.execute(insert_for(session, CentralClip.__table__).on_conflict_do_nothing(index_elements=["id"]),
                           clips)
    if episodes:
        connection.execute(insert_for(session, CentralInteraction.__table__)
                           .on_conflict_do_nothing(index_elements=["id"]), episodes)
    _link_clips(session, clips, episodes)
    for hour, counts in hours.items():
        _add_hour(session, edge.branch_id, hour, counts, edge_stats.get(hour))


def _people(body: dict[str, Any]) -> dict[str, Any]:
    def text(key: str, limit: int) -> str | None:
        value = body.get(key)
        return str(value)[:limit] if value not in (None, "") else None

    return {"staff_id": text("staff_id", 64), "staff_name": text("staff_name", 128), "vip_id": text("vip_id", 64),
            "vip_name": text("vip_name", 128)}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _episode(edge: EdgeCaller, body: dict[str, Any]) -> dict[str, Any] | None:
    started = parse_time(body.get("started_at"))
    ident = body.get("id")
    if started is None or not isinstance(ident, str) or not ident:
        return None
    return {"id": ident[:64], "branch_id": edge.branch_id, "edge_id": edge.edge_id,
            "camera": str(body.get("camera") or "")[:64], **_people(body), "started_at": started,
            "ended_at": parse_time(body.get("ended_at")), "duration_s": _number(body.get("duration_s")),
            "wait_s": _number(body.get("wait_s")), "interrupted": bool(body.get("interrupted")),
            "clip_id": str(body["clip_id"])[:64] if body.get("clip_id") else None}


def _clip(edge: EdgeCaller, body: dict[str, Any]) -> dict[str, Any] | None:
    started = parse_time(body.get("started_at"))
    ident, sha = body.get("id"), body.get("sha256")
    if started is None or not isinstance(ident, str) or not ident or not isinstance(sha, str) or len(sha) != 64:
        return None
    return {"id": ident[:64], "branch_id": edge.branch_id, "edge_id": edge.edge_id,
            "interaction_id": str(body.get("interaction_id") or "")[:64], "camera": str(body.get("camera") or "")[:64],
            **_people(body), "started_at": started, "ended_at": parse_time(body.get("ended_at")),
            "duration_s": _number(body.get("duration_s")) or 0.0, "size": int(_number(body.get("size")) or 0),
            "sha256": sha.lower(), "blob_key": None, "uploaded_at": None, "received_at": utcnow()}


def _link_clips(session: Session, clips: list[dict[str, Any]], episodes: list[dict[str, Any]]) -> None:
    """An episode names its clip: the clip usually arrives after the episode (post-roll), sometimes before."""
    links = {c["interaction_id"]: c["id"] for c in clips if c["interaction_id"]}
    waiting = [e["id"] for e in episodes if e["clip_id"] is None and e["id"] not in links]
    if waiting:
        found = session.execute(select(CentralClip.interaction_id, CentralClip.id)
                                .where(CentralClip.interaction_id.in_(waiting)))
        links.update({str(interaction_id): str(clip_id) for interaction_id, clip_id in found})
    if links:
        table = cast(Table, CentralInteraction.__table__)
        stmt = (update(table).where(table.c.id == bindparam("iid"), table.c.clip_id.is_(None))
                .values(clip_id=bindparam("cid")))
        session.connection().execute(stmt, [{"iid": i, "cid": c} for i, c in links.items()])


def _add_hour(session: Session, branch_id: int, hour: datetime, counts: Counter[str], stats: Any) -> None:
    columns = ("vip_arrivals", "unattended", "unstaffed", "interactions")
    values = {c: int(counts.get(c, 0)) for c in columns}
    table = CentralHour.__table__
    stmt = insert_for(session, table).values(branch_id=branch_id, hour=hour, edge_stats=stats, **values)
    changes: dict[str, Any] = {c: table.c[c] + stmt.excluded[c] for c in columns}
    if stats is not None:
        changes["edge_stats"] = stmt.excluded.edge_stats
    session.execute(stmt.on_conflict_do_update(index_elements=["branch_id", "hour"], set_=changes))
