"""Branches and their edge boxes.

A branch code is the key people type (CSV imports, the CLI, scopes), so it is short, upper case and
unambiguous: ``[A-Z0-9-]{2,32}``; input is stripped and upper-cased first. A branch's timezone must be a zone
the IANA database knows (``zoneinfo``), because the edge turns it into local opening hours and daily
statistics: a typo would shift every figure silently.

An edge box signs in with its own random token. The token is shown once, at registration; the console keeps
only its sha256 (:func:`console.security.digest`), like API tokens.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.errors import ConsoleError
from console.security import digest, new_secret
from console.sync.region import region_moved
from console.tables import Branch, Edge

CODE_RE = re.compile(r"[A-Z0-9-]{2,32}")


def clean_code(code: str) -> str:
    """``code`` stripped and upper-cased; 422 ``invalid_branch`` when it is not ``[A-Z0-9-]{2,32}``."""
    text = (code or "").strip().upper()
    if not CODE_RE.fullmatch(text):
        raise ConsoleError("invalid_branch", f"网点代码“{code}”无效：须为 2–32 个大写字母、数字或连字符 / invalid "
                                             f"branch code {code!r}: use 2-32 letters A-Z, digits or '-'", 422,
                           field="code")
    return text


def check_timezone(name: str) -> str:
    """``name`` when it is an IANA zone (``Asia/Shanghai``); 422 ``invalid_timezone`` otherwise."""
    text = (name or "").strip()
    try:
        if not text or text.startswith("/") or ".." in text:
            raise ValueError(text)
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ConsoleError("invalid_timezone", f"未知时区“{name}”：请填写 IANA 时区名，如 Asia/Shanghai / unknown "
                                               f"timezone {name!r}: use an IANA name such as Asia/Shanghai", 422,
                           field="timezone") from exc
    return text


def _check_text(value: str, field: str, limit: int, zh: str) -> str:
    text = (value or "").strip()
    if not 1 <= len(text) <= limit:
        raise ConsoleError("invalid_branch", f"{zh}须为 1–{limit} 个字符 / the {field} must be 1-{limit} characters",
                           422, field=field)
    return text


def branch_by_code(session: Session, code: str) -> Branch:
    """The branch with ``code`` (case-insensitive); ConsoleError 422 ``unknown_branch`` when there is none."""
    text = (code or "").strip().upper()
    branch = session.scalar(select(Branch).where(Branch.code == text)) if text else None
    if branch is None:
        raise ConsoleError("unknown_branch", f"没有代码为“{code}”的网点 / no branch with code {code!r}", 422,
                           code_given=code)
    return branch


def create_branch(session: Session, code: str, name: str, region: str, timezone: str) -> Branch:
    """A new branch; 422 on a bad field, 409 ``duplicate`` when the code is taken."""
    code = clean_code(code)
    name = _check_text(name, "name", 128, "网点名称")
    region = _check_text(region, "region", 64, "区域")
    timezone = check_timezone(timezone)
    if session.scalar(select(Branch.id).where(Branch.code == code)) is not None:
        raise ConsoleError("duplicate", f"网点代码 {code} 已存在 / branch code {code} already exists", 409,
                           field="code")
    branch = Branch(code=code, name=name, region=region, timezone=timezone)
    session.add(branch)
    session.flush()
    return branch


def update_branch(session: Session, branch: Branch, *, name: str | None = None, region: str | None = None,
                  timezone: str | None = None) -> dict[str, list[str]]:
    """Apply the given fields; returns ``{field: [old, new]}`` of what changed (for the audit). A new region is a
    gallery change for the persons scoped to either region (:mod:`console.sync.region`)."""
    changed: dict[str, list[str]] = {}
    updates = {"name": _check_text(name, "name", 128, "网点名称") if name is not None else None,
               "region": _check_text(region, "region", 64, "区域") if region is not None else None,
               "timezone": check_timezone(timezone) if timezone is not None else None}
    for field, value in updates.items():
        if value is not None and getattr(branch, field) != value:
            changed[field] = [getattr(branch, field), value]
            setattr(branch, field, value)
    session.flush()
    if "region" in changed:
        region_moved(session, branch, *changed["region"])
    return changed


def register_edge(session: Session, branch: Branch, name: str) -> tuple[Edge, str]:
    """A new edge box of ``branch``: (its row, its token). The token is returned only here; the row keeps its
    sha256. 409 ``duplicate`` when the branch already has an edge of that name."""
    name = _check_text(name, "name", 64, "边缘设备名称")
    if session.scalar(select(Edge.id).where(Edge.branch_id == branch.id, Edge.name == name)) is not None:
        raise ConsoleError("duplicate", f"网点 {branch.code} 已有名为“{name}”的边缘设备 / branch {branch.code} "
                                        f"already has an edge named {name!r}", 409, field="name")
    token = new_secret()
    edge = Edge(branch_id=branch.id, name=name, token_hash=digest(token))
    session.add(edge)
    session.flush()
    return edge, token


def edge_json(edge: Edge) -> dict[str, object]:
    return {"id": edge.id, "name": edge.name,
            "last_seen_at": edge.last_seen_at.isoformat() if edge.last_seen_at else None,
            "gallery_version": edge.gallery_version, "model_id": edge.model_id, "camera_health": edge.camera_health,
            "revoked_at": edge.revoked_at.isoformat() if edge.revoked_at else None}


def branch_json(branch: Branch, edges: list[Edge]) -> dict[str, object]:
    return {"id": branch.id, "code": branch.code, "name": branch.name, "region": branch.region,
            "timezone": branch.timezone, "edges": [edge_json(e) for e in edges]}


def list_branches(session: Session, branch_ids: frozenset[int] | None) -> list[dict[str, object]]:
    """Every branch in ``branch_ids`` (None: all) with its edges, sorted by code; two queries, not one per branch."""
    query = select(Branch).order_by(Branch.code)
    if branch_ids is not None:
        query = query.where(Branch.id.in_(sorted(branch_ids)))
    branches = list(session.scalars(query))
    edges: dict[int, list[Edge]] = {b.id: [] for b in branches}
    if branches:
        for edge in session.scalars(select(Edge).where(Edge.branch_id.in_(list(edges))).order_by(Edge.name)):
            edges[edge.branch_id].append(edge)
    return [branch_json(b, edges[b.id]) for b in branches]
