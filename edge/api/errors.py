"""One shape for every error the edge API answers: ``{"detail": {"code", "message", ...}}``.

- A request that fails validation (a form field, a query parameter, a JSON body) is a 422 with
  ``field`` too. Fields with a code of their own in the README keep it (``name`` is ``bad_name``,
  ``consent`` is ``no_consent``, ...); any other field is ``bad_request``.
- Errors the framework raises with a bare string (an unknown path, a method not allowed, a body it
  could not parse) get a code from their status.
- Errors raised by the app with a ``{"code", "message"}`` detail pass as they are.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vision.errors import EngineBusyError

logger = logging.getLogger(__name__)

FIELD_CODES: Mapping[str, str] = {
    "name": "bad_name",
    "tier": "bad_tier",
    "consent": "no_consent",
    "role": "bad_role",
    "plate": "bad_plate",
    "consent_covers": "bad_consent_covers",
}
STATUS_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorised",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    422: "bad_request",
    429: "too_many_requests",
    503: "busy",
    507: "disk_full",
}
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie", "form"})


def field_of(loc: Sequence[Any]) -> str:
    """The field a validation error's ``loc`` points at: ``("body", "name")`` is ``name``,
    ``("query", "limit")`` is ``limit``; a body that is not JSON (``("body", 12)``) is ``body``."""
    names = [str(p) for p in loc if isinstance(p, str)]
    inner = names[1:] if names and names[0] in _LOCATIONS else names
    return ".".join(inner) if inner else (names[0] if names else "request")


def code_for_field(field: str) -> str:
    return FIELD_CODES.get(field.split(".")[0], "bad_request")


def field_for_code(code: str) -> str | None:
    """The form field behind one of the README's field codes (``bad_name`` is ``name``); None for others."""
    return next((f for f, c in FIELD_CODES.items() if c == code), None)


def validation_detail(errors: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The ``detail`` of a 422: the first error's field and its code, and every problem in the message."""
    if not errors:
        return {"code": "bad_request", "message": "the request is invalid", "field": "request"}
    fields = [field_of(e.get("loc", ())) for e in errors]
    message = "; ".join(f"{f}: {e.get('msg', 'invalid')}" for f, e in zip(fields, errors, strict=True))
    return {"code": code_for_field(fields[0]), "message": message, "field": fields[0]}


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": validation_detail(exc.errors())}, status_code=422)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    detail: object = exc.detail
    if not (isinstance(detail, dict) and "code" in detail):
        detail = {"code": STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}"), "message": str(detail)}
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
BUSY_RETRY_AFTER_S = 5


def is_disk_full(exc: BaseException) -> bool:
    """An error that means the data folder's disk is full: ENOSPC/EDQUOT, or SQLite's "database or disk is full"."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return True
    if isinstance(exc, OperationalError):
        return "disk is full" in str(exc.orig)
    return False


async def _storage_error(_: Request, exc: Exception) -> Response:
    """A write that failed for lack of space is a 507 (every write path rolls back first); other storage
    errors stay 500s, logged with their cause."""
    if is_disk_full(exc):
        logger.error("refused a request: the data folder's disk is full (%s)", exc)
        return JSONResponse({"detail": {"code": "disk_full", "message": "the box's disk is full; nothing was saved"}},
                            status_code=507)
    logger.error("storage error: %s", exc, exc_info=exc)
    return JSONResponse({"detail": {"code": "storage_error", "message": "the box could not read or write its data"}},
                        status_code=500)


async def _engine_busy(_: Request, exc: Exception) -> Response:
    """The face engines had no room or no answer in time: the client may retry."""
    return JSONResponse({"detail": {"code": "busy", "message": str(exc)}}, status_code=503,
                        headers={"Retry-After": str(BUSY_RETRY_AFTER_S)})


def install_error_handlers(app: FastAPI) -> None:
    """Answer validation errors, HTTP errors, a full disk and busy engines on every route of ``app`` in the
    shape above."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OSError, _storage_error)
    app.add_exception_handler(OperationalError, _storage_error)
    app.add_exception_handler(EngineBusyError, _engine_busy)
