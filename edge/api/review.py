"""The compliance review API: clips (list, view, play with HTTP Range), verdicts, holds, the audit
log and hourly statistics; and the review page ``GET /review`` that calls it.

The page itself is public (like the lobby terminal at ``/terminal``): it holds no data and no token; it
reads the token from its own ``?token=`` and sends it with each API call.

Roles: the clip endpoints and the audit log need ``compliance`` (``admin`` passes too, as everywhere);
the statistics need ``compliance`` or ``lobby_manager``. Refused requests (401, 403, 429) are counted
by :class:`edge.api.auth.Gate` and written to the audit log as one row per address, actor, status and
action per window, with the count (outcome ``refused`` or ``throttled``; see :mod:`edge.api.refusals`).
The token is checked before a body is read or validated.

No ``from __future__ import annotations`` here: FastAPI resolves the ``Annotated`` dependency
aliases defined inside :func:`review_router` at runtime.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta
from importlib import resources
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from edge.api.auth import Gate, GuardFirstRoute, Principal
from edge.api.http import SQL_INT_LIMIT, RangeNotSatisfiable, local_midnight, parse_bound, parse_range
from edge.api.review_names import MAX_NAME_QUERY, ReviewNames
from edge.api.review_schemas import AuditPublic, ClipPublic, HoldUpdate, StatsPublic, VerdictCreate, VerdictPublic
from edge.counter.stats import hourly_stats
from edge.errors import ClipFileError
from edge.review.store import ReviewStore
from edge.review.types import ClipExpiredError, UnknownClipError
from vault.clip_file import ClipReader

logger = logging.getLogger(__name__)

COMPLIANCE = ("compliance",)
STATS_READERS = ("compliance", "lobby_manager")
MAX_STATS_DAYS = 366
VerdictFilter = Literal["compliant", "violation", "needs_follow_up", "none"]


def review_page() -> str:
    """The compliance review page (``edge/api/static/review.html``, package data)."""
    return resources.files("edge.api").joinpath("static/review.html").read_text(encoding="utf-8")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status, {"code": code, "message": message}, headers=headers)


def _bounds(date_from: str | None, date_to: str | None, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    try:
        start = parse_bound(date_from, tz, end=False)
        end = parse_bound(date_to, tz, end=True)
    except ValueError as exc:
        raise _error(422, "bad_date", str(exc)) from exc
    if start is not None and end is not None and start >= end:
        raise _error(422, "bad_range", "date_from must be before date_to")
    return start, end


DateFrom = Annotated[str | None, Query(description="Start: an ISO date (a branch-local day, included) or datetime "
                                                   "(inclusive; without an offset, branch-local).")]
DateTo = Annotated[str | None, Query(description="End: an ISO date (that branch-local day included) or datetime "
                                                 "(exclusive; without an offset, branch-local).")]


def _sent(reader: ClipReader, head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """The response body: ``head`` (already decrypted), then ``rest``; closes ``reader`` at the end. A chunk
    found damaged here ends the response short (the connection breaks): no byte of it is ever sent."""
    try:
        if head:
            yield head
        yield from rest
    except ClipFileError as exc:
        logger.error("clip file %s is damaged; response cut short: %s", reader.path, exc)
        raise
    finally:
        reader.close()


def review_router(review: ReviewStore, gate: Gate, *, tz: ZoneInfo, clip_key: bytes,
                  names: Callable[[], ReviewNames]) -> APIRouter:
    """The review routes; ``gate`` checks tokens (before bodies) and counts refusals. Validation errors
    take the app's shape (:mod:`edge.api.errors`). ``clip_key`` opens the encrypted clip files; ``names``
    gives the current staff, VIP and camera names."""
    router = APIRouter(route_class=GuardFirstRoute, tags=["review"])

    def require(roles: tuple[str, ...], action: str) -> Callable[[Request], Principal]:
        return gate.require(*roles, action=action)

    Lister = Annotated[Principal, Depends(require(COMPLIANCE, "list"))]
    Viewer = Annotated[Principal, Depends(require(COMPLIANCE, "view"))]
    Player = Annotated[Principal, Depends(require(COMPLIANCE, "play"))]
    Judge = Annotated[Principal, Depends(require(COMPLIANCE, "verdict"))]
    Holder = Annotated[Principal, Depends(require(COMPLIANCE, "hold"))]
    Auditor = Annotated[Principal, Depends(require(COMPLIANCE, "audit_list"))]
    StatsReader = Annotated[Principal, Depends(require(STATS_READERS, "stats"))]

    def damaged(principal: Principal, clip_id: str, exc: ClipFileError) -> HTTPException:
        logger.error("clip %s cannot be served: %s", clip_id, exc)
        review.audit(actor=principal.name, action="play", clip_id=clip_id, outcome="damaged", detail=str(exc))
        return _error(500, "clip_damaged", f"the file of clip {clip_id} is damaged or does not open with the "
                                           "data key; nothing of it was sent")

    def not_found(principal: Principal, action: str, clip_id: str) -> HTTPException:
        review.audit(actor=principal.name, action=action, clip_id=clip_id, outcome="not_found", detail="no such clip")
        return _error(404, "not_found", f"no clip {clip_id}")

    @router.get("/review", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        """The review page; no token needed to load it (the API calls it makes need one)."""
        return HTMLResponse(review_page(), headers={"Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"})

    @router.get("/api/clips", response_model=list[ClipPublic])
    def list_clips(
        principal: Lister, date_from: DateFrom = None, date_to: DateTo = None,
        staff_id: Annotated[str | None, Query(max_length=64, description="Recognised staff id.")] = None,
        camera_id: Annotated[str | None, Query(max_length=64, description="Counter camera id.")] = None,
        min_duration_s: Annotated[float | None, Query(ge=0, description="Shortest duration (s), inclusive.")] = None,
        max_duration_s: Annotated[float | None, Query(ge=0, description="Longest duration (s), inclusive.")] = None,
        verdict: Annotated[VerdictFilter | None, Query(description="Current verdict; none: not judged.")] = None,
        staff_name: Annotated[str | None, Query(max_length=MAX_NAME_QUERY, description="Part of the staff "
                                                "member's name (case-insensitive).")] = None,
        vip_name: Annotated[str | None, Query(max_length=MAX_NAME_QUERY, description="Part of the VIP customer's "
                                              "name (case-insensitive).")] = None,
        camera_name: Annotated[str | None, Query(max_length=MAX_NAME_QUERY, description="Part of the camera's "
                                                 "name or id (case-insensitive).")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0, lt=SQL_INT_LIMIT, description="Rows to skip.")] = 0,
    ) -> list[ClipPublic]:
        """Clips that started in the range, newest first."""
        start, end = _bounds(date_from, date_to, tz)
        if min_duration_s is not None and max_duration_s is not None and min_duration_s > max_duration_s:
            raise _error(422, "bad_range", "min_duration_s must not exceed max_duration_s")
        named = names()
        clips = review.list_clips(date_from=start, date_to=end, staff_id=staff_id, camera_id=camera_id,
                                  min_duration_s=min_duration_s, max_duration_s=max_duration_s, verdict=verdict,
                                  limit=limit, offset=offset, staff_ids=named.person_ids(staff_name),
                                  vip_ids=named.person_ids(vip_name), camera_ids=named.camera_ids(camera_name))
        filters = {"date_from": date_from, "date_to": date_to, "staff_id": staff_id, "camera_id": camera_id,
                   "staff_name": staff_name, "vip_name": vip_name, "camera_name": camera_name,
                   "min_duration_s": min_duration_s, "max_duration_s": max_duration_s, "verdict": verdict,
                   "limit": limit, "offset": offset}  # not the raw query: it may carry ?token=
        review.audit(actor=principal.name, action="list", clip_id=None, outcome="ok",
                     detail=f"{len(clips)} clip(s); " + " ".join(f"{k}={v}" for k, v in filters.items()
                                                                if v is not None))
        return [ClipPublic.of(c, named) for c in clips]

    @router.get("/api/clips/{clip_id}", response_model=ClipPublic)
    def get_clip(clip_id: str, principal: Viewer) -> ClipPublic:
        clip = review.get_clip(clip_id)
        if clip is None:
            raise not_found(principal, "view", clip_id)
        review.audit(actor=principal.name, action="view", clip_id=clip_id, outcome="ok", detail="metadata")
        return ClipPublic.of(clip, names())

    @router.get("/api/clips/{clip_id}/verdicts", response_model=list[VerdictPublic])
    def list_verdicts(clip_id: str, principal: Viewer) -> list[VerdictPublic]:
        """The clip's verdict history, oldest first (the last is the current one): who, when, notes."""
        if review.get_clip(clip_id) is None:
            raise not_found(principal, "view", clip_id)
        verdicts = review.list_verdicts(clip_id)
        review.audit(actor=principal.name, action="view", clip_id=clip_id, outcome="ok",
                     detail=f"verdict history: {len(verdicts)}")
        return [VerdictPublic.of(v) for v in verdicts]

    @router.get("/api/clips/{clip_id}/video", response_class=StreamingResponse,
                responses={206: {"description": "Partial content"}, 410: {"description": "Expired"},
                           416: {"description": "Range not satisfiable"}})
    def play_clip(clip_id: str, principal: Player, request: Request) -> Response:
        """Stream the MP4, whole (200) or one byte range (206), in 64 KiB chunks.

        The clip file is encrypted (:mod:`vault.clip_file`); sizes, ranges and the ETag (its sha256) are
        those of the plaintext MP4, and only the chunks a range lies in are decrypted. A file that is cut
        short, changed or not readable with the key is answered 500 ``clip_damaged`` (audited ``damaged``)
        when the damage is in the first chunk sent or in the file's end (checked at open); damage further on
        breaks the connection before the damaged chunk. Never are bytes other than the clip's sent.

        Auditing: **every request** to this endpoint writes one audit row (action ``play``), including
        each Range request a browser makes while seeking and buffering, so one viewing usually leaves
        several rows. Each row records the byte span *sent* (``bytes first-last/size`` or ``full``),
        written before the first byte goes out: it proves the bytes were released, not that anyone
        watched them, and a client that disconnects early still has the whole span logged.
        Refused (401/403), unknown (404), expired (410) and unsatisfiable (416) requests are audited
        too. ``Cache-Control: no-store`` keeps browsers from replaying a clip without asking.
        """
        clip = review.get_clip(clip_id)
        if clip is None:
            raise not_found(principal, "play", clip_id)
        if clip.expired:
            review.audit(actor=principal.name, action="play", clip_id=clip_id, outcome="gone",
                         detail=f"expired at {clip.expired_at}")
            raise _error(410, "expired", f"clip {clip_id} expired under the retention policy; its file is deleted")
        with ExitStack() as owned:  # closes the file on every way out but the stream's
            try:
                reader = owned.enter_context(ClipReader(clip.path, clip_key))
            except FileNotFoundError as exc:
                logger.error("clip %s: file %s is missing although the clip has not expired", clip_id, clip.path)
                review.audit(actor=principal.name, action="play", clip_id=clip_id, outcome="gone",
                             detail="file missing")
                raise _error(410, "file_missing", f"the file of clip {clip_id} is missing") from exc
            except ClipFileError as exc:
                raise damaged(principal, clip_id, exc) from None
            size = reader.size
            header = request.headers.get("range")
            try:
                span = parse_range(header, size)
            except RangeNotSatisfiable:
                review.audit(actor=principal.name, action="play", clip_id=clip_id, outcome="unsatisfiable",
                             detail=f"{header} of {size} bytes")
                raise _error(416, "range_not_satisfiable", f"{header} lies beyond the {size}-byte file",
                             {"Content-Range": f"bytes */{size}"}) from None
            first, last = span if span is not None else (0, size - 1)
            rest = reader.iter_range(first, last - first + 1)
            try:
                head = next(rest, b"")  # the first chunk is decrypted before anything is answered
            except ClipFileError as exc:
                raise damaged(principal, clip_id, exc) from None
            sent = f"bytes {first}-{last}/{size}" if span is not None else f"full {size} bytes"
            review.audit(actor=principal.name, action="play", clip_id=clip_id, outcome="ok", detail=sent)
            owned.pop_all()  # from here _sent closes it
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(last - first + 1), "Cache-Control": "no-store",
                   "ETag": f'"{clip.sha256}"', "Content-Disposition": f'inline; filename="{clip_id}.mp4"'}
        if span is not None:
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        return StreamingResponse(_sent(reader, head, rest), status_code=206 if span else 200,
                                 media_type="video/mp4", headers=headers)

    @router.post("/api/clips/{clip_id}/verdict", response_model=VerdictPublic, status_code=201)
    def add_verdict(clip_id: str, body: VerdictCreate, principal: Judge) -> VerdictPublic:
        """Append a verdict; it becomes the clip's current one. Audited in the same transaction."""
        try:
            verdict = review.add_verdict(clip_id=clip_id, verdict=body.verdict, notes=body.notes, by=principal.name)
        except UnknownClipError:
            raise not_found(principal, "verdict", clip_id) from None
        return VerdictPublic.of(verdict)

    @router.post("/api/clips/{clip_id}/hold", response_model=ClipPublic)
    def set_hold(clip_id: str, body: HoldUpdate, principal: Holder) -> ClipPublic:
        """Put on review hold (retention keeps the clip) or release. Audited in the same transaction."""
        try:
            clip = review.set_hold(clip_id=clip_id, hold=body.hold, by=principal.name)
        except UnknownClipError:
            raise not_found(principal, "hold", clip_id) from None
        except ClipExpiredError:
            review.audit(actor=principal.name, action="hold", clip_id=clip_id, outcome="conflict",
                         detail=f"hold={str(body.hold).lower()} on an expired clip")
            raise _error(409, "expired", f"clip {clip_id} has expired; its file is deleted") from None
        return ClipPublic.of(clip, names())

    @router.get("/api/audit", response_model=list[AuditPublic])
    def list_audit(
        principal: Auditor,
        clip_id: Annotated[str | None, Query(max_length=64, description="Only rows about this clip.")] = None,
        actor: Annotated[str | None, Query(max_length=128, description="Only rows by this actor.")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0, lt=SQL_INT_LIMIT, description="Rows to skip.")] = 0,
    ) -> list[AuditPublic]:
        """The audit log, newest first. Reading it is itself audited (after the read)."""
        entries = review.list_audit(clip_id=clip_id, actor=actor, limit=limit, offset=offset)
        review.audit(actor=principal.name, action="audit_list", clip_id=clip_id, outcome="ok",
                     detail=f"{len(entries)} row(s); actor={actor} offset={offset}")
        return [AuditPublic.of(e) for e in entries]

    @router.get("/api/stats", response_model=StatsPublic)
    def stats(
        _: StatsReader, date_from: DateFrom = None, date_to: DateTo = None,
        camera_id: Annotated[str | None, Query(max_length=64, description="Only this counter camera.")] = None,
    ) -> StatsPublic:
        """Per staff and branch-local hour. Without dates: today. With only date_to: that day. With only
        date_from: from then until the end of today. At most 366 days."""
        start, end = _bounds(date_from, date_to, tz)
        if end is None:
            end = local_midnight(datetime.now(tz).date() + timedelta(days=1), tz)
        if start is None:
            start = local_midnight((end - timedelta(microseconds=1)).astimezone(tz).date(), tz)
        if start >= end:
            raise _error(422, "bad_range", "date_from must be before date_to")
        if end - start > timedelta(days=MAX_STATS_DAYS):
            raise _error(422, "range_too_long", f"statistics cover at most {MAX_STATS_DAYS} days")
        interactions = review.list_interactions(started_from=start, started_before=end, camera_id=camera_id)
        unattended = review.list_unattended(at_from=start, at_before=end, camera_id=camera_id)
        report = hourly_stats(interactions, [u.at for u in unattended], tz)
        return StatsPublic.of(report, start=start.astimezone(tz), end=end.astimezone(tz), timezone=str(tz),
                              camera_id=camera_id)

    return router

