"""Sign-in, sign-out and "who am I" for the web pages.

The session cookie is HttpOnly (a script in the page cannot read it) and SameSite=Strict (another site's form
cannot send it), and Secure behind TLS (``server.secure_cookies``). The CSRF cookie is readable by the page on
purpose: the page copies it into ``X-CSRF-Token`` on every unsafe call, which another site cannot do. The
throttling rule lives in :mod:`console.login`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete

from console import audit
from console.api.deps import Caller, Ctx, client_ip
from console.db import utcnow
from console.errors import ConsoleError
from console.login import attempt_login
from console.security import CSRF_COOKIE, SESSION_COOKIE, start_session
from console.tables import User, WebSession
from console.users import me_json

router = APIRouter(prefix="/api", tags=["auth"])


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=200)
    password: str = Field(max_length=1024)


def _cookie_flags(ctx_secure: bool) -> dict[str, Any]:
    return {"path": "/", "samesite": "strict", "secure": ctx_secure}


@router.post("/auth/login")
def login(body: LoginIn, request: Request, response: Response, ctx: Ctx) -> dict[str, Any]:
    """Sign in: sets the session and CSRF cookies and returns the user and the CSRF token."""
    auth = ctx.config.auth
    now = utcnow()
    with ctx.db.transaction() as session:
        outcome = attempt_login(session, auth, body.username, body.password, client_ip(request), now)
        if outcome.user is not None:
            session.execute(delete(WebSession).where(WebSession.user_id == outcome.user.id,
                                                     WebSession.expires_at <= now))
            cookie, csrf = start_session(session, outcome.user, now + timedelta(hours=auth.session_hours))
            me = me_json(outcome.user)
    if outcome.refusal is not None:  # raised after the commit: the refused attempt is counted
        raise outcome.refusal
    flags = _cookie_flags(ctx.config.server.secure_cookies)
    max_age = int(auth.session_hours * 3600)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=max_age, httponly=True, **flags)
    response.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, httponly=False, **flags)
    return {"user": me, "csrf_token": csrf}


@router.post("/auth/logout", status_code=204)
def logout(ctx: Ctx, caller: Caller) -> Response:
    """End this browser session (a token caller has none; it gets 204 as well) and clear both cookies."""
    with ctx.db.transaction() as session:
        if caller.session_id:
            session.execute(delete(WebSession).where(WebSession.id == caller.session_id))
            audit.record(session, caller, "logout", object_type="user", object_id=caller.username)
    response = Response(status_code=204)
    flags = _cookie_flags(ctx.config.server.secure_cookies)
    response.delete_cookie(SESSION_COOKIE, httponly=True, **flags)
    response.delete_cookie(CSRF_COOKIE, httponly=False, **flags)
    return response


@router.get("/me")
def me(ctx: Ctx, caller: Caller) -> dict[str, Any]:
    with ctx.db.transaction() as session:
        user = session.get(User, caller.user_id)
        if user is None:
            raise ConsoleError("unauthorized", "the user is gone; sign in again", 401)
        return me_json(user)
