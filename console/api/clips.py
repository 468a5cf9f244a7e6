"""Clips of every branch for compliance: the list (names, not ids), playback with Range requests, verdicts.

Roles: compliance and admin, each within their branch scope. Playback writes one ``clip_view`` audit row per
playback: on a request without a Range header or one that starts at byte 0 (a video player then asks for
further ranges of the same file, which are not audited again).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from console.api.deps import Caller, Ctx
from console.clips import ClipFilter, add_verdict, clip_video, list_clips, list_verdicts, verdict_json
from console.errors import ConsoleError

router = APIRouter(prefix="/api/clips", tags=["clips"])
CLIP_ID = r"^[A-Za-z0-9_-]{1,64}$"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class VerdictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: str = Field(description="compliant | violation | needs_follow_up")
    notes: str = Field(default="", max_length=2000)


@router.get("")
def get_clips(ctx: Ctx, caller: Caller, branch: Annotated[str | None, Query(max_length=32)] = None,
              camera: Annotated[str | None, Query(max_length=64)] = None,
              staff: Annotated[str | None, Query(max_length=128, description="part of the staff member's name")] = None,
              vip: Annotated[str | None, Query(max_length=128, description="part of the VIP's name")] = None,
              date_: Annotated[date | None, Query(alias="date", description="the branch's local day")] = None,
              limit: Annotated[int, Query(ge=1, le=200)] = 50,
              offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> dict[str, Any]:
    where = ClipFilter(branch=branch or None, camera=camera or None, staff=(staff or "").strip() or None,
                       vip=(vip or "").strip() or None, day=date_, limit=limit, offset=offset)
    with ctx.db.transaction() as session:
        return list_clips(session, caller, where)


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``bytes=`` range; None for the whole file; 416 when it cannot be served."""
    if not header:
        return None
    found = _RANGE.match(header.strip())
    if found is None or (not found.group(1) and not found.group(2)):
        raise ConsoleError("bad_range", f"cannot serve the range {header!r}", 416, size=size)
    if not found.group(1):  # the last N bytes
        first, last = max(0, size - int(found.group(2))), size - 1
    else:
        first = int(found.group(1))
        last = min(size - 1, int(found.group(2))) if found.group(2) else size - 1
    if first >= size or first > last:
        raise ConsoleError("bad_range", f"cannot serve the range {header!r}", 416, size=size)
    return first, last


@router.get("/{clip_id}/video")
async def get_video(request: Request, ctx: Ctx, caller: Caller,
                    clip_id: Annotated[str, Path(pattern=CLIP_ID)]) -> Response:
    header = request.headers.get("range")
    first_request = header is None or bool(re.match(r"^\s*bytes=0-", header))
    data = await run_in_threadpool(clip_video, ctx, caller, clip_id, audit=first_request)
    wanted = _range(header, len(data))
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-store"}
    if wanted is None:
        return Response(data, media_type="video/mp4", headers=headers)
    first, last = wanted
    headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
    return Response(data[first:last + 1], status_code=206, media_type="video/mp4", headers=headers)


@router.post("/{clip_id}/verdicts", status_code=201)
def post_verdict(body: VerdictIn, ctx: Ctx, caller: Caller,
                 clip_id: Annotated[str, Path(pattern=CLIP_ID)]) -> dict[str, Any]:
    with ctx.db.transaction() as session:
        return verdict_json(add_verdict(session, caller, clip_id, body.verdict, body.notes))


@router.get("/{clip_id}/verdicts")
def get_verdicts(ctx: Ctx, caller: Caller, clip_id: Annotated[str, Path(pattern=CLIP_ID)]) -> dict[str, Any]:
    with ctx.db.transaction() as session:
        return {"verdicts": [verdict_json(v) for v in list_verdicts(session, caller, clip_id)]}
