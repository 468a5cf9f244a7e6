"""Users (admin only) and API tokens (admin, or the user for their own), every change audited.

The role is checked before a user or token is looked up, so a caller who may not manage users learns nothing
about which ids exist. Audit rows never carry a password or a token (a password edit says ``"changed"``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from console import audit
from console.api.deps import Caller, Ctx
from console.errors import ConsoleError, forbidden, not_found
from console.security import Principal
from console.tables import ApiToken, User
from console.users import create_token, create_user, revoke_token, token_json, update_user, user_json

router = APIRouter(prefix="/api", tags=["users"])


def admin_caller(caller: Caller) -> Principal:
    """The caller when an admin (checked before the body is validated); 403 otherwise."""
    caller.require_role("admin")
    return caller


Admin = Annotated[Principal, Depends(admin_caller)]


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=64)
    display_name: str = Field(default="", max_length=128)
    password: str = Field(max_length=1024)
    role: str = Field(max_length=20)
    scope_kind: str = Field(max_length=8)
    scope_region: str | None = Field(default=None, max_length=64)
    branches: list[str] | None = Field(default=None, max_length=1000)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(default=None, max_length=128)
    role: str | None = Field(default=None, max_length=20)
    active: bool | None = None
    password: str | None = Field(default=None, max_length=1024)
    scope_kind: str | None = Field(default=None, max_length=8)
    scope_region: str | None = Field(default=None, max_length=64)
    branches: list[str] | None = Field(default=None, max_length=1000)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64)


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


def token_manager(user_id: int, caller: Caller) -> Principal:
    """The caller when an admin or the user ``user_id`` themself (checked before the body); 403 otherwise."""
    if caller.role != "admin" and caller.user_id != user_id:
        raise forbidden("only an admin, or the user themself, manages a user's tokens")
    return caller


TokenManager = Annotated[Principal, Depends(token_manager)]


@router.get("/users")
def list_users(ctx: Ctx, caller: Admin) -> list[dict[str, Any]]:
    with ctx.db.transaction() as session:
        return [user_json(u) for u in session.scalars(select(User).order_by(User.username))]


@router.post("/users", status_code=201)
def post_user(body: UserIn, ctx: Ctx, caller: Admin) -> dict[str, Any]:
    with ctx.db.transaction() as session:
        user = create_user(session, username=body.username, password=body.password, role=body.role,
                           scope_kind=body.scope_kind, scope_region=body.scope_region, branches=body.branches,
                           display_name=body.display_name)
        out = user_json(user)
        audit.record(session, caller, "user_create", object_type="user", object_id=user.username,
                     detail={"role": user.role, "scope_kind": user.scope_kind, "scope_region": user.scope_region,
                             "branches": out["branches"]})
        return out


@router.patch("/users/{user_id}")
def patch_user(user_id: int, body: UserPatch, ctx: Ctx, caller: Admin) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    for key in ("display_name", "role", "active", "password", "scope_kind"):
        if changes.get(key, "") is None:
            del changes[key]  # null means "leave it"; only scope_region and branches may be cleared
    with ctx.db.transaction() as session:
        user = _user(session, user_id)
        changed = update_user(session, user, changes)
        out = user_json(user)
        if changed:
            detail: dict[str, Any] = {"changed": changed}
            for key in ("role", "active", "display_name"):
                if key in changed:
                    detail[key] = out[key]
            if "scope" in changed:
                detail.update(scope_kind=user.scope_kind, scope_region=user.scope_region, branches=out["branches"])
            if "password" in changed:
                detail["password"] = "changed"
            audit.record(session, caller, "user_update", object_type="user", object_id=user.username, detail=detail)
        return out


@router.post("/users/{user_id}/tokens", status_code=201)
def post_token(user_id: int, body: TokenIn, ctx: Ctx, caller: TokenManager) -> dict[str, Any]:
    """A new API token of the user, shown once."""
    with ctx.db.transaction() as session:
        user = _user(session, user_id)
        token, secret = create_token(session, user, body.name)
        audit.record(session, caller, "token_create", object_type="token", object_id=str(token.id),
                     detail={"user": user.username, "name": token.name})
        return {"id": token.id, "name": token.name, "token": secret}


@router.get("/users/{user_id}/tokens")
def list_tokens(user_id: int, ctx: Ctx, caller: TokenManager) -> list[dict[str, Any]]:
    with ctx.db.transaction() as session:
        _user(session, user_id)
        tokens = session.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id))
        return [token_json(t) for t in tokens]


@router.delete("/tokens/{token_id}", status_code=204)
def delete_token(token_id: int, ctx: Ctx, caller: Caller) -> Response:
    """Revoke a token (admin, or its own user); revoking a revoked token is a no-op."""
    with ctx.db.transaction() as session:
        token = session.get(ApiToken, token_id)
        if caller.role != "admin" and (token is None or token.user_id != caller.user_id):
            raise forbidden("only an admin, or the token's own user, revokes a token")
        if token is None:
            raise ConsoleError("not_found", f"no token {token_id}", 404)
        if revoke_token(session, token):
            owner = session.get(User, token.user_id)
            audit.record(session, caller, "token_revoke", object_type="token", object_id=str(token.id),
                         detail={"user": owner.username if owner else None, "name": token.name})
    return Response(status_code=204)
