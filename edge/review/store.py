"""The review store: interactions, unattended events, the clip index, verdicts and the audit log.

Public methods return frozen dataclasses, never ORM rows. Changes a reviewer makes (a verdict, a
hold) and each retention expiry write their audit row in the same transaction as the change, so
there is no change without its audit row and no audit row for a change that was rolled back.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from sqlalchemy import CursorResult, Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edge.clips.types import ClipParticipants, ClipWritten, InteractionRecord
from edge.review.outbox_events import clip_body, interaction_body
from edge.review.tables import (
    AuditRow,
    ClipRow,
    InteractionRow,
    UnattendedRow,
    VerdictRow,
    add_missing_columns,
    install_append_only_triggers,
)
from edge.review.types import (
    VERDICTS,
    AuditEntry,
    Clip,
    ClipExpiredError,
    DuplicateRecordError,
    UnattendedRecord,
    UnknownClipError,
    UnknownInteractionError,
    Verdict,
    VerdictValue,
)
from edge.store.db import Store
from edge.store.tables import Base

logger = logging.getLogger(__name__)

NO_VERDICT = "none"  # list_clips(verdict="none"): clips nobody has judged yet
MAX_NOTES = 2000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value


def _seconds(name: str, value: float | None) -> None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")


def _verdict(row: VerdictRow) -> Verdict:
    return Verdict(row.id, row.clip_id, row.verdict, row.notes, row.by, row.at)


def _clip(row: ClipRow, verdict: VerdictRow | None) -> Clip:
    participants = ClipParticipants(row.interaction_id, row.camera_id, row.staff_track, row.customer_track,
                                    row.staff_id, row.vip_id)
    return Clip(row.id, participants, Path(row.path), row.sha256, row.size_bytes, row.started_at, row.ended_at,
                row.duration_s, row.frames, row.pre_roll_frames, row.dropped_frames, row.created_at, row.hold,
                row.hold_by, row.hold_at, row.expired_at, None if verdict is None else _verdict(verdict))


def _interaction(row: InteractionRow) -> InteractionRecord:
    participants = ClipParticipants(row.id, row.camera_id, row.staff_track, row.customer_track, row.staff_id,
                                    row.vip_id)
    return InteractionRecord(participants, row.started_at, row.ended_at, row.duration_s, row.wait_s,
                             bool(row.interrupted))


def _unattended(row: UnattendedRow) -> UnattendedRecord:
    return UnattendedRecord(row.id, row.camera_id, row.customer_track, row.vip_id, row.zone, row.waited_s, row.at,
                            row.alert_id)


def _audit(row: AuditRow) -> AuditEntry:
    return AuditEntry(row.id, row.at, row.actor, row.action, row.clip_id, row.outcome, row.detail)


def _audit_row(*, actor: str, action: str, clip_id: str | None, outcome: str, detail: str) -> AuditRow:
    return AuditRow(at=datetime.now(UTC), actor=actor[:128] or "anonymous", action=action[:32],
                    clip_id=None if clip_id is None else clip_id[:64], outcome=outcome[:32], detail=detail[:2000])


def _clips_with_verdict() -> Select[ClipRow, VerdictRow]:
    latest = (select(VerdictRow.clip_id, func.max(VerdictRow.id).label("verdict_id"))
              .group_by(VerdictRow.clip_id).subquery())
    return (select(ClipRow, VerdictRow)
            .outerjoin(latest, latest.c.clip_id == ClipRow.id)
            .outerjoin(VerdictRow, VerdictRow.id == latest.c.verdict_id))


class ReviewStore:
    """Thread-safe: every method opens its own session; SQLite (WAL, busy timeout) serialises writers."""

    def __init__(self, store: Store) -> None:
        self._store = store
        Base.metadata.create_all(store.engine)
        add_missing_columns(store.engine)
        install_append_only_triggers(store.engine)

    def _session(self) -> Session:
        return self._store.session()

    # -- interactions --------------------------------------------------------------------------
    def add_interaction(self, record: InteractionRecord) -> None:
        """Store an interaction when it starts (``ended_at`` may be None); its id must be new."""
        p = record.participants
        _aware("started_at", record.started_at)
        if record.ended_at is not None:
            _aware("ended_at", record.ended_at)
        _seconds("duration_s", record.duration_s)
        _seconds("wait_s", record.wait_s)
        try:
            with self._session() as s, s.begin():
                s.add(InteractionRow(id=p.interaction_id, camera_id=p.camera_id, staff_track=p.staff_track,
                                     customer_track=p.customer_track, staff_id=p.staff_id, vip_id=p.vip_id,
                                     started_at=record.started_at, ended_at=record.ended_at,
                                     duration_s=record.duration_s, wait_s=record.wait_s))
        except IntegrityError as exc:
            raise DuplicateRecordError(f"interaction {p.interaction_id} is already stored") from exc

    def end_interaction(self, *, interaction_id: str, ended_at: datetime, duration_s: float) -> None:
        _aware("ended_at", ended_at)
        _seconds("duration_s", duration_s)
        with self._session() as s, s.begin():
            row = s.get(InteractionRow, interaction_id)
            if row is None:
                raise UnknownInteractionError(f"no interaction {interaction_id}")
            row.ended_at = ended_at
            row.duration_s = duration_s
            self._store.stage_event(s, kind="interaction", at=ended_at, body=interaction_body(s, row))

    def close_interrupted_interactions(self) -> list[InteractionRecord]:
        """Close every interaction that is still open, in one transaction; call it at start, before any camera
        runs, when every open interaction was left open by a process that was killed.

        Each is marked ``interrupted`` and ended at the last time the box knew of it: the last frame of its
        latest clip (a clip salvaged at this start included), or else its start. Its duration is then a lower
        bound, which the statistics leave out of the service times. Returns the closed interactions."""
        with self._session() as s, s.begin():
            rows = list(s.scalars(select(InteractionRow).where(InteractionRow.ended_at.is_(None))))
            seen: dict[str, datetime] = {}
            if rows:
                query = select(ClipRow.interaction_id, ClipRow.ended_at).where(
                    ClipRow.interaction_id.in_([r.id for r in rows]))
                for interaction_id, ended_at in s.execute(query):
                    seen[interaction_id] = max(ended_at, seen.get(interaction_id, ended_at))
            for row in rows:
                ended = max(row.started_at, seen.get(row.id, row.started_at))
                row.ended_at, row.interrupted = ended, True
                row.duration_s = round((ended - row.started_at).total_seconds(), 3)
                self._store.stage_event(s, kind="interaction", at=ended, body=interaction_body(s, row))
            return [_interaction(r) for r in rows]

    def get_interaction(self, interaction_id: str) -> InteractionRecord | None:
        with self._session() as s:
            row = s.get(InteractionRow, interaction_id)
            return None if row is None else _interaction(row)

    def list_interactions(self, *, started_from: datetime | None = None, started_before: datetime | None = None,
                          camera_id: str | None = None) -> list[InteractionRecord]:
        """Interactions with ``started_from <= started_at < started_before``, oldest first."""
        query = select(InteractionRow).order_by(InteractionRow.started_at, InteractionRow.id)
        if started_from is not None:
            query = query.where(InteractionRow.started_at >= _aware("started_from", started_from))
        if started_before is not None:
            query = query.where(InteractionRow.started_at < _aware("started_before", started_before))
        if camera_id is not None:
            query = query.where(InteractionRow.camera_id == camera_id)
        with self._session() as s:
            return [_interaction(r) for r in s.scalars(query)]

    # -- unattended customers ------------------------------------------------------------------
    def add_unattended(self, *, camera_id: str, customer_track: int, vip_id: str | None, zone: str,
                       waited_s: float, at: datetime, alert_id: str | None) -> None:
        _aware("at", at)
        _seconds("waited_s", waited_s)
        with self._session() as s, s.begin():
            s.add(UnattendedRow(camera_id=camera_id, customer_track=customer_track, vip_id=vip_id, zone=zone,
                                waited_s=waited_s, at=at, alert_id=alert_id))

    def list_unattended(self, *, at_from: datetime | None = None, at_before: datetime | None = None,
                        camera_id: str | None = None) -> list[UnattendedRecord]:
        query = select(UnattendedRow).order_by(UnattendedRow.at, UnattendedRow.id)
        if at_from is not None:
            query = query.where(UnattendedRow.at >= _aware("at_from", at_from))
        if at_before is not None:
            query = query.where(UnattendedRow.at < _aware("at_before", at_before))
        if camera_id is not None:
            query = query.where(UnattendedRow.camera_id == camera_id)
        with self._session() as s:
            return [_unattended(r) for r in s.scalars(query)]

    # -- clips ---------------------------------------------------------------------------------
    def add_clip(self, written: ClipWritten) -> None:
        """Index a finished clip file: not held, not expired, no verdict."""
        p = written.participants
        _aware("started_at", written.started_at)
        _aware("ended_at", written.ended_at)
        if written.ended_at < written.started_at:
            raise ValueError("clip ended_at is before started_at")
        _seconds("duration_s", written.duration_s)
        if not written.path.is_absolute():
            raise ValueError(f"clip path must be absolute, got {written.path}")
        if not _SHA256.match(written.sha256):
            raise ValueError("clip sha256 must be 64 lowercase hex digits")
        if min(written.size_bytes, written.frames, written.pre_roll_frames, written.dropped_frames) < 0:
            raise ValueError("clip sizes and frame counts must be >= 0")
        try:
            with self._session() as s, s.begin():
                s.add(clip := ClipRow(id=written.clip_id, interaction_id=p.interaction_id, camera_id=p.camera_id,
                              staff_track=p.staff_track, customer_track=p.customer_track, staff_id=p.staff_id,
                              vip_id=p.vip_id, path=str(written.path), sha256=written.sha256,
                              size_bytes=written.size_bytes, started_at=written.started_at,
                              ended_at=written.ended_at, duration_s=written.duration_s, frames=written.frames,
                              pre_roll_frames=written.pre_roll_frames, dropped_frames=written.dropped_frames,
                              created_at=datetime.now(UTC), hold=False))
                s.flush()
                self._store.stage_event(s, kind="clip", at=written.ended_at, body=clip_body(s, clip))
                self._store.queue_clip_upload(s, written.clip_id)
        except IntegrityError as exc:
            raise DuplicateRecordError(f"clip {written.clip_id} is already stored") from exc

    def get_clip(self, clip_id: str) -> Clip | None:
        with self._session() as s:
            found = s.execute(_clips_with_verdict().where(ClipRow.id == clip_id)).one_or_none()
            return None if found is None else _clip(*found)

    def list_clips(self, *, date_from: datetime | None = None, date_to: datetime | None = None,
                   staff_id: str | None = None, camera_id: str | None = None,
                   min_duration_s: float | None = None, max_duration_s: float | None = None,
                   verdict: str | None = None, limit: int = 100, offset: int = 0,
                   staff_ids: Collection[str] | None = None, vip_ids: Collection[str] | None = None,
                   camera_ids: Collection[str] | None = None) -> list[Clip]:
        """Clips with ``date_from <= started_at < date_to``, newest first. ``verdict`` filters on the
        current verdict; ``"none"`` selects clips without one. ``staff_ids``, ``vip_ids`` and ``camera_ids``
        keep clips whose id is one of them (the ids a name filter matched; empty: none)."""
        if verdict is not None and verdict not in (*VERDICTS, NO_VERDICT):
            raise ValueError(f"unknown verdict {verdict!r}")
        if limit < 1 or offset < 0:
            raise ValueError("limit must be >= 1 and offset >= 0")
        query = _clips_with_verdict()
        if date_from is not None:
            query = query.where(ClipRow.started_at >= _aware("date_from", date_from))
        if date_to is not None:
            query = query.where(ClipRow.started_at < _aware("date_to", date_to))
        if staff_id is not None:
            query = query.where(ClipRow.staff_id == staff_id)
        if camera_id is not None:
            query = query.where(ClipRow.camera_id == camera_id)
        for column, ids in ((ClipRow.staff_id, staff_ids), (ClipRow.vip_id, vip_ids), (ClipRow.camera_id, camera_ids)):
            if ids is not None:
                query = query.where(column.in_(sorted(ids)))
        if min_duration_s is not None:
            query = query.where(ClipRow.duration_s >= min_duration_s)
        if max_duration_s is not None:
            query = query.where(ClipRow.duration_s <= max_duration_s)
        if verdict == NO_VERDICT:
            query = query.where(VerdictRow.id.is_(None))
        elif verdict is not None:
            query = query.where(VerdictRow.verdict == verdict)
        query = query.order_by(ClipRow.started_at.desc(), ClipRow.id).limit(limit).offset(offset)
        with self._session() as s:
            return [_clip(clip, current) for clip, current in s.execute(query)]

    def set_hold(self, *, clip_id: str, hold: bool, by: str) -> Clip:
        """Put a clip on review hold (retention keeps it) or release it; audited as ``hold``/``release``.

        Raises :class:`UnknownClipError`, or :class:`ClipExpiredError` when its file is already gone.
        """
        now = datetime.now(UTC)
        with self._session() as s, s.begin():
            result = cast(CursorResult[tuple[()]], s.execute(
                update(ClipRow).where(ClipRow.id == clip_id, ClipRow.expired_at.is_(None))
                .values(hold=hold, hold_by=by, hold_at=now)))
            if result.rowcount != 1:
                exists = s.get(ClipRow, clip_id) is not None
                raise (ClipExpiredError(f"clip {clip_id} has expired") if exists
                       else UnknownClipError(f"no clip {clip_id}"))
            s.add(_audit_row(actor=by, action="hold" if hold else "release", clip_id=clip_id, outcome="ok",
                             detail=f"hold={str(hold).lower()}"))
        clip = self.get_clip(clip_id)
        assert clip is not None  # clips are never deleted
        return clip

    # -- verdicts ------------------------------------------------------------------------------
    def add_verdict(self, *, clip_id: str, verdict: VerdictValue, notes: str, by: str) -> Verdict:
        """Append a verdict (it becomes the clip's current one) and its audit row, in one transaction."""
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}; use one of {', '.join(VERDICTS)}")
        if len(notes) > MAX_NOTES:
            raise ValueError(f"notes exceed {MAX_NOTES} characters")
        with self._session() as s, s.begin():
            if s.get(ClipRow, clip_id) is None:
                raise UnknownClipError(f"no clip {clip_id}")
            row = VerdictRow(clip_id=clip_id, verdict=verdict, notes=notes, by=by, at=datetime.now(UTC))
            s.add(row)
            s.flush()
            s.add(_audit_row(actor=by, action="verdict", clip_id=clip_id, outcome="ok",
                             detail=f"verdict={verdict} id={row.id}"))
            return _verdict(row)

    def list_verdicts(self, clip_id: str) -> list[Verdict]:
        """A clip's verdict history, oldest first (the last is the current one)."""
        with self._session() as s:
            rows = s.scalars(select(VerdictRow).where(VerdictRow.clip_id == clip_id).order_by(VerdictRow.id))
            return [_verdict(r) for r in rows]

    # -- audit ---------------------------------------------------------------------------------
    def audit(self, *, actor: str, action: str, clip_id: str | None, outcome: str, detail: str) -> None:
        """Append one audit row. Over-long fields are cut (actor 128, action and outcome 32, clip id 64,
        detail 2000 characters): a refused request's path is the caller's text."""
        with self._session() as s, s.begin():
            s.add(_audit_row(actor=actor, action=action, clip_id=clip_id, outcome=outcome, detail=detail))

    def list_audit(self, *, clip_id: str | None = None, actor: str | None = None, limit: int = 100,
                   offset: int = 0) -> list[AuditEntry]:
        """Newest first."""
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit).offset(offset)
        if clip_id is not None:
            query = query.where(AuditRow.clip_id == clip_id)
        if actor is not None:
            query = query.where(AuditRow.actor == actor)
        with self._session() as s:
            return [_audit(r) for r in s.scalars(query)]

    # -- retention -----------------------------------------------------------------------------
    def expirable_clips(self, *, ended_before: datetime) -> list[Clip]:
        """Clips that ended before ``ended_before``, are not held and are not expired yet."""
        query = (_clips_with_verdict()
                 .where(ClipRow.ended_at < _aware("ended_before", ended_before), ClipRow.hold.is_(False),
                        ClipRow.expired_at.is_(None))
                 .order_by(ClipRow.ended_at))
        with self._session() as s:
            return [_clip(clip, current) for clip, current in s.execute(query)]

    def expire_clip(self, *, clip_id: str, ended_before: datetime, at: datetime,
                    remove: Callable[[Path], str], actor: str = "retention") -> bool:
        """Mark one clip expired and delete its file with ``remove`` (which returns the audit detail).

        The row is updated first, under SQLite's write lock, and only if the clip is still not held
        and not expired; ``remove`` runs inside that transaction. A hold set concurrently therefore
        either lands before (the clip is skipped) or waits until the expiry is committed (and then
        fails as expired). If ``remove`` raises, the row and the audit stay unchanged. False when
        the clip no longer qualifies.
        """
        _aware("at", at)
        with self._session() as s, s.begin():
            result = cast(CursorResult[tuple[()]], s.execute(
                update(ClipRow).where(ClipRow.id == clip_id, ClipRow.hold.is_(False), ClipRow.expired_at.is_(None),
                                      ClipRow.ended_at < _aware("ended_before", ended_before))
                .values(expired_at=at)))
            if result.rowcount != 1:
                return False
            path = s.scalar(select(ClipRow.path).where(ClipRow.id == clip_id))
            detail = remove(Path(str(path)))
            s.add(_audit_row(actor=actor, action="expire", clip_id=clip_id, outcome="ok", detail=detail))
        return True
