"""Request bodies sent gzip-compressed (``Content-Encoding: gzip``), as an edge sends every body over ~1 KB.

FastAPI reads request bodies as they come; this ASGI middleware inflates a gzip body of a ``/api/sync/`` request
before the route sees it (the header is dropped, the length set). The inflated size is capped, so a small
gzip bomb cannot fill the memory: past ``max_bytes`` the answer is 413 ``too_large``; a body that is not gzip
is 400 ``bad_gzip``. Other paths and uncompressed bodies pass untouched.
"""

from __future__ import annotations

import zlib
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/api/sync/"
MAX_BYTES = 256 * 1024 * 1024  # a clip upload may be large; events and status reports are far smaller


class GzipRequestMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
        encoding = next((v for k, v in headers if k == b"content-encoding"), b"").strip().lower()
        if scope["type"] != "http" or encoding != b"gzip" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        inflater, parts, size = zlib.decompressobj(16 + zlib.MAX_WBITS), [], 0
        problem: tuple[int, str, str] | None = None
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            more = bool(message.get("more_body"))
            if problem is not None:
                continue  # drain the rest, then answer
            try:
                chunk = inflater.decompress(message.get("body", b""), self.max_bytes - size + 1)
            except zlib.error:
                problem = (400, "bad_gzip", "the body says Content-Encoding: gzip but is not gzip")
                continue
            size += len(chunk)
            parts.append(chunk)
            if size > self.max_bytes or inflater.unconsumed_tail:
                problem = (413, "too_large", f"the inflated body passes {self.max_bytes} bytes")
        if problem is None and not inflater.eof:
            problem = (400, "bad_gzip", "the gzip body is cut short")
        if problem is not None:
            status, code, detail = problem
            await JSONResponse({"error": code, "detail": detail}, status_code=status)(scope, receive, send)
            return
        body = b"".join(parts)
        kept = [(k, v) for k, v in headers if k not in (b"content-encoding", b"content-length")]
        inner: dict[str, Any] = {**scope, "headers": [*kept, (b"content-length", str(len(body)).encode())]}
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(inner, replay, send)
