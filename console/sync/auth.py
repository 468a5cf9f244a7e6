"""Who is calling a /api/sync route: an edge box, by its bearer token (only the sha256 is stored, in
``edges.token_hash``), resolved to an :class:`EdgeCaller`.

- An unknown or revoked edge token, no credential or an expired session: 401 ``unauthorized``.
- A valid user credential (API token or browser session) on a sync route: 403 ``forbidden``; a person never
  acts as an edge. The reverse holds by construction: :func:`console.security.authenticate` looks up
  ``api_tokens`` only, so an edge token on a user route is an unknown token (401).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.db import utcnow
from console.errors import ConsoleError
from console.security import SAFE_METHODS, authenticate, digest
from console.tables import Branch, Edge


@dataclass(frozen=True, slots=True)
class EdgeCaller:
    edge_id: int
    name: str
    branch_id: int
    branch_code: str
    branch_region: str
    ip: str = ""

    @property
    def actor(self) -> str:
        """How the audit names this edge."""
        return f"edge:{self.branch_code}/{self.name}"[:64]


def _unauthorized(message: str) -> ConsoleError:
    return ConsoleError("unauthorized", message, 401)


def _user_refused(session: Session, *, method: str, authorization: str | None, cookie: str | None, ip: str) -> None:
    """403 when the credential is a valid user's (they reached an edge-only route); 401 from authenticate
    otherwise."""
    # a session on a safe method needs no CSRF token; on an unsafe one, a missing CSRF token must not turn the
    # answer into 'csrf': pass the method as GET so only the credential itself is judged
    authenticate(session, method=method if method in SAFE_METHODS else "GET", authorization=authorization,
                 cookie=cookie, csrf_header=None, ip=ip, now=utcnow())
    raise ConsoleError("forbidden", "这是边缘设备专用接口 / this route is for edge boxes, not users", 403)


def authenticate_edge(session: Session, *, method: str, authorization: str | None, cookie: str | None,
                      ip: str) -> EdgeCaller:
    """The edge calling, or ConsoleError 401 (no, bad or revoked credential) / 403 (a user's credential)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorized("the Authorization header must be 'Bearer <edge token>'")
        row = session.execute(select(Edge, Branch).join(Branch, Branch.id == Edge.branch_id)
                              .where(Edge.token_hash == digest(value.strip()))).first()
        if row is None:
            _user_refused(session, method=method, authorization=authorization, cookie=None, ip=ip)
        assert row is not None
        edge, branch = row
        if edge.revoked_at is not None:
            raise _unauthorized("this edge's credential has been revoked; register it again with a new code")
        return EdgeCaller(edge.id, edge.name, branch.id, branch.code, branch.region, ip)
    if cookie:
        _user_refused(session, method=method, authorization=None, cookie=cookie, ip=ip)
    raise _unauthorized("an edge token is needed (Authorization: Bearer <edge token>)")
