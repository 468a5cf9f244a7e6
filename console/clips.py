"""Clips at the centre: the files the edges upload, the list compliance reads, playback and verdicts.

Why upload rather than fetch on demand: every connection starts at the edge (branch firewalls pass outbound
traffic only), so the console cannot reach into a branch to fetch a clip when an officer asks; and clips are
small (about 300 KB a minute), so each edge sends its clips in the background under a bandwidth cap.

- A file is accepted only for a clip its own edge announced (a ``clip`` event of the same branch) and only when
  its sha256 is the announced one; it is stored encrypted in the blob store. Sent again, nothing changes. A blob
  written for a transaction that then fails is deleted again.
- Verdicts are append-only (a database trigger refuses UPDATE and DELETE); the newest is the clip's current
  one, and each is audited (``verdict_add``) in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.orm import Session

from console.audit import record
from console.context import ConsoleContext
from console.db import utcnow
from console.errors import ConsoleError, not_found
from console.security import Principal
from console.sync.auth import EdgeCaller
from console.sync.events import branch_zone
from console.tables import Branch, CentralClip, ClipVerdict

VERDICTS = ("compliant", "violation", "needs_follow_up")
REVIEWERS = ("compliance", "admin")
MAX_NOTES = 2000


def store_clip_file(ctx: ConsoleContext, edge: EdgeCaller, clip_id: str, data: bytes, digest: str) -> datetime:
    """Keep an uploaded clip file; returns when it was (first) stored. 404 ``clip_unknown`` before its event
    arrived (the edge tries again later), 422 ``sha256_mismatch`` for other bytes than announced."""
    with ctx.db.transaction() as session:
        clip = session.get(CentralClip, clip_id)
        if clip is None or clip.branch_id != edge.branch_id:
            raise ConsoleError("clip_unknown", f"no clip {clip_id} of this branch has been announced yet", 404)
        if digest != clip.sha256:
            raise ConsoleError("sha256_mismatch", f"the file's sha256 {digest} is not the announced {clip.sha256}",
                               422, expected=clip.sha256)
        if clip.blob_key is not None and clip.uploaded_at is not None:
            return clip.uploaded_at
    key = ctx.blobs.put(data)
    try:
        with ctx.db.transaction() as session:
            now = utcnow()
            result = session.execute(update(CentralClip).where(CentralClip.id == clip_id,
                                                               CentralClip.blob_key.is_(None))
                                     .values(blob_key=key, uploaded_at=now))
            if not getattr(result, "rowcount", 0):  # another replica stored it meanwhile
                ctx.blobs.delete(key)
                stored = session.get_one(CentralClip, clip_id).uploaded_at
                return stored or now
            return now
    except BaseException:
        ctx.blobs.delete(key)
        raise


@dataclass(frozen=True, slots=True)
class ClipFilter:
    branch: str | None = None  # branch code
    camera: str | None = None
    staff: str | None = None  # part of the staff member's name
    vip: str | None = None  # part of the VIP's name
    day: date | None = None  # the branch's local day
    limit: int = 50
    offset: int = 0


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _scoped(caller: Principal, query: Select[CentralClip, Branch]) -> Select[CentralClip, Branch]:
    if caller.branch_ids is not None:
        query = query.where(CentralClip.branch_id.in_(sorted(caller.branch_ids)))
    return query


def _current_verdicts(session: Session, ids: list[str]) -> dict[str, ClipVerdict]:
    if not ids:
        return {}
    newest = (select(func.max(ClipVerdict.id)).where(ClipVerdict.clip_id.in_(ids))
              .group_by(ClipVerdict.clip_id).scalar_subquery())
    return {v.clip_id: v for v in session.scalars(select(ClipVerdict).where(ClipVerdict.id.in_(newest)))}


def verdict_json(v: ClipVerdict) -> dict[str, Any]:
    return {"id": v.id, "verdict": v.verdict, "notes": v.notes, "by": v.by, "at": v.at.isoformat()}


def clip_json(clip: CentralClip, branch: Branch, verdict: ClipVerdict | None) -> dict[str, Any]:
    return {"id": clip.id, "branch": {"code": branch.code, "name": branch.name}, "camera": clip.camera,
            "interaction_id": clip.interaction_id, "staff_name": clip.staff_name, "vip_name": clip.vip_name,
            "started_at": clip.started_at.isoformat(), "ended_at": clip.ended_at.isoformat() if clip.ended_at else None,
            "duration_s": clip.duration_s, "size": clip.size, "uploaded": clip.blob_key is not None,
            "verdict": verdict_json(verdict) if verdict else None}


def list_clips(session: Session, caller: Principal, where: ClipFilter) -> dict[str, Any]:
    """The clips the caller's scope holds, newest first, filtered by branch, camera, names and local day."""
    caller.require_role(*REVIEWERS)
    query = _scoped(caller, select(CentralClip, Branch).join(Branch, Branch.id == CentralClip.branch_id))
    if where.branch:
        branch = session.scalar(select(Branch).where(Branch.code == where.branch))
        if branch is None:
            raise not_found("branch", where.branch)
        caller.require_branch(branch.id)
        query = query.where(CentralClip.branch_id == branch.id)
    if where.day is not None:  # each branch's own local day: one time window per time zone
        zones: dict[str, list[int]] = {}
        for branch_id, zone in session.execute(select(Branch.id, Branch.timezone)):
            zones.setdefault(zone, []).append(branch_id)
        windows = []
        for zone, ids in zones.items():
            start = datetime.combine(where.day, time(), branch_zone(zone))
            windows.append(and_(CentralClip.branch_id.in_(ids), CentralClip.started_at >= start,
                                CentralClip.started_at < start + timedelta(days=1)))
        query = query.where(or_(*windows))
    if where.camera:
        query = query.where(CentralClip.camera == where.camera)
    if where.staff:
        query = query.where(CentralClip.staff_name.ilike(_like(where.staff), escape="\\"))
    if where.vip:
        query = query.where(CentralClip.vip_name.ilike(_like(where.vip), escape="\\"))
    rows = list(session.execute(query.order_by(CentralClip.started_at.desc(), CentralClip.id)
                                .limit(where.limit + 1).offset(where.offset)))
    more = len(rows) > where.limit
    rows = rows[:where.limit]
    verdicts = _current_verdicts(session, [clip.id for clip, _ in rows])
    return {"clips": [clip_json(clip, branch, verdicts.get(clip.id)) for clip, branch in rows], "more": more,
            "limit": where.limit, "offset": where.offset}


def visible_clip(session: Session, caller: Principal, clip_id: str) -> tuple[CentralClip, Branch]:
    """The clip, when the caller may review it: 404 unknown, 403 outside the caller's scope or role."""
    caller.require_role(*REVIEWERS)
    found = session.execute(select(CentralClip, Branch).join(Branch, Branch.id == CentralClip.branch_id)
                            .where(CentralClip.id == clip_id)).first()
    if found is None:
        raise not_found("clip", clip_id)
    clip, branch = found
    caller.require_branch(branch.id)
    return clip, branch


def clip_video(ctx: ConsoleContext, caller: Principal, clip_id: str, *, audit: bool) -> bytes:
    """The clip's MP4 (decrypted); 404 ``not_yet_uploaded`` while its edge has not sent the file. ``audit``:
    write the ``clip_view`` row (the first request of a playback; a player's further range requests do not)."""
    with ctx.db.transaction() as session:
        clip, branch = visible_clip(session, caller, clip_id)
        if clip.blob_key is None:
            raise ConsoleError("not_yet_uploaded", "该片段尚未从网点上传 / the branch has not uploaded this clip yet",
                               404)
        key = clip.blob_key
        if audit:
            record(session, caller, "clip_view", object_type="clip", object_id=clip_id, branch_code=branch.code,
                   detail={"camera": clip.camera})
    return ctx.blobs.get(key)


def add_verdict(session: Session, caller: Principal, clip_id: str, verdict: str, notes: str) -> ClipVerdict:
    """Append a verdict (it becomes the current one) and its audit row, in one transaction."""
    if verdict not in VERDICTS:
        raise ConsoleError("invalid", f"verdict must be one of {', '.join(VERDICTS)}", 422)
    if len(notes) > MAX_NOTES:
        raise ConsoleError("invalid", f"notes pass {MAX_NOTES} characters", 422)
    clip, branch = visible_clip(session, caller, clip_id)
    row = ClipVerdict(clip_id=clip.id, verdict=verdict, notes=notes, by=caller.actor[:64], at=utcnow())
    session.add(row)
    session.flush()
    record(session, caller, "verdict_add", object_type="clip", object_id=clip.id, branch_code=branch.code,
           detail={"verdict": verdict, "verdict_id": row.id})
    return row


def list_verdicts(session: Session, caller: Principal, clip_id: str) -> list[ClipVerdict]:
    """A clip's verdicts, oldest first (the last is current)."""
    clip, _ = visible_clip(session, caller, clip_id)
    return list(session.scalars(select(ClipVerdict).where(ClipVerdict.clip_id == clip.id).order_by(ClipVerdict.id)))
