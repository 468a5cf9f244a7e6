"""The bank view's data: ``GET /api/stats/daily`` (JSON) and ``GET /api/stats/daily.csv`` (the same rows as
CSV). Admin, regional managers and compliance, each within their branch scope (:mod:`console.stats`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from console.api.deps import Caller, Ctx
from console.stats import COLUMNS, daily_stats, rows_csv, rows_json

router = APIRouter(prefix="/api/stats", tags=["stats"])

From = Annotated[date, Query(alias="from", description="first day (YYYY-MM-DD, the branch's local day)")]
To = Annotated[date, Query(alias="to", description="last day, included")]
BranchCode = Annotated[str | None, Query(max_length=32, description="one branch's code; all in scope without")]


@router.get("/daily")
def get_daily(ctx: Ctx, caller: Caller, start: From, end: To, branch: BranchCode = None) -> dict[str, Any]:
    with ctx.db.transaction() as session:
        rows = daily_stats(session, caller, start, end, branch or None)
    return {"from": start.isoformat(), "to": end.isoformat(), "columns": list(COLUMNS), "rows": rows_json(rows)}


@router.get("/daily.csv")
def get_daily_csv(ctx: Ctx, caller: Caller, start: From, end: To, branch: BranchCode = None) -> Response:
    with ctx.db.transaction() as session:
        rows = daily_stats(session, caller, start, end, branch or None)
    name = f"smartbranch-daily-{start.isoformat()}-{end.isoformat()}.csv"
    return Response("\ufeff" + rows_csv(rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
