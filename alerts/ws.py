"""FastAPI routes of the terminal: the page and the WebSocket ``/ws/terminal?since=&epoch=``.

The first message is a ``hello`` with the store's epoch, the log's true last seq and whether the
terminal's cursor had to be reset; the replay follows, then live alerts and acks. A cursor that fits
no stream is closed with :data:`CLOSE_BAD_CURSOR` and a reason, before the terminal is counted.

A refused token is closed with a code and a reason the page can tell apart: no token and an unknown
token are :data:`CLOSE_UNAUTHORISED` (reasons :data:`REASON_MISSING`, :data:`REASON_INVALID`); a known
token without the lobby role is :data:`CLOSE_FORBIDDEN`.

Heartbeat: TCP says nothing when a tablet's Wi-Fi dies, so the socket would look open on both ends for
minutes. The box sends ``{"type": "ping"}`` every ``heartbeat_s`` (announced in the hello) and the page
answers ``{"type": "pong"}``; a page that hears nothing for :data:`SILENCE_FACTOR` intervals drops the
socket, shows the outage and reconnects, and the box closes a terminal silent that long with
:data:`CLOSE_SILENT` (so a dead tablet is not counted).

An ack may name the person who tapped it (``{"type": "ack", "alert_id", "by"}``, chosen on the tablet
once per shift); without a name it is the token's name. The name is cleaned like every shown text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from importlib import resources

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alerts.cursor import Cursor
from alerts.envelope import HubMessage
from alerts.errors import BadCursor
from alerts.hub import Hub, Subscription
from alerts.text import display_text

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORISED = 4401  # no token, or one the box does not know
CLOSE_FORBIDDEN = 4403  # a known token without the lobby role
CLOSE_TOO_SLOW = 4408
CLOSE_BAD_CURSOR = 1008  # policy violation: since/epoch that fit no stream
CLOSE_SILENT = 4410  # the terminal answered no ping for SILENCE_FACTOR heartbeats
SILENCE_FACTOR = 3
ACK_NAME_MAX = 64
REASON_MISSING = "missing token"
REASON_INVALID = "invalid token"
REASON_FORBIDDEN = "token lacks the lobby_manager role"
REASON_REVOKED = "access revoked"  # the credential that opened the socket was refused at a later heartbeat


class Refusal(Enum):
    """Why ``authorize`` refused a token."""

    INVALID = "invalid"  # no principal holds it
    FORBIDDEN = "forbidden"  # its principal lacks the lobby role for this branch


_CLOSES = {Refusal.INVALID: (CLOSE_UNAUTHORISED, REASON_INVALID),
           Refusal.FORBIDDEN: (CLOSE_FORBIDDEN, REASON_FORBIDDEN)}

Authorize = Callable[[str], "str | Refusal"]
DEFAULT_HEARTBEAT_S = 2.0
PING = HubMessage(type="ping")


class ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(max_length=32, description="Message kind: ``ack`` or ``pong`` (anything else is ignored).")
    alert_id: str | None = Field(default=None, max_length=64, description="The alert acknowledged.")
    by: str | None = Field(default=None, max_length=256, description="Who tapped the ack (a person's name).")


def ack_author(by: str | None, principal: str) -> str:
    """The name an ack is recorded under: the person named on the tablet, else the token's name."""
    name = display_text(by or "")[:ACK_NAME_MAX].strip()
    return name or principal


def terminal_page() -> str:
    return resources.files("alerts").joinpath("static/terminal.html").read_text(encoding="utf-8")


def _static(name: str) -> str:
    return resources.files("alerts").joinpath(f"static/{name}").read_text(encoding="utf-8")


# The terminal installs as an app: full screen, its own icon, opening the page (see static/terminal-sw.js for
# what works offline). Chinese first, like the page.
MANIFEST = {
    "name": "大堂到店提醒", "short_name": "到店提醒", "lang": "zh-CN",
    "description": "VIP 到店、无人接待与服务动态 / VIP arrivals, waiting customers and service activity",
    "start_url": "/terminal", "scope": "/", "display": "fullscreen", "display_override": ["fullscreen", "standalone"],
    "orientation": "any", "background_color": "#eef0f3", "theme_color": "#b4232a",
    "icons": [{"src": "/terminal-icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any maskable"}],
}


async def _sender(ws: WebSocket, sub: Subscription) -> None:
    overflow = asyncio.ensure_future(sub.overflowed.wait())
    try:
        while True:
            getter = asyncio.ensure_future(sub.queue.get())
            try:
                await asyncio.wait({getter, overflow}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getter.done():
                    getter.cancel()
            if overflow.done():
                await ws.close(code=CLOSE_TOO_SLOW, reason="too slow; reconnect with since")
                return
            message = getter.result()
            if message.type == "alert" and message.alert is not None:
                if message.replace:
                    pass  # an alert sent before, as it is now: always goes out
                elif message.alert.seq <= sub.last_seq:
                    continue  # already sent in the replay
                else:
                    sub.last_seq = message.alert.seq
            await ws.send_text(message.model_dump_json())
    finally:
        overflow.cancel()


@dataclass
class _Liveness:
    """When the terminal was last heard from (the event loop's clock)."""

    heard_at: float


async def _heartbeat(ws: WebSocket, sub: Subscription, live: _Liveness, interval_s: float,
                     still_allowed: Callable[[], bool]) -> None:
    """Queue a ping every ``interval_s`` (through the sender, so frames never interleave); close a silent peer,
    and one whose credential was revoked meanwhile."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval_s)
        if not await asyncio.to_thread(still_allowed):
            logger.info("terminal %s: its access was revoked; closing it", sub.client)
            with contextlib.suppress(Exception):
                await ws.close(code=CLOSE_UNAUTHORISED, reason=REASON_REVOKED)
            return
        if loop.time() - live.heard_at > SILENCE_FACTOR * interval_s:
            logger.info("terminal %s answered no ping for %.1f s; closing it", sub.client, loop.time() - live.heard_at)
            with contextlib.suppress(Exception):
                await ws.close(code=CLOSE_SILENT, reason="no pong")
            return
        with contextlib.suppress(asyncio.QueueFull):  # a full queue is the overflow policy's to handle
            sub.queue.put_nowait(PING)


async def _receiver(ws: WebSocket, hub: Hub, principal: str, live: _Liveness) -> None:
    loop = asyncio.get_running_loop()
    while True:
        frame = await ws.receive()
        live.heard_at = loop.time()
        if frame["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(frame.get("code", 1000), frame.get("reason"))
        text = frame.get("text")
        if not isinstance(text, str):
            logger.info("terminal %s sent a binary frame; ignored", principal)
            continue
        try:
            msg = ClientMessage.model_validate_json(text)
        except ValidationError:
            logger.info("terminal %s sent an invalid message", principal)
            continue
        if msg.type == "ack" and msg.alert_id:
            by = ack_author(msg.by, principal)
            logger.info("terminal %s: alert %s acknowledged by %s", principal, msg.alert_id, by)
            await asyncio.to_thread(hub.ack, msg.alert_id, by)


async def _serve(ws: WebSocket, hub: Hub, sub: Subscription, principal: str, heartbeat_s: float,
                 still_allowed: Callable[[], bool]) -> None:
    """Push live messages, ping, and take acks and pongs until either side stops."""
    live = _Liveness(asyncio.get_running_loop().time())
    tasks = {asyncio.ensure_future(_sender(ws, sub)), asyncio.ensure_future(_receiver(ws, hub, principal, live)),
             asyncio.ensure_future(_heartbeat(ws, sub, live, heartbeat_s, still_allowed))}
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await task
    for task in done:
        exc = task.exception()
        if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
            logger.warning("terminal %s connection ended: %r", principal, exc)


def terminal_router(hub: Hub, authorize: Authorize, *, heartbeat_s: float = DEFAULT_HEARTBEAT_S,
                    cookie: str | None = None, authorize_cookie: Authorize | None = None) -> APIRouter:
    """``authorize(token)`` (a non-empty token) returns the principal's name, or the :class:`Refusal`.

    Without a ``?token=``, a socket may authenticate by the cookie named ``cookie`` (a paired tablet's session):
    ``authorize_cookie(value)`` decides it. Either is asked again at every heartbeat, so a revoked credential
    loses its socket within one interval."""
    router = APIRouter()

    @router.get("/terminal", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(terminal_page())

    @router.get("/terminal.webmanifest", include_in_schema=False)
    async def manifest() -> JSONResponse:
        return JSONResponse(MANIFEST, media_type="application/manifest+json")

    @router.get("/terminal-sw.js", include_in_schema=False)
    async def service_worker() -> Response:
        # served from the root so that its scope covers the page and the media it caches
        return Response(_static("terminal-sw.js"), media_type="text/javascript",
                        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})

    @router.get("/terminal-icon.svg", include_in_schema=False)
    async def icon() -> Response:
        return Response(_static("terminal-icon.svg"), media_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})

    @router.websocket("/ws/terminal")
    async def terminal_ws(ws: WebSocket) -> None:
        # Accept first, then close with an application code: a refused handshake reaches the
        # browser only as 1006 and the page could not tell a bad token from a dead server.
        await ws.accept()
        credential, check = ws.query_params.get("token"), authorize
        if not credential and cookie and authorize_cookie is not None and ws.cookies.get(cookie):
            credential, check = ws.cookies.get(cookie), authorize_cookie
        if not credential:
            await ws.close(code=CLOSE_UNAUTHORISED, reason=REASON_MISSING)
            return
        principal = await asyncio.to_thread(check, credential)
        if isinstance(principal, Refusal):
            code, reason = _CLOSES[principal]
            await ws.close(code=code, reason=reason)
            return
        try:
            cursor = Cursor.parse(ws.query_params.get("since"), ws.query_params.get("epoch"))
        except BadCursor as exc:
            await ws.close(code=CLOSE_BAD_CURSOR, reason=str(exc))
            return
        try:
            async with hub.connection(principal, cursor.since, cursor.epoch) as (sub, replay):
                hello = HubMessage(type="hello", last_seq=replay.last_seq, epoch=replay.epoch, reset=replay.reset,
                                   missed=replay.missed, heartbeat_s=heartbeat_s)
                await ws.send_text(hello.model_dump_json())
                for alert in replay.alerts:
                    await ws.send_text(HubMessage(type="alert", alert=alert, epoch=replay.epoch).model_dump_json())
                await _serve(ws, hub, sub, principal, heartbeat_s,
                             lambda: not isinstance(check(credential), Refusal))
        except WebSocketDisconnect:
            pass

    return router
