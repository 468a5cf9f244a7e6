"""Bulk import over HTTP: upload a CSV and a zip of photos, follow the job, download its report.

The job runs in a background thread of the console that took the upload; its counters are in the database,
so the list, the job and its event stream answer the same on every replica. A job is visible to its creator
and to admins (404 to anyone else, so nobody learns of other people's imports). A job whose console died is
``interrupted`` (中断, with the reason in ``error``): ``POST …/resume`` goes on with the rows not yet done, from
the upload the console keeps encrypted, and ``POST …/abandon`` gives it up and deletes that upload.

The event stream (``text/event-stream``) polls the job's row about every :data:`POLL_S` seconds and sends one
``data:`` line of the job's JSON whenever it changed, a comment line as keep-alive when it has not for
:data:`KEEPALIVE_S` seconds (proxies close silent connections), and ends once the job is done or failed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, File, Response, UploadFile
from fastapi.responses import StreamingResponse

from console.api.deps import Caller, Ctx
from console.context import ConsoleContext
from console.errors import ConsoleError
from console.importer.csvfile import MAX_CSV_BYTES
from console.importer.jobs import job_json, recent_jobs, visible_job
from console.importer.service import IMPORT_ROLES, abandon, report_csv, resume_upload, start_upload
from console.security import Principal

router = APIRouter(prefix="/api/imports", tags=["imports"])
POLL_S = 0.3
KEEPALIVE_S = 15.0
FINAL = ("done", "failed", "interrupted", "abandoned")


@router.post("", status_code=202)
def post_import(ctx: Ctx, caller: Caller, csv: Annotated[UploadFile, File()],
                photos: Annotated[UploadFile, File()]) -> dict[str, Any]:
    """Check both files and start the job (202 with the queued job); 422 bad_csv / bad_zip and no job."""
    caller.require_role(*IMPORT_ROLES)
    data = csv.file.read(MAX_CSV_BYTES + 1)
    return start_upload(ctx, caller, csv.filename or "import.csv", data, photos.file)


@router.get("")
def list_imports(ctx: Ctx, caller: Caller) -> list[dict[str, Any]]:
    caller.require_role(*IMPORT_ROLES)
    with ctx.db.transaction() as session:
        return [job_json(j) for j in recent_jobs(session, caller)]


@router.get("/{job_id}")
def get_import(job_id: str, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    caller.require_role(*IMPORT_ROLES)
    with ctx.db.transaction() as session:
        return job_json(visible_job(session, caller, job_id))


@router.post("/{job_id}/resume", status_code=202)
def resume_import(job_id: str, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    """Go on with an interrupted upload's rows not yet done (409 job_busy when it is not interrupted, 409
    no_upload for a CLI job, whose files the console does not keep)."""
    caller.require_role(*IMPORT_ROLES)
    return resume_upload(ctx, caller, job_id)


@router.post("/{job_id}/abandon")
def abandon_import(job_id: str, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    """Give up an interrupted job; its encrypted upload is deleted (409 job_busy when it is not interrupted)."""
    caller.require_role(*IMPORT_ROLES)
    return abandon(ctx, caller, job_id)


def _read(ctx: ConsoleContext, caller: Principal, job_id: str) -> dict[str, Any] | None:
    try:
        with ctx.db.transaction() as session:
            return job_json(visible_job(session, caller, job_id))
    except ConsoleError:
        return None  # erased meanwhile: the stream ends


async def _events(ctx: ConsoleContext, caller: Principal, job_id: str) -> AsyncIterator[str]:
    yield ": 导入进度 / import progress\n\n"
    last, quiet = "", 0.0
    while True:
        job = await anyio.to_thread.run_sync(_read, ctx, caller, job_id)
        if job is None:
            return
        text = json.dumps(job, ensure_ascii=False)
        if text != last:
            yield f"data: {text}\n\n"
            last, quiet = text, 0.0
        elif quiet >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet = 0.0
        if job["status"] in FINAL:
            return
        await asyncio.sleep(POLL_S)
        quiet += POLL_S


@router.get("/{job_id}/events")
def import_events(job_id: str, ctx: Ctx, caller: Caller) -> StreamingResponse:
    caller.require_role(*IMPORT_ROLES)
    with ctx.db.transaction() as session:
        visible_job(session, caller, job_id)  # 404 before the stream starts
    return StreamingResponse(_events(ctx, caller, job_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/{job_id}/report.csv")
def import_report(job_id: str, ctx: Ctx, caller: Caller) -> Response:
    """Every finished row of the job (all rows once it is done), UTF-8 with a BOM for Excel."""
    caller.require_role(*IMPORT_ROLES)
    with ctx.db.transaction() as session:
        job = visible_job(session, caller, job_id)
        report = list(job.report or [])
    return Response(report_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="import-{job_id}-report.csv"'})
