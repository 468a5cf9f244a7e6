"""FastAPI dependencies: the console context and the caller (:class:`~console.security.Principal`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from console.context import ConsoleContext
from console.security import CSRF_HEADER, SESSION_COOKIE, Principal, authenticate


async def get_context(request: Request) -> ConsoleContext:
    """The console (async: reading an attribute needs no worker thread)."""
    ctx: ConsoleContext = request.app.state.ctx
    return ctx


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def get_caller(request: Request, ctx: Annotated[ConsoleContext, Depends(get_context)]) -> Principal:
    """The signed-in user or token; 401 without a valid credential, 403 for a session's unsafe call
    without its CSRF token."""
    with ctx.db.transaction() as session:
        return caller_in(session, request)


def caller_in(session: Session, request: Request) -> Principal:
    """The caller of ``request``, read in ``session``: an endpoint that reads more in the same transaction
    (the persons list) authenticates itself and saves a transaction and a worker-thread hop."""
    return authenticate(session, method=request.method, authorization=request.headers.get("authorization"),
                        cookie=request.cookies.get(SESSION_COOKIE), csrf_header=request.headers.get(CSRF_HEADER),
                        ip=client_ip(request))


Ctx = Annotated[ConsoleContext, Depends(get_context)]
Caller = Annotated[Principal, Depends(get_caller)]
