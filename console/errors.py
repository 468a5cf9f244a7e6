"""The console's one error type: a stable ``code``, an HTTP status and a message (English; the web UI shows
its own Chinese text for each code). The app turns it into ``{"error": code, "detail": message, ...}``."""

from __future__ import annotations

from typing import Any


class ConsoleError(Exception):
    def __init__(self, code: str, message: str, status: int = 422, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra


def not_found(what: str, ident: object) -> ConsoleError:
    return ConsoleError("not_found", f"no {what} {ident}", 404)


def forbidden(message: str = "your role or scope does not allow this") -> ConsoleError:
    return ConsoleError("forbidden", message, 403)
