"""The routes an edge sends up with: its outbox events (``POST /api/sync/events``) and its clip files
(``PUT /api/sync/clips/{id}``). Both take the edge's token (``console.api.sync.EdgeDep``) and are idempotent.

Bodies are read here, with limits, before any database work: a batch at most :data:`MAX_EVENTS_BYTES` once
inflated (the app's gzip layer, :mod:`console.sync.gzip_body`, inflates it), a clip at most :data:`MAX_CLIP_BYTES`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from console.api.deps import Ctx
from console.api.sync import EdgeDep
from console.clips import store_clip_file
from console.errors import ConsoleError
from console.population import PopulationCipher, keep_aggregates, split_aggregates
from console.sync.events import KINDS, MAX_BATCH, InEvent, ingest, parse_time

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/sync", tags=["sync"])

MAX_EVENTS_BYTES = 32 * 1024 * 1024  # a batch of 500 events, inflated
MAX_CLIP_BYTES = 256 * 1024 * 1024
CLIP_ID = r"^[A-Za-z0-9_-]{1,64}$"


class EventIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    seq: int = Field(ge=1, le=2**62)
    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,15}$", description=(
        "alert, interaction, stats_hourly, camera_health, clip, ack or population; a kind this console does not "
        "know yet (from a newer edge) is stored and acknowledged but not projected"))
    at: str = Field(max_length=64, description="ISO 8601 time of the event at the edge")
    body: Any = None


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epoch: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    events: list[EventIn] = Field(max_length=MAX_BATCH)


async def _read(request: Request, limit: int) -> bytes:
    """The body, refused past ``limit`` bytes while it arrives (413)."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise ConsoleError("too_large", f"the body passes {limit} bytes", 413)
    return bytes(data)


def _events(payload: EventsIn) -> list[InEvent]:
    out: list[InEvent] = []
    for i, event in enumerate(payload.events):
        at = parse_time(event.at)
        if at is None:
            raise ConsoleError("invalid", f"events.{i}.at: not an ISO 8601 time", 422)
        if event.kind not in KINDS:  # refusing it would stall the newer edge's whole outbox behind it
            logger.warning("edge event kind %r is unknown to this console: stored, not projected", event.kind)
        out.append(InEvent(event.seq, event.kind, at, event.body))
    return out


@router.post("/events")
async def post_events(request: Request, ctx: Ctx, edge: EdgeDep) -> dict[str, list[int]]:
    """Store a batch of the edge's outbox events once each; answers every seq the console now holds."""
    raw = await _read(request, MAX_EVENTS_BYTES)  # a gzip body arrives inflated (console.sync.gzip_body)
    try:
        payload = EventsIn.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise ConsoleError("invalid", f"not an events batch: {str(exc)[:300]}", 422) from exc
    events, aggregates = split_aggregates(_events(payload))  # population aggregates: kept encrypted, never in clear

    def store() -> list[int]:
        with ctx.db.transaction() as session:
            acked = ingest(session, edge, payload.epoch, events)
            keep_aggregates(session, PopulationCipher(ctx.key), edge, payload.epoch, aggregates)
            return acked

    return {"acked": await run_in_threadpool(store)}


@router.put("/clips/{clip_id}")
async def put_clip(request: Request, ctx: Ctx, edge: EdgeDep,
                   clip_id: Annotated[str, Path(pattern=CLIP_ID)]) -> dict[str, Any]:
    """Store a clip's MP4, encrypted; its sha256 must be the one its ``clip`` event announced. Sending it again
    changes nothing (200 with the first upload's time)."""
    data = await _read(request, MAX_CLIP_BYTES)
    digest = hashlib.sha256(data).hexdigest()

    def store() -> datetime:
        return store_clip_file(ctx, edge, clip_id, data, digest)

    uploaded_at = await run_in_threadpool(store)
    return {"id": clip_id, "sha256": digest, "size": len(data), "uploaded_at": uploaded_at.isoformat()}
