"""FastAPI dependencies: the console context and the caller (:class:`~console.security.Principal`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from console.context import ConsoleContext
from console.security import CSRF_HEADER, SESSION_COOKIE, Principal, authenticate


def get_context(request: Request) -> ConsoleContext:
    ctx: ConsoleContext = request.app.state.ctx
    return ctx


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def get_caller(request: Request, ctx: Annotated[ConsoleContext, Depends(get_context)]) -> Principal:
    """The signed-in user or token; 401 without a valid credential, 403 for a session's unsafe call
    without its CSRF token."""
    with ctx.db.transaction() as session:
        return authenticate(session, method=request.method, authorization=request.headers.get("authorization"),
                            cookie=request.cookies.get(SESSION_COOKIE), csrf_header=request.headers.get(CSRF_HEADER),
                            ip=client_ip(request))


Ctx = Annotated[ConsoleContext, Depends(get_context)]
Caller = Annotated[Principal, Depends(get_caller)]
