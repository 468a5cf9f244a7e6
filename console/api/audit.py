"""The audit log, read-only: filtered, newest first, with the total for paging.

An admin reads every row. A compliance officer reads the rows of the branches in their scope; rows that name no
branch (sign-ins, user and token changes) are about the console itself and stay with the admins. Every other
role gets 403, checked before the query parameters are read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import ColumnElement, Select, false, or_, select, true

from console.api.deps import Caller, Ctx
from console.paging import capped_count
from console.security import Principal
from console.tables import AuditRow, Branch

router = APIRouter(prefix="/api", tags=["audit"])
MAX_LIMIT = 500


def audit_reader(caller: Caller) -> Principal:
    caller.require_role("admin", "compliance")
    return caller


Reader = Annotated[Principal, Depends(audit_reader)]


def _visible(caller: Principal) -> ColumnElement[bool]:
    """The rows ``caller`` may read."""
    if caller.role == "admin":
        return true()
    if caller.branch_ids is None:
        return AuditRow.branch_code.is_not(None)
    if not caller.branch_ids:
        return false()
    codes = select(Branch.code).where(Branch.id.in_(caller.branch_ids)).scalar_subquery()
    return AuditRow.branch_code.in_(codes)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def row_json(row: AuditRow) -> dict[str, Any]:
    return {"id": row.id, "at": row.at.isoformat(), "actor": row.actor, "actor_role": row.actor_role,
            "action": row.action, "object_type": row.object_type, "object_id": row.object_id,
            "branch_code": row.branch_code, "detail": row.detail, "ip": row.ip}


@router.get("/audit")
def list_audit(ctx: Ctx, caller: Reader,
               action: Annotated[str | None, Query(max_length=40)] = None,
               actor: Annotated[str | None, Query(max_length=64, description="a user; also their tokens")] = None,
               object_type: Annotated[str | None, Query(max_length=20)] = None,
               object_id: Annotated[str | None, Query(max_length=64)] = None,
               branch: Annotated[str | None, Query(max_length=32, description="a branch code")] = None,
               since: Annotated[datetime | None, Query(description="from this time (inclusive)")] = None,
               until: Annotated[datetime | None, Query(description="before this time")] = None,
               limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
               offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> dict[str, Any]:
    conditions: list[ColumnElement[bool]] = [_visible(caller)]
    if action:
        conditions.append(AuditRow.action == action)
    if actor:
        conditions.append(or_(AuditRow.actor == actor, AuditRow.actor.startswith(f"{actor}/token:", autoescape=True)))
    if object_type:
        conditions.append(AuditRow.object_type == object_type)
    if object_id:
        conditions.append(AuditRow.object_id == object_id)
    if branch:
        conditions.append(AuditRow.branch_code == branch.strip().upper())
    if since is not None:
        conditions.append(AuditRow.at >= _utc(since))
    if until is not None:
        conditions.append(AuditRow.at < _utc(until))
    query: Select[AuditRow] = select(AuditRow).where(*conditions)
    with ctx.db.transaction() as session:
        total, exact = capped_count(session, query)
        rows = session.scalars(query.order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit).offset(offset))
        return {"items": [row_json(r) for r in rows], "total": total, "total_exact": exact}


@router.get("/audit/actions")
def audit_actions(ctx: Ctx, caller: Reader) -> list[str]:
    """The distinct action names among the rows the caller may read (for the filter's list)."""
    with ctx.db.transaction() as session:
        return list(session.scalars(select(AuditRow.action).where(_visible(caller)).distinct()
                                    .order_by(AuditRow.action)))
