"""The console's sync API as the edge calls it: plain HTTP(S) JSON, edge-initiated, gzip both ways.

Branch firewalls pass outbound HTTP(S) only, so every exchange starts here. Bodies over ~1 KB are sent gzip-
compressed; answers are asked for gzip (the console's GZipMiddleware honours it). Errors are sorted by what the
caller should do about them: :class:`ConsoleUnauthorized` (a revoked token or a bad code: a person must act),
:class:`ConsoleUnavailable` (network down, timeout, 5xx: back off and try again), :class:`ConsoleRefused` (another
4xx: the request itself is wrong).
"""

from __future__ import annotations

import gzip
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

GZIP_OVER = 1024


class ConsoleError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ConsoleUnavailable(ConsoleError):
    """Not reached, timed out, or a 5xx: worth trying again later."""


class ConsoleUnauthorized(ConsoleError):
    """401: the token is revoked or unknown (or, at registration, the code is bad)."""


class ConsoleRefused(ConsoleError):
    """Another 4xx: the console understood and said no."""


@dataclass(frozen=True, slots=True)
class Registration:
    edge_id: str
    token: str
    branch_code: str
    branch_name: str
    branch_timezone: str


class ConsoleClient:
    """One console, one edge token (None only for registration)."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout_s: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s

    def _request(self, method: str, path: str, *, body: object = None, query: dict[str, Any] | None = None,
                 extra_timeout_s: float = 0.0) -> Any:
        url = self.base_url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Accept": "application/json", "Accept-Encoding": "gzip"}
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
            if len(data) > GZIP_OVER:
                data = gzip.compress(data, compresslevel=6)
                headers["Content-Encoding"] = "gzip"
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s + extra_timeout_s) as response:
                return _decode(response.read(), response.headers.get("Content-Encoding"))
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, method, path) from exc
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConsoleUnavailable(f"console {self.base_url} not reached ({method} {path}): {reason}") from exc
        except ValueError as exc:  # a body that is not JSON: a proxy's error page, a truncated answer
            raise ConsoleUnavailable(f"console {self.base_url} answered {method} {path} with no JSON: {exc}") from exc

    def register(self, *, code: str, model_id: str, software: str) -> Registration:
        body = self._request("POST", "/api/sync/register", body={"code": code, "model_id": model_id,
                                                                 "software": software})
        try:
            branch = body["branch"]
            return Registration(edge_id=str(body["edge_id"]), token=str(body["token"]), branch_code=str(branch["code"]),
                                branch_name=str(branch.get("name") or ""),
                                branch_timezone=str(branch.get("timezone") or ""))
        except (KeyError, TypeError) as exc:
            raise ConsoleRefused(f"the console's registration answer is not understood: {exc}") from exc

    def gallery(self, *, since: int, model_id: str, wait_s: float, limit: int,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
        query: dict[str, Any] = {"since": since, "model_id": model_id, "wait": int(wait_s), "limit": limit,
                                 **(extra or {})}
        body = self._request("GET", "/api/sync/gallery", query=query, extra_timeout_s=wait_s)
        if not isinstance(body, dict):
            raise ConsoleUnavailable("the console's gallery answer is not a JSON object")
        return body

    def population(self, *, model_id: str) -> dict[str, Any] | None:
        """The region's merged face population of ``model_id`` (other edges only); None while there is none."""
        try:
            body = self._request("GET", "/api/sync/population", query={"model_id": model_id})
        except ConsoleRefused as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(body, dict):
            raise ConsoleUnavailable("the console's population answer is not a JSON object")
        return body

    def status(self, report: dict[str, Any]) -> dict[str, Any]:
        body = self._request("POST", "/api/sync/status", body=report)
        return body if isinstance(body, dict) else {}


def _decode(raw: bytes, encoding: str | None) -> Any:
    if encoding == "gzip":
        raw = gzip.decompress(raw)
    return json.loads(raw) if raw else None


def _http_error(exc: urllib.error.HTTPError, method: str, path: str) -> ConsoleError:
    code: str | None = None
    detail = ""
    try:
        body = _decode(exc.read(), exc.headers.get("Content-Encoding"))
        if isinstance(body, dict):
            code = str(body.get("error")) if body.get("error") is not None else None
            detail = str(body.get("detail") or "")
    except (ValueError, OSError, EOFError):
        pass
    message = f"console answered {exc.code} to {method} {path}: {code or ''} {detail}".strip()
    if exc.code == 401:
        return ConsoleUnauthorized(message, status=exc.code, code=code)
    if exc.code >= 500 or exc.code in (408, 429):
        return ConsoleUnavailable(message, status=exc.code, code=code)
    return ConsoleRefused(message, status=exc.code, code=code)
