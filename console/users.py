"""Console users and their API tokens: creation with validation, edits, tokens shown once, and the JSON shapes.

Why the rules:
- A user name is 3-64 of ``a-z 0-9 . _ -`` so it is safe in an audit row, a log line and a URL, and cannot be
  two names that look alike in different case.
- A password has at least 10 characters; it is stored only as an argon2id hash and is never written to the
  audit (an edit records ``password: "changed"``).
- A scope must name something that exists (a region some branch is in, branch codes that exist), so a typo
  does not silently give a user nothing, or the wrong branch. Any role may have the scope ``all``.
- The last active admin cannot be disabled or demoted: nobody could manage users afterwards.
- Disabling a user or changing their password ends their web sessions; their tokens stop working at once
  because every request checks ``User.active``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from console.audit import record
from console.context import ConsoleContext
from console.db import utcnow
from console.errors import ConsoleError
from console.security import ROLES, SCOPE_KINDS, digest, hash_password, new_secret
from console.tables import ApiToken, Branch, User, WebSession

USERNAME_RE = re.compile(r"[a-z0-9._-]{3,64}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
MAX_DISPLAY_NAME = 128
MAX_TOKEN_NAME = 64


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


def invalid(problems: list[Problem]) -> ConsoleError:
    """One 422 naming every field that is wrong, in the shape of a pydantic refusal."""
    text = "; ".join(f"{p.field}: {p.message}" for p in problems)
    return ConsoleError("invalid", text, 422, problems=[{"field": p.field, "message": p.message} for p in problems])


def check_username(username: str) -> list[Problem]:
    if not USERNAME_RE.fullmatch(username):
        return [Problem("username", "3-64 characters of a-z, 0-9, '.', '_' or '-'")]
    return []


def check_password(password: str) -> list[Problem]:
    if len(password) < MIN_PASSWORD:
        return [Problem("password", f"at least {MIN_PASSWORD} characters")]
    if len(password) > MAX_PASSWORD:
        return [Problem("password", f"at most {MAX_PASSWORD} characters")]
    return []


@dataclass(frozen=True)
class Scope:
    kind: str
    region: str | None
    branches: list[Branch]


def resolve_scope(session: Session, kind: str, region: str | None, codes: list[str] | None) -> Scope | list[Problem]:
    """The scope ``kind`` with its region or branches checked against the database, or what is wrong."""
    if kind not in SCOPE_KINDS:
        return [Problem("scope_kind", f"one of {', '.join(SCOPE_KINDS)}")]
    if kind == "all":
        return Scope("all", None, [])
    if kind == "region":
        region = (region or "").strip()
        if not region:
            return [Problem("scope_region", "a region is required for the scope 'region'")]
        if session.scalar(select(func.count(Branch.id)).where(Branch.region == region)) == 0:
            return [Problem("scope_region", f"no branch is in the region {region!r}")]
        return Scope("region", region, [])
    wanted = sorted({c.strip().upper() for c in codes or [] if c.strip()})
    if not wanted:
        return [Problem("branches", "at least one branch code is required for the scope 'branches'")]
    found = list(session.scalars(select(Branch).where(Branch.code.in_(wanted)).order_by(Branch.code)))
    missing = sorted(set(wanted) - {b.code for b in found})
    if missing:
        return [Problem("branches", f"no branch {', '.join(missing)}")]
    return Scope("branches", None, found)


def _apply_scope(user: User, scope: Scope) -> None:
    user.scope_kind, user.scope_region, user.branches = scope.kind, scope.region, scope.branches


def create_user(session: Session, *, username: str, password: str, role: str, scope_kind: str,
                scope_region: str | None = None, branches: list[str] | None = None,
                display_name: str = "") -> User:
    """A new active user, flushed (it has an id); 422 naming every bad field, 409 when the name is taken."""
    username = username.strip()
    problems = check_username(username) + check_password(password)
    if role not in ROLES:
        problems.append(Problem("role", f"one of {', '.join(ROLES)}"))
    if len(display_name) > MAX_DISPLAY_NAME:
        problems.append(Problem("display_name", f"at most {MAX_DISPLAY_NAME} characters"))
    scope = resolve_scope(session, scope_kind, scope_region, branches)
    if isinstance(scope, list):
        problems += scope
    if problems or isinstance(scope, list):
        raise invalid(problems)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConsoleError("duplicate", f"the user name {username} is taken", 409)
    user = User(username=username, display_name=display_name.strip() or username,
                password_hash=hash_password(password), role=role, active=True)
    _apply_scope(user, scope)
    session.add(user)
    session.flush()
    return user


def _active_admins(session: Session) -> int:
    return int(session.scalar(select(func.count(User.id)).where(User.role == "admin", User.active.is_(True))) or 0)


def _end_lockout(user: User) -> None:
    """Lift a sign-in lock-out now; the failure count starts again from here (console.login)."""
    now = utcnow()
    if user.locked_until is not None and user.locked_until > now:
        user.locked_until = now


def update_user(session: Session, user: User, changes: dict[str, Any]) -> list[str]:
    """Apply the fields present in ``changes`` (display_name, role, active, password, scope_kind, scope_region,
    branches); returns the names of the fields that changed. 422 for bad values, 409 ``last_admin``."""
    problems: list[Problem] = []
    changed: list[str] = []
    role = changes.get("role", user.role)
    active = changes.get("active", user.active)
    if role not in ROLES:
        problems.append(Problem("role", f"one of {', '.join(ROLES)}"))
    if "password" in changes:
        problems += check_password(changes["password"] or "")
    name = changes.get("display_name")
    if name is not None and len(name) > MAX_DISPLAY_NAME:
        problems.append(Problem("display_name", f"at most {MAX_DISPLAY_NAME} characters"))
    scope: Scope | None = None
    if {"scope_kind", "scope_region", "branches"} & changes.keys():
        current = [b.code for b in user.branches]
        resolved = resolve_scope(session, changes.get("scope_kind") or user.scope_kind,
                                 changes.get("scope_region", user.scope_region), changes.get("branches", current))
        if isinstance(resolved, list):
            problems += resolved
        else:
            scope = resolved
    if problems:
        raise invalid(problems)
    if user.role == "admin" and user.active and (role != "admin" or not active) and _active_admins(session) <= 1:
        raise ConsoleError("last_admin", "the last active admin cannot be disabled or given another role", 409)
    if name is not None and name.strip() != user.display_name:
        user.display_name = name.strip() or user.username
        changed.append("display_name")
    if role != user.role:
        user.role = role
        changed.append("role")
    if bool(active) != user.active:
        user.active = bool(active)
        changed.append("active")
        if active:
            _end_lockout(user)
    if "password" in changes:
        user.password_hash = hash_password(changes["password"])
        _end_lockout(user)
        changed.append("password")
    if scope is not None and (scope.kind, scope.region, [b.id for b in scope.branches]) != (
            user.scope_kind, user.scope_region, [b.id for b in user.branches]):
        _apply_scope(user, scope)
        changed.append("scope")
    if "password" in changed or not user.active:
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.flush()
    return changed


def create_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new API token of ``user``: the row (only the secret's sha256 is kept) and the secret, shown once."""
    name = name.strip()
    if not name or len(name) > MAX_TOKEN_NAME:
        raise invalid([Problem("name", f"1-{MAX_TOKEN_NAME} characters")])
    secret = new_secret()
    token = ApiToken(user_id=user.id, name=name, token_hash=digest(secret))
    session.add(token)
    session.flush()
    return token, secret


def revoke_token(session: Session, token: ApiToken, now: datetime | None = None) -> bool:
    """Revoke ``token``; False when it already was (revoking twice changes nothing)."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = now or utcnow()
    return True


def user_by_name(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username.strip().lower()))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def me_json(user: User) -> dict[str, Any]:
    """The contract's ``Me``: who is signed in, their role and scope."""
    return {"id": user.id, "username": user.username, "display_name": user.display_name, "role": user.role,
            "scope_kind": user.scope_kind, "scope_region": user.scope_region,
            "branches": sorted(b.code for b in user.branches)}


def user_json(user: User) -> dict[str, Any]:
    """``UserOut``: ``Me`` and the account's state (never the password hash)."""
    return {**me_json(user), "active": user.active, "locked_until": _iso(user.locked_until),
            "created_at": _iso(user.created_at)}


def token_json(token: ApiToken) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "created_at": _iso(token.created_at),
            "last_used_at": _iso(token.last_used_at), "revoked_at": _iso(token.revoked_at)}


def ensure_admin(ctx: ConsoleContext, username: str, password: str, *, actor: str = "cli") -> bool:
    """Create the admin ``username`` (scope: all branches) unless a user of that name exists; True when created.

    An existing user is left as it is (its password is not reset), so running the demo twice is harmless."""
    with ctx.db.transaction() as session:
        if user_by_name(session, username) is not None:
            return False
        user = create_user(session, username=username, password=password, role="admin", scope_kind="all",
                           display_name=username)
        record(session, actor, "user_create", object_type="user", object_id=user.username,
               detail={"role": "admin", "scope_kind": "all", "scope_region": None, "branches": []})
    return True
