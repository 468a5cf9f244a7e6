"""Resource limits of the edge API: request body size, and how many photos are checked at once.

**Body size.** :class:`BodyLimitMiddleware` caps the body of every request: a route's own limit
(the photo uploads get the photo limit plus room for the form) or the default. When the app first
asks for the body, a declared ``Content-Length`` over the limit is refused before anything is read;
after that the bytes actually received are counted (a chunked body has no length), so a body that
turns out larger is cut at the limit. Either way the answer is 413 ``too_large``. A route that
answers without reading the body (a refused token: :class:`edge.api.auth.GuardFirstRoute`) keeps its own
answer. Any answer sent before the whole body was received says ``Connection: close``, so the server
closes the connection instead of reading the rest to keep it alive.

**Photo checks.** Decoding a 40-megapixel photo and searching it for a face takes hundreds of MB
for a few seconds. :class:`PhotoSlots` lets ``slots`` such checks run at once; a request that waits
``wait_s`` for a slot is answered 503 ``busy`` with ``Retry-After`` instead of queueing without
bound. The slot is held by the thread doing the work, so a client that goes away does not free it
early.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import ParamSpec, TypeVar

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart headers and the text fields sent with a photo


class BodyTooLarge(Exception):
    """Raised into the app when the received body passes the limit (the middleware answers 413)."""


class BodyLimitMiddleware:
    """See the module docstring. ``route_limits`` maps route names to their limit in bytes."""

    def __init__(self, app: ASGIApp, *, default_bytes: int, route_limits: Mapping[str, int],
                 routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.route_limits = dict(route_limits)
        self.routes = routes  # the app's route list, read per request (routes may be added after this)

    def limit_for(self, scope: Scope) -> int:
        return self._limit_in(self.routes, scope) or self.default_bytes

    def _limit_in(self, routes: Sequence[BaseRoute], scope: Scope) -> int | None:
        for route in routes:
            name = getattr(route, "name", None)
            if name in self.route_limits and route.matches(scope)[0] is Match.FULL:
                return self.route_limits[name]
            included = getattr(route, "original_router", None)  # FastAPI keeps an included router whole
            if included is not None and (limit := self._limit_in(included.routes, scope)) is not None:
                return limit
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        received = 0
        body_done = not declared and not _chunked(scope)
        cut = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, body_done, cut
            if cut or (declared is not None and declared > limit):
                cut = True
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    cut = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if cut and not started:
                return  # the app's answer to a body it could not read; ours goes out below
            if message["type"] == "http.response.start":
                started = True
                if not body_done:
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if started:
                raise
        if cut and not started:
            logger.info("refused a request body over %s bytes: %s %s", limit, scope.get("method"), scope.get("path"))
            await _too_large(send, limit)


def _chunked(scope: Scope) -> bool:
    return any(name == b"transfer-encoding" for name, _ in scope.get("headers", ()))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": {"code": "too_large",
                                  "message": f"the request body exceeds the limit of {limit} bytes"}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class SlotsBusy(Exception):
    """No photo-check slot came free within the wait; ``retry_after_s`` is a hint for the client."""

    def __init__(self, waited_s: float) -> None:
        super().__init__(f"the box is checking other photos; waited {waited_s:.0f} s for a turn")
        self.retry_after_s = max(1, math.ceil(waited_s))


class PhotoSlots:
    """At most ``slots`` photo checks at once; see the module docstring."""

    def __init__(self, slots: int, wait_s: float) -> None:
        if slots < 1 or wait_s < 0:
            raise ValueError(f"photo slots need slots >= 1 and wait_s >= 0, not {slots}, {wait_s}")
        self.slots = slots
        self.wait_s = wait_s
        self._free = threading.BoundedSemaphore(slots)

    def run(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``work`` in this thread once a slot is free; :class:`SlotsBusy` after ``wait_s``."""
        if not self._free.acquire(timeout=self.wait_s):
            raise SlotsBusy(self.wait_s)
        try:
            return work(*args, **kwargs)
        finally:
            self._free.release()
