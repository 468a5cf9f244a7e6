"""Edge credentials for people: a one-time registration code for a branch's new box, and revocation.

Both need the role admin, or branch_it with the branch in scope; both are audited (``edge_code_create``,
``edge_revoke``). The code is shown once; the console keeps its sha256 (:mod:`console.sync.codes`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from console.api.deps import Caller, Ctx
from console.errors import ConsoleError
from console.sync.codes import create_code, revoke
from console.tables import Branch

router = APIRouter(prefix="/api", tags=["edges"])
EDGE_ADMINS = ("admin", "branch_it")


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=128, description="The new edge box's name at its branch")


@router.post("/branches/{code}/edges/codes", status_code=201)
def post_edge_code(code: str, body: CodeIn, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    caller.require_role(*EDGE_ADMINS)
    with ctx.db.transaction() as session:
        branch = session.scalar(select(Branch).where(Branch.code == code.strip().upper()))
        if branch is None:
            raise ConsoleError("not_found", f"没有网点 {code} / no branch {code}", 404)
        caller.require_branch(branch.id)
        row, value = create_code(session, caller, branch, body.name)
        return {"code": value, "name": row.name, "branch": branch.code, "expires_at": row.expires_at.isoformat()}


@router.delete("/edges/{edge_id}")
def delete_edge(edge_id: int, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    caller.require_role(*EDGE_ADMINS)
    with ctx.db.transaction() as session:
        edge = revoke(session, caller, edge_id)
        revoked = edge.revoked_at.isoformat() if edge.revoked_at else None
        return {"id": edge.id, "name": edge.name, "revoked_at": revoked}
