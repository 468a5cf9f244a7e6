"""The routes an edge box calls: register with a one-time code, pull the gallery (long-poll), report status.

The gallery route is async on purpose: an edge's long-poll may wait up to 30 s, and 50 edges waiting must not
hold 50 server threads (the thread pool has 40) or 50 database connections. It sleeps with asyncio between
short version checks, each run in the thread pool on a connection it gives back at once. The check reads the
database, not this process's memory, so a change made through any replica ends every replica's waits. Changes
that concern only other branches' people do not end a wait: the edge is told the newer version when it ends.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from console.api.deps import Ctx, client_ip, get_context
from console.context import ConsoleContext
from console.security import SESSION_COOKIE
from console.sync.auth import EdgeCaller, authenticate_edge
from console.sync.codes import redeem
from console.sync.feed import FeedRequest, empty_answer, poll_version
from console.sync.pages import EncodedPage, encoded_page
from console.sync.status import StatusReport, apply_status

router = APIRouter(prefix="/api/sync", tags=["sync"])
POLL_INTERVAL_S = 0.25


def get_edge(request: Request, ctx: Annotated[ConsoleContext, Depends(get_context)]) -> EdgeCaller:
    with ctx.db.transaction() as session:
        return authenticate_edge(session, method=request.method, authorization=request.headers.get("authorization"),
                                 cookie=request.cookies.get(SESSION_COOKIE), ip=client_ip(request))


EdgeDep = Annotated[EdgeCaller, Depends(get_edge)]


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=32, description="The one-time code, XXXX-XXXX")
    model_id: str = Field(default="", max_length=128, description="The edge's face engine model id")
    software: str = Field(default="", max_length=128, description="The edge's software version")


@router.post("/register", status_code=201)
def post_register(body: RegisterIn, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Public, but code-authenticated and rate-limited per address (see console.sync.codes)."""
    with ctx.db.transaction() as session:
        outcome = redeem(session, ctx.config.sync, body.code, body.model_id, body.software, client_ip(request))
        if not isinstance(outcome, Exception):
            return {"edge_id": outcome.edge.id, "token": outcome.token,
                    "branch": {"code": outcome.branch.code, "name": outcome.branch.name,
                               "timezone": outcome.branch.timezone}}
    raise outcome  # after the commit: the failed attempt is counted


@router.get("/gallery")
async def get_gallery(request: Request, ctx: Ctx, edge: EdgeDep, since: Annotated[int, Query(ge=0)] = 0,
                      model_id: Annotated[str, Query(max_length=128)] = "",
                      wait: Annotated[float, Query(ge=0, le=120)] = 0.0,
                      limit: Annotated[int, Query(ge=1, le=500)] = 200, snapshot: bool = False,
                      after: Annotated[str | None, Query(max_length=32)] = None) -> Response:
    """Pages come encoded and gzip'd from :mod:`console.sync.pages` (built once for all edges asking the same)."""
    feed = FeedRequest(since, model_id, limit, snapshot, after)
    gzip_ok = "gzip" in request.headers.get("accept-encoding", "").lower()
    if snapshot or after is not None or wait <= 0:
        return _answer(await run_in_threadpool(encoded_page, ctx, edge, feed), gzip_ok)
    deadline = time.monotonic() + min(wait, ctx.config.sync.long_poll_max_s)
    while True:
        version = await run_in_threadpool(poll_version, ctx)
        if version != feed.since:  # newer, or older after a restore (a snapshot)
            page = await run_in_threadpool(encoded_page, ctx, edge, feed)
            if page.news:
                return _answer(page, gzip_ok)
            # the changes were all other branches' people: wait on from there instead of waking the edge
            feed = FeedRequest(page.version, model_id, limit, snapshot, after)
        if time.monotonic() >= deadline:
            return JSONResponse(empty_answer(edge, feed.since))
        await asyncio.sleep(POLL_INTERVAL_S)


def _answer(page: EncodedPage, gzip_ok: bool) -> Response:
    headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"} if gzip_ok else {"Vary": "Accept-Encoding"}
    return Response(page.body(gzip_ok), media_type="application/json", headers=headers)


class CameraIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(default="", max_length=64)
    name: str = Field(default="", max_length=128)
    role: str = Field(default="", max_length=32)
    status: str = Field(default="", max_length=64)
    fps: float | None = None
    last_frame_at: str | None = Field(default=None, max_length=64)


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a newer edge may report more; an older console keeps working
    gallery_version: int = Field(ge=0)
    model_id: str = Field(default="", max_length=128)
    software: str = Field(default="", max_length=128)
    cameras: list[CameraIn] = Field(default_factory=list, max_length=256)
    erased_confirmed: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=10000)
    embed_failures: list[dict[str, Any]] = Field(default_factory=list, max_length=10000)


@router.post("/status")
def post_status(body: StatusIn, ctx: Ctx, edge: EdgeDep) -> dict[str, int]:
    report = StatusReport(body.gallery_version, body.model_id, body.software,
                          [c.model_dump() for c in body.cameras], list(body.erased_confirmed),
                          list(body.embed_failures))
    with ctx.db.transaction() as session:
        return apply_status(session, edge, report)
