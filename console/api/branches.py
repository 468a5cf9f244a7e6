"""Branches and edge registration: listing in the caller's scope, creation and edits by an admin, and a new edge
box's token (admin, or branch IT of that branch), shown once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from console import audit
from console.api.deps import Caller, Ctx
from console.branches import branch_json, create_branch, list_branches, register_edge, update_branch
from console.errors import ConsoleError
from console.tables import Branch

router = APIRouter(prefix="/api", tags=["branches"])


class BranchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=64, description="2-32 of A-Z, 0-9, '-' (upper-cased)")
    name: str = Field(max_length=256)
    region: str = Field(max_length=128)
    timezone: str = Field(default="Asia/Shanghai", max_length=128, description="IANA zone, e.g. Asia/Shanghai")


class BranchPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=256)
    region: str | None = Field(default=None, max_length=128)
    timezone: str | None = Field(default=None, max_length=128)


class EdgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=128)


def _branch_at(session: Session, code: str) -> Branch:
    """The branch of a path's code; 404 (not 422: the URL names a resource that is not there)."""
    branch = session.scalar(select(Branch).where(Branch.code == code.strip().upper()))
    if branch is None:
        raise ConsoleError("not_found", f"没有网点 {code} / no branch {code}", 404)
    return branch


@router.get("/branches")
def get_branches(ctx: Ctx, caller: Caller) -> list[dict[str, Any]]:
    with ctx.db.transaction() as session:
        return list_branches(session, caller.branch_ids)


@router.post("/branches", status_code=201)
def post_branch(body: BranchIn, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    caller.require_role("admin")
    with ctx.db.transaction() as session:
        branch = create_branch(session, body.code, body.name, body.region, body.timezone)
        audit.record(session, caller, "branch_create", object_type="branch", object_id=branch.code,
                     branch_code=branch.code, detail={"name": branch.name, "region": branch.region,
                                                      "timezone": branch.timezone})
        return branch_json(branch, [])


@router.patch("/branches/{code}")
def patch_branch(code: str, body: BranchPatch, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    caller.require_role("admin")
    with ctx.db.transaction() as session:
        branch = _branch_at(session, code)
        changed = update_branch(session, branch, name=body.name, region=body.region, timezone=body.timezone)
        if changed:
            audit.record(session, caller, "branch_update", object_type="branch", object_id=branch.code,
                         branch_code=branch.code, detail={"changed": changed})
        return next(b for b in list_branches(session, frozenset({branch.id})))


@router.post("/branches/{code}/edges", status_code=201)
def post_edge(code: str, body: EdgeIn, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    caller.require_role("admin", "branch_it")
    with ctx.db.transaction() as session:
        branch = _branch_at(session, code)
        caller.require_branch(branch.id)
        edge, token = register_edge(session, branch, body.name)
        audit.record(session, caller, "edge_register", object_type="edge", object_id=str(edge.id),
                     branch_code=branch.code, detail={"name": edge.name})
        return {"id": edge.id, "name": edge.name, "token": token}
