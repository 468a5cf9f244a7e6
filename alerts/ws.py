"""FastAPI routes of the terminal: the page and the WebSocket ``/ws/terminal?since=``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from importlib import resources

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from alerts.envelope import HubMessage
from alerts.hub import Hub, Subscription

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORISED = 4401
CLOSE_TOO_SLOW = 4408

Authorize = Callable[[str | None], str | None]


class ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    alert_id: str | None = None


def terminal_page() -> str:
    return resources.files("alerts").joinpath("static/terminal.html").read_text(encoding="utf-8")


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
                if message.alert.seq <= sub.last_seq:
                    continue  # already sent in the replay
                sub.last_seq = message.alert.seq
            await ws.send_text(message.model_dump_json())
    finally:
        overflow.cancel()


async def _receiver(ws: WebSocket, hub: Hub, principal: str) -> None:
    while True:
        text = await ws.receive_text()
        try:
            msg = ClientMessage.model_validate_json(text)
        except ValidationError:
            logger.info("terminal %s sent an invalid message", principal)
            continue
        if msg.type == "ack" and msg.alert_id:
            await asyncio.to_thread(hub.ack, msg.alert_id, principal)


def terminal_router(hub: Hub, authorize: Authorize) -> APIRouter:
    """``authorize(token)`` returns the principal's name, or None to refuse."""
    router = APIRouter()

    @router.get("/terminal", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(terminal_page())

    @router.websocket("/ws/terminal")
    async def terminal_ws(ws: WebSocket) -> None:
        # Accept first, then close with an application code: a refused handshake reaches the
        # browser only as 1006 and the page could not tell a bad token from a dead server.
        await ws.accept()
        principal = authorize(ws.query_params.get("token"))
        if principal is None:
            await ws.close(code=CLOSE_UNAUTHORISED, reason="missing or invalid token")
            return
        since_raw = ws.query_params.get("since")
        try:
            since = int(since_raw) if since_raw not in (None, "") else None
        except ValueError:
            await ws.close(code=1008, reason="since must be an integer")
            return
        if since is not None and since < 0:
            await ws.close(code=1008, reason="since must be >= 0")
            return
        sub, backlog = await hub.subscribe(principal, since)
        try:
            await ws.send_text(HubMessage(type="hello", last_seq=sub.last_seq).model_dump_json())
            for alert in backlog:
                await ws.send_text(HubMessage(type="alert", alert=alert).model_dump_json())
            tasks = {asyncio.ensure_future(_sender(ws, sub)), asyncio.ensure_future(_receiver(ws, hub, principal))}
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                    await task
            for task in done:
                exc = task.exception()
                if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
                    logger.warning("terminal %s connection ended: %r", principal, exc)
        except WebSocketDisconnect:
            pass
        finally:
            hub.unsubscribe(sub)

    return router
