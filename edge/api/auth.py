"""Bearer tokens with roles, scoped to branches, and the guard every authenticated route runs.

Only token hashes are kept in config. :class:`Gate` decides who may call a route: a source blocked
for too many refusals gets 429 (see :mod:`edge.api.refusals`), no or an unknown token 401, a token
without the route's role for this branch 403; each refusal is counted and audited in aggregate.

:class:`GuardFirstRoute` runs a route's guard *before* FastAPI reads the request body (FastAPI
itself reads and parses the body first, then solves dependencies): an anonymous upload is refused
after its headers, and :class:`edge.api.limits.BodyLimitMiddleware` closes the connection after such an
answer, so the server stops reading the body.
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from edge.api.http import bearer_token
from edge.api.refusals import RefusalLog
from edge.config import AuthConfig, hash_token


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    roles: frozenset[str]
    branches: frozenset[str]

    def may(self, role: str, branch_id: str) -> bool:
        in_branch = "*" in self.branches or branch_id in self.branches
        return in_branch and (role in self.roles or "admin" in self.roles)


class Authenticator:
    def __init__(self, config: AuthConfig) -> None:
        self._tokens = [(t.sha256, Principal(t.name, frozenset(t.roles), frozenset(t.branches)))
                        for t in config.tokens]

    def principal(self, token: str | None) -> Principal | None:
        if not token:
            return None
        digest = hash_token(token)
        for expected, principal in self._tokens:
            if hmac.compare_digest(digest, expected):
                return principal
        return None


def new_token() -> str:
    return secrets.token_urlsafe(24)


def client_source(request: Request) -> str:
    """The peer address a refusal is counted against ("unknown" when the server does not say)."""
    return request.client.host if request.client is not None else "unknown"


class Gate:
    """The one place that turns a request into a :class:`Principal` or a refusal."""

    def __init__(self, auth: Authenticator, branch_id: str, refusals: RefusalLog,
                 paired: Callable[[Request], Principal | None] | None = None) -> None:
        """``paired(request)``: the principal of a paired tablet's session cookie (edge.api.pairing), tried
        when the request carries no token."""
        self.auth = auth
        self.branch_id = branch_id
        self.refusals = refusals
        self.paired = paired

    def require(self, *roles: str, action: str | None = None) -> RoleGuard:
        """A dependency passing callers with any of ``roles`` (admin passes too); ``action`` names the
        route in the audit log (default: the route's name, e.g. ``enrol_person``)."""
        if not roles:
            raise ValueError("a guard needs at least one role")
        return RoleGuard(self, roles, action)

    def check(self, request: Request, roles: tuple[str, ...], action: str | None = None) -> Principal:
        source = client_source(request)
        route = request.scope.get("route")
        action = action or str(getattr(route, "name", None) or "request")
        clip_id = request.path_params.get("clip_id")
        where = f"{request.method} {request.url.path}"
        wait = self.refusals.retry_after(source)
        if wait is not None:
            self.refusals.refused(source=source, actor="anonymous", status=429, reason="source blocked",
                                  action=action, clip_id=clip_id, where=where)
            raise HTTPException(429, {"code": "too_many_refusals",
                                      "message": "too many refused requests from this address; "
                                                 f"retry after {math.ceil(wait)} s"},
                                headers={"Retry-After": str(math.ceil(wait))})
        token = bearer_token(request)
        principal = self.auth.principal(token)
        if principal is None and not token and self.paired is not None:
            principal = self.paired(request)
        if principal is None:
            self.refusals.refused(source=source, actor="anonymous", status=401, reason="missing or invalid token",
                                  action=action, clip_id=clip_id, where=where)
            raise HTTPException(401, {"code": "unauthorised", "message": "missing or invalid token"},
                                headers={"WWW-Authenticate": "Bearer"})
        if not any(principal.may(role, self.branch_id) for role in roles):
            wanted = " or ".join(roles)
            self.refusals.refused(source=source, actor=principal.name, status=403,
                                  reason=f"lacks the {wanted} role for {self.branch_id}", action=action,
                                  clip_id=clip_id, where=where)
            raise HTTPException(403, {"code": "forbidden",
                                      "message": f"this token lacks the {wanted} role for {self.branch_id}"})
        return principal


class RoleGuard:
    """A FastAPI dependency: the caller's :class:`Principal`, or the refusal :meth:`Gate.check` raises."""

    def __init__(self, gate: Gate, roles: tuple[str, ...], action: str | None) -> None:
        self.gate = gate
        self.roles = roles
        self.action = action

    def __call__(self, request: Request) -> Principal:
        return self.gate.check(request, self.roles, self.action)


class GuardFirstRoute(APIRoute):
    """Runs the route's :class:`RoleGuard` dependencies before the body is read or validated.

    FastAPI calls the guard again with the other dependencies afterwards; it only repeats a token
    lookup (a refusal is raised, and counted, once).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guards = [d.call for d in self.dependant.dependencies if isinstance(d.call, RoleGuard)]
        if not guards:
            return handler

        async def guarded(request: Request) -> Response:
            for guard in guards:
                guard(request)
            return await handler(request)
        return guarded
