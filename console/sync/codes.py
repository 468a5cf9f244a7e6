"""Edge registration: a one-time code made by an admin (or branch IT of the branch), redeemed once by the box.

- A code is 8 Crockford base32 characters shown as ``XXXX-XXXX`` (40 bits); it is typed by a person at the box,
  so input is forgiving: case, dashes and spaces are ignored, and I/L read as 1, O as 0. Only the sha256 of
  the canonical 8 characters is stored; it is good once, for 24 hours.
- Redeeming creates the edge row with a fresh 256-bit token (shown once, sha256 kept). A used, expired or
  unknown code is the same 401 ``bad_code``, so the answer does not tell which.
- Guessing is throttled like sign-in: every failed redemption is an audit row (``edge_register_failed``, with
  the client address); an address with ``register_max_failures`` of them within ``register_window_s`` is
  refused with 429 before any code is looked at. Counting audit rows keeps the limit in the database, so every
  replica sees the same count.
- Two boxes redeeming one code at the same instant: the ``used_at IS NULL`` guard on the update lets only one.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from console.audit import record
from console.config import SyncConfig
from console.db import utcnow
from console.errors import ConsoleError
from console.security import Principal, digest, new_secret
from console.tables import AuditRow, Branch, Edge, EdgeCode

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CODE_TTL = timedelta(hours=24)
FAILED = "edge_register_failed"
_TYPOS = str.maketrans({"I": "1", "L": "1", "O": "0"})


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def canonical(code: str) -> str:
    """The 8 characters a typed code stands for ('' when it cannot be one)."""
    text = "".join((code or "").upper().split()).replace("-", "").translate(_TYPOS)
    return text if len(text) == 8 and all(c in ALPHABET for c in text) else ""


def _clean_name(name: str) -> str:
    text = (name or "").strip()
    if not 1 <= len(text) <= 64:
        raise ConsoleError("invalid", "边缘设备名称须为 1–64 个字符 / the edge name must be 1-64 characters", 422,
                           field="name")
    return text


def create_code(session: Session, actor: Principal, branch: Branch, name: str,
                now: datetime | None = None) -> tuple[EdgeCode, str]:
    """A new code for an edge called ``name`` at ``branch``: (row, the code). 409 ``duplicate`` when an edge of
    that name is active at the branch (revoke it first). Audited ``edge_code_create`` (never the code)."""
    now = now or utcnow()
    name = _clean_name(name)
    active = session.scalar(select(Edge.id).where(Edge.branch_id == branch.id, Edge.name == name,
                                                  Edge.revoked_at.is_(None)))
    if active is not None:
        raise ConsoleError("duplicate", f"网点 {branch.code} 已有名为“{name}”的边缘设备（先吊销它）/ branch "
                                        f"{branch.code} already has an active edge named {name!r}; revoke it first",
                           409, field="name")
    code = new_code()
    row = EdgeCode(branch_id=branch.id, name=name, code_hash=digest(canonical(code)), created_by=actor.actor[:64],
                   created_at=now, expires_at=now + CODE_TTL)
    session.add(row)
    session.flush()
    record(session, actor, "edge_code_create", object_type="edge_code", object_id=str(row.id), branch_code=branch.code,
           detail={"name": name, "expires_at": row.expires_at.isoformat()})
    return row, code


@dataclass(frozen=True)
class Registration:
    edge: Edge
    branch: Branch
    token: str


def _throttle(session: Session, config: SyncConfig, ip: str, now: datetime) -> None:
    since = now - timedelta(seconds=config.register_window_s)
    query = (select(func.count(AuditRow.id), func.min(AuditRow.at))
             .where(AuditRow.action == FAILED, AuditRow.ip == ip[:64], AuditRow.at > since))
    failures, oldest = session.execute(query).one()
    if int(failures or 0) >= config.register_max_failures:
        wait = max(1, math.ceil(((oldest or now) + timedelta(seconds=config.register_window_s) - now).total_seconds()))
        raise ConsoleError("locked", f"too many failed edge registrations from this address; try again in {wait} s",
                           429, retry_after=wait)


def redeem(session: Session, config: SyncConfig, code: str, model_id: str, software: str, ip: str,
           now: datetime | None = None) -> Registration | ConsoleError:
    """Register the edge ``code`` was made for, or the refusal to raise once the failure's audit row is
    committed (a refused attempt must still be counted): 401 ``bad_code`` or 429 ``locked``."""
    now = now or utcnow()
    if session.get_bind().dialect.name == "sqlite":  # take the one write lock before reading, so two redemptions
        session.execute(sql("UPDATE edge_codes SET name = name WHERE id < 0"))  # queue instead of failing
    try:
        _throttle(session, config, ip, now)
    except ConsoleError as exc:
        record(session, "edge", FAILED, object_type="edge_code", ip=ip, detail={"reason": "locked"})
        return exc
    text = canonical(code)
    row = session.scalar(select(EdgeCode).where(EdgeCode.code_hash == digest(text))) if text else None
    reason = ("unknown" if row is None else "used" if row.used_at is not None
              else "expired" if row.expires_at <= now else "")
    if row is not None and not reason:
        claimed = session.execute(update(EdgeCode).where(EdgeCode.id == row.id, EdgeCode.used_at.is_(None))
                                  .values(used_at=now).execution_options(synchronize_session=False))
        reason = "" if getattr(claimed, "rowcount", 0) == 1 else "used"
    if row is None or reason:
        record(session, "edge", FAILED, object_type="edge_code", object_id=str(row.id) if row else "", ip=ip,
               detail={"reason": reason})
        return ConsoleError("bad_code", "注册码无效、已使用或已过期 / the registration code is unknown, used or "
                                        "expired", 401)
    branch = session.get_one(Branch, row.branch_id)
    for old in session.scalars(select(Edge).where(Edge.branch_id == branch.id, Edge.name == row.name)):
        if old.revoked_at is None:  # an edge of that name was registered directly since the code was made
            record(session, "edge", FAILED, object_type="edge_code", object_id=str(row.id), ip=ip,
                   detail={"reason": "name_taken"})
            return ConsoleError("bad_code", f"网点已有名为“{row.name}”的边缘设备 / the branch already has an active "
                                            f"edge named {row.name!r}", 401)
        old.name = f"{row.name[:50]}#revoked-{old.id}"  # the name is free for the box that replaces it
    session.flush()
    token = new_secret()
    edge = Edge(branch_id=branch.id, name=row.name, token_hash=digest(token), model_id=(model_id or None),
                created_at=now)
    session.add(edge)
    session.flush()
    row.used_at, row.edge_id = now, edge.id
    audit_row = record(session, f"edge:{branch.code}/{edge.name}", "edge_register", object_type="edge",
                       object_id=str(edge.id), branch_code=branch.code, ip=ip,
                       detail={"name": edge.name, "code_id": row.id, "model_id": model_id, "software": software})
    audit_row.actor_role = "edge"
    return Registration(edge, branch, token)


def revoke(session: Session, actor: Principal, edge_id: int, now: datetime | None = None) -> Edge:
    """Revoke edge ``edge_id`` (404 unknown, 403 outside the actor's scope); revoking twice keeps the first time.
    Audited ``edge_revoke``."""
    edge = session.get(Edge, edge_id)
    if edge is None:
        raise ConsoleError("not_found", f"没有边缘设备 {edge_id} / no edge {edge_id}", 404)
    actor.require_branch(edge.branch_id)
    if edge.revoked_at is None:
        edge.revoked_at = now or utcnow()
        branch = session.get_one(Branch, edge.branch_id)
        record(session, actor, "edge_revoke", object_type="edge", object_id=str(edge.id), branch_code=branch.code,
               detail={"name": edge.name})
    session.flush()
    return edge
