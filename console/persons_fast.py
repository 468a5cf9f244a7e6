"""The persons list's short way for an answer already kept (:mod:`console.persons_cache`).

Scripts page the list often, and most of their requests ask for an answer the console already keeps. Such a
request needs only the caller and the list's version, and those are read in ONE statement (the API token, its
user and the user's scope, and ``persons_list_version``, one snapshot on both backends): a revoke, a disabled
user or a scope change written by any process counts from the next request, as on the full way. The answer
then goes out as kept bytes (gzipped once when it was kept), from an ASGI middleware in front of the app: no
routing, no dependency injection, no parameter models, no per-request compression; one hop to a worker
thread for the read (measured: on the event loop itself, a read waiting on PostgreSQL held up every other
request, p50 87-100 ms against 17-18 ms on a thread, on a busy machine).

Everything else takes the full way (:func:`console.api.persons.get_persons`), which answers the same bytes for
the same key: a browser session (cookie and CSRF), a bad or revoked token, a role that may not list, a token
due its once-a-minute ``last_used_at`` write, any query it does not read exactly as the endpoint would
(repeated or malformed parameters, values past their limits: the endpoint gives their 422), an answer not
kept, and any database error (the full way reports it).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from sqlalchemy import Engine, Select, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from console.context import ConsoleContext
from console.db import utcnow
from console.errors import ConsoleError
from console.persons_cache import Answer, ListCache
from console.persons_query import PHOTO_ROLES, READ_ROLES, PersonFilter
from console.security import TOKEN_COLUMNS, digest, token_needs_touch, token_principal, token_statement
from console.tables import PersonsListVersion

logger = logging.getLogger(__name__)
PATH = "/api/persons"
READER = "persons_list_reader"  # its key in ConsoleContext.extras
# the endpoint's Query limits (console.api.persons.get_persons): a value past them takes the full way (422)
TEXT_LIMITS = {"q": 128, "role": 8, "tier": 32, "branch": 32}
INT_LIMITS = {"limit": (1, 200), "offset": (0, None)}
_MAX_DIGITS = 12


@functools.cache
def caller_and_version() -> Select[Any]:
    """:func:`console.security.token_statement` with the list's version as one more column."""
    version = select(PersonsListVersion.version).where(PersonsListVersion.id == 1).scalar_subquery()
    return token_statement().add_columns(version)


def list_filter(query_string: bytes) -> PersonFilter | None:
    """The endpoint's :class:`PersonFilter` of a query string, or None where the endpoint might read it
    otherwise or refuse it."""
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            return None
        values[name] = value
    text: dict[str, str] = {}
    for name, limit in TEXT_LIMITS.items():
        value = values.get(name, "")
        if len(value) > limit:
            return None
        text[name] = value
    numbers: dict[str, int] = {}
    for name, (low, high) in INT_LIMITS.items():
        raw = values.get(name)
        if raw is None:
            numbers[name] = 50 if name == "limit" else 0
            continue
        if not (raw.isascii() and raw.isdigit()) or len(raw) > _MAX_DIGITS:
            return None
        number = int(raw)
        if number < low or (high is not None and number > high):
            return None
        numbers[name] = number
    return PersonFilter(text["q"].strip(), text["role"], text["tier"], text["branch"].strip().upper(),
                        numbers["limit"], numbers["offset"])


def _headers(scope: Scope) -> tuple[str | None, str]:
    """(the first Authorization header, the first Accept-Encoding header), as Starlette reads them."""
    authorization: str | None = None
    accept = None
    for name, value in scope["headers"]:
        if name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif name == b"accept-encoding" and accept is None:
            accept = value.decode("latin-1")
    return authorization, accept or ""


def _reader(ctx: ConsoleContext) -> Engine:
    """The engine the one statement runs on. PostgreSQL: the console's pool in autocommit (the statement is a
    snapshot by itself, and BEGIN and ROLLBACK would cost two more round trips; the pool puts the connection's
    own level back when it returns). SQLite: the console's engine, whose driver begins no transaction for a
    SELECT anyway."""
    engine = ctx.extras.get(READER)
    if not isinstance(engine, Engine):
        engine = ctx.db.engine
        if ctx.db.backend == "postgresql":
            engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        ctx.extras[READER] = engine
    return engine


def kept_answer(ctx: ConsoleContext, token: str, query: PersonFilter) -> Answer | None:
    """The kept answer for this token's caller and ``query``, read with one statement; None: take the full way."""
    cache = ListCache.of(ctx.extras)
    try:
        with _reader(ctx).connect() as conn:
            row: Sequence[Any] | None = conn.execute(caller_and_version(), {"token_hash": digest(token)}).one_or_none()
    except SQLAlchemyError:
        logger.debug("the short way's read failed; the full way answers", exc_info=True)
        return None
    if row is None or token_needs_touch(row, utcnow()):
        return None
    try:
        caller = token_principal(row, "")
    except ConsoleError:
        return None
    if caller.role not in READ_ROLES:
        return None
    version = int(row[TOKEN_COLUMNS] or 0)
    return cache.get(version, (query, caller.branch_ids, caller.role in PHOTO_ROLES))


class KeptListMiddleware:
    """Answers ``GET /api/persons`` with a bearer token from the kept answers; passes everything else on."""

    def __init__(self, app: ASGIApp, ctx: ConsoleContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET" \
                and not scope.get("root_path"):
            authorization, accept = _headers(scope)
            if authorization:
                kind, _, value = authorization.partition(" ")
                query = list_filter(scope.get("query_string", b""))
                if kind.lower() == "bearer" and value.strip() and query is not None:
                    # on a worker thread: a read that waits on the database (or on a busy core) does not
                    # hold up the event loop and every other request with it
                    answer = await anyio.to_thread.run_sync(kept_answer, self.ctx, value.strip(), query)
                    if answer is not None:
                        await _send(send, answer, "gzip" in accept)
                        return
        await self.app(scope, receive, send)


async def _send(send: Send, answer: Answer, gzip_ok: bool) -> None:
    """What the endpoint's Response and the app's GZipMiddleware would send for the same bytes."""
    body = answer.gzipped if gzip_ok and answer.gzipped is not None else answer.body
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if answer.gzipped is not None:
        headers.append((b"vary", b"Accept-Encoding"))
        if body is answer.gzipped:
            headers.append((b"content-encoding", b"gzip"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
