"""The outbox's reading side and its periodic producers.

Events are written by the things they report, in the same transaction (``Store.stage_event``: alerts and acks
in :mod:`edge.store.db`, finished episodes and clips in :mod:`edge.review.store`). Here:

- :class:`Outbox` hands the sender the oldest unsent events, marks what the console acknowledged as sent, and
  prunes sent rows after a retention (unsent rows are never pruned: a long WAN outage only grows the table);
- :func:`stage_hourly_stats` writes one ``stats_hourly`` event per closed branch-local hour (the counter's
  statistics row), remembering the last hour written in the store's meta, in the same transaction, so a
  restart neither skips nor repeats an hour;
- :func:`stage_camera_health` writes one ``camera_health`` event with every camera's state;
- the clip upload queue: which clip files the console is still owed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select, update

from edge.counter.stats import hour_bucket, hourly_stats
from edge.review.store import ReviewStore
from edge.store.db import Store
from edge.store.tables import ClipUploadRow, MetaRow, OutboxRow
from edge.sync.population import fill_aggregates

STATS_HOUR_META = "outbox_stats_hour"  # UTC start of the last local hour whose stats_hourly event was written
MAX_STATS_BACKLOG_HOURS = 48  # after a long stop, the hours further back are not reported (no records anyway)
BATCH_LIMIT = 500
UNREGISTERED_KEEP = timedelta(days=30)  # a box without a console keeps its unsent events this long


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    seq: int
    kind: str
    at: datetime
    body: Any  # the decoded JSON body

    def wire(self) -> dict[str, Any]:
        """As POST /api/sync/events carries it."""
        return {"seq": self.seq, "kind": self.kind, "at": self.at.isoformat(), "body": self.body}


class Outbox:
    """Thread-safe (each call has its own session); the sender thread is its only reader."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def epoch(self) -> str:
        return self._store.epoch

    def pending(self, limit: int = BATCH_LIMIT) -> list[OutboxEvent]:
        """The oldest unsent events, at most ``limit`` (oldest first: the console sees them in order)."""
        with self._store.session() as s:
            rows = s.scalars(select(OutboxRow).where(OutboxRow.sent.is_(False)).order_by(OutboxRow.seq)
                             .limit(max(1, min(limit, BATCH_LIMIT))))
            events = [OutboxEvent(r.seq, r.kind, r.at, json.loads(r.body)) for r in rows]
        return fill_aggregates(self._store, events)  # population aggregates, from the encrypted store

    def mark_sent(self, seqs: Sequence[int]) -> int:
        """Mark these events as taken by the console; returns how many were still unsent."""
        if not seqs:
            return 0
        with self._store.session() as s, s.begin():
            result = s.execute(update(OutboxRow).where(OutboxRow.seq.in_(list(seqs)), OutboxRow.sent.is_(False))
                               .values(sent=True, sent_at=datetime.now(UTC)))
            return int(getattr(result, "rowcount", 0) or 0)

    def unsent(self) -> int:
        with self._store.session() as s:
            return int(s.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.sent.is_(False))) or 0)

    def prune(self, *, sent_before: datetime) -> int:
        """Delete events the console took before ``sent_before``; returns how many."""
        with self._store.session() as s, s.begin():
            result = s.execute(delete(OutboxRow).where(OutboxRow.sent.is_(True), OutboxRow.sent_at < sent_before))
            return int(getattr(result, "rowcount", 0) or 0)

    def drop_unsent(self, *, older_than: datetime) -> int:
        """Delete unsent events written before ``older_than``: only for a box that has no console to send them
        to (never registered), so that its outbox does not grow for ever; returns how many."""
        with self._store.session() as s, s.begin():
            result = s.execute(delete(OutboxRow).where(OutboxRow.sent.is_(False), OutboxRow.at < older_than))
            s.execute(delete(ClipUploadRow).where(ClipUploadRow.state == "pending",
                                                  ClipUploadRow.updated_at < older_than))
            return int(getattr(result, "rowcount", 0) or 0)

    # -- clip uploads --------------------------------------------------------------------------
    def clips_to_upload(self, limit: int = 20) -> list[str]:
        """Clip ids still owed to the console, oldest first."""
        with self._store.session() as s:
            return list(s.scalars(select(ClipUploadRow.clip_id).where(ClipUploadRow.state == "pending")
                                  .order_by(ClipUploadRow.updated_at, ClipUploadRow.clip_id).limit(limit)))

    def clip_done(self, clip_id: str, state: str) -> None:
        """``state``: uploaded; gone (retention removed the file before it could be sent); damaged (the file
        does not decrypt); refused (the console kept refusing it)."""
        with self._store.session() as s, s.begin():
            s.execute(update(ClipUploadRow).where(ClipUploadRow.clip_id == clip_id)
                      .values(state=state, updated_at=datetime.now(UTC)))

    def clip_retry_later(self, clip_id: str) -> int:
        """Count a failed attempt and move the clip behind the others (one bad clip does not block the queue);
        returns the attempts so far."""
        with self._store.session() as s, s.begin():
            s.execute(update(ClipUploadRow).where(ClipUploadRow.clip_id == clip_id)
                      .values(attempts=ClipUploadRow.attempts + 1, updated_at=datetime.now(UTC)))
            return int(s.scalar(select(ClipUploadRow.attempts).where(ClipUploadRow.clip_id == clip_id)) or 0)


def stage_hourly_stats(store: Store, review: ReviewStore, tz: ZoneInfo, now: datetime) -> int:
    """Write a ``stats_hourly`` event for every branch-local hour that closed since the last one written;
    returns how many. The first call only remembers the current hour (history before the sync began is not
    reported as hourly rows; its episodes travel as ``interaction`` events anyway)."""
    current = hour_bucket(now, tz).astimezone(UTC)
    last_text = store.meta(STATS_HOUR_META)
    if last_text is None:  # the hour running now is the first to be reported, once it closes
        store.set_meta(STATS_HOUR_META, (current - timedelta(hours=1)).isoformat())
        return 0
    last = datetime.fromisoformat(last_text)
    first = max(last + timedelta(hours=1), current - timedelta(hours=MAX_STATS_BACKLOG_HOURS))
    hours: list[datetime] = []
    hour = first
    while hour < current:
        hours.append(hour)
        hour += timedelta(hours=1)
    if not hours:
        return 0
    interactions = review.list_interactions(started_from=hours[0], started_before=current)
    unattended = [u.at for u in review.list_unattended(at_from=hours[0], at_before=current)]
    report = {h.hour.astimezone(UTC): h for h in hourly_stats(interactions, unattended, tz).by_hour}
    with store.session() as s, s.begin():
        for hour in hours:
            row = report.get(hour)
            stats = row.stats if row is not None else None
            store.stage_event(s, kind="stats_hourly", at=hour + timedelta(hours=1), body={
                "hour": hour, "timezone": str(tz), "interactions": stats.interactions if stats else 0,
                "median_service_s": stats.median_service_s if stats else None,
                "median_wait_s": stats.median_wait_s if stats else None,
                "ongoing": stats.ongoing if stats else 0, "interrupted": stats.interrupted if stats else 0,
                "unattended": row.unattended if row is not None else 0})
        s.merge(MetaRow(key=STATS_HOUR_META, value=hours[-1].isoformat()))
    return len(hours)


def stage_camera_health(store: Store, cameras: Sequence[dict[str, Any]], now: datetime) -> None:
    """One ``camera_health`` event: each camera's id, name, role, state, fps and last frame time."""
    with store.session() as s, s.begin():
        store.stage_event(s, kind="camera_health", at=now, body={"cameras": list(cameras)})
