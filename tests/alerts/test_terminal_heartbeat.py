"""The terminal socket's heartbeat and named acknowledgements, against a real store, hub and uvicorn.

A dead Wi-Fi says nothing over TCP, so the box pings every ``heartbeat_s`` and closes a terminal that answers
nothing for three intervals (the page does the same the other way round: see the browser tests). An ack names
the person picked on the tablet; without one it is the token's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from alerts.hub import Hub
from alerts.server import ServerThread
from alerts.ws import CLOSE_SILENT, terminal_router
from edge.store.db import Store
from tests.alerts.test_hub import draft
from tests.alerts.test_terminal_page import PAGE_TOKEN, page_authorize

BEAT_S = 0.2


class Beating:
    """A box whose terminal socket pings every :data:`BEAT_S` seconds."""

    def __init__(self, db: Path) -> None:
        self.store = Store(db, branch_id="b1", cipher=Fernet(Fernet.generate_key()))
        self.hub = Hub(self.store)

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            self.hub.bind_loop(asyncio.get_running_loop())
            yield

        app = FastAPI(lifespan=lifespan)
        app.include_router(terminal_router(self.hub, page_authorize, heartbeat_s=BEAT_S))
        self.server = ServerThread(app, "127.0.0.1", 0)
        self.server.start()

    def terminal(self) -> ClientConnection:
        return connect(f"ws://127.0.0.1:{self.server.port}/ws/terminal?token={PAGE_TOKEN}&since=0", open_timeout=10)


@pytest.fixture()
def box(tmp_path: Path) -> Iterator[Beating]:
    b = Beating(tmp_path / "edge.db")
    yield b
    b.server.stop()
    b.store.engine.dispose()


def receive(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=timeout)))


def until(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        msg = receive(ws)
        if msg["type"] == kind:
            return msg


def test_the_box_pings_and_keeps_a_terminal_that_answers(box: Beating) -> None:
    with box.terminal() as ws:
        # the hello says how often the box pings
        hello = receive(ws)
        assert hello["type"] == "hello" and hello["heartbeat_s"] == BEAT_S
        # when the terminal answers every ping for ten intervals
        pings = 0
        deadline = time.monotonic() + 10 * BEAT_S
        while time.monotonic() < deadline:
            msg = receive(ws)
            assert msg["type"] == "ping"
            pings += 1
            ws.send(json.dumps({"type": "pong"}))
        # then it got a ping an interval and is still served: a new alert reaches it
        assert pings >= 6
        box.hub.publish(draft(1))
        assert until(ws, "alert")["alert"]["seq"] == 1
        assert box.hub.client_count == 1


def test_the_box_closes_a_terminal_that_answers_nothing(box: Beating) -> None:
    with box.terminal() as ws:
        assert receive(ws)["type"] == "hello"
        # when the terminal never answers (its Wi-Fi is dead): the box closes it with its own code
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                receive(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_SILENT
    # and it is no longer counted
    deadline = time.monotonic() + 5
    while box.hub.client_count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert box.hub.client_count == 0


def test_an_ack_names_the_person_picked_on_the_tablet(box: Beating) -> None:
    first, second, third = (box.hub.publish(draft(i)) for i in (1, 2, 3))
    with box.terminal() as ws:
        until(ws, "hello")
        # an ack with a name (an invisible bidi override in it) is recorded under the name, cleaned
        ws.send(json.dumps({"type": "ack", "alert_id": first.id, "by": " 王丽\u202e "}))
        assert until(ws, "ack")["ack"]["acked_by"] == "王丽"
        # an ack without a name, or with nothing visible in it, is the token's
        ws.send(json.dumps({"type": "ack", "alert_id": second.id}))
        assert until(ws, "ack")["ack"]["acked_by"] == "lobby-1"
        ws.send(json.dumps({"type": "ack", "alert_id": third.id, "by": "\u200b"}))
        assert until(ws, "ack")["ack"]["acked_by"] == "lobby-1"
        # a later ack of the same alert by someone else keeps the first: the terminal is told who it was
        ws.send(json.dumps({"type": "ack", "alert_id": first.id, "by": "张伟"}))
        again = until(ws, "ack")["ack"]
        assert (again["alert_id"], again["acked_by"]) == (first.id, "王丽")
    [stored] = [a for a in box.store.since(0) if a.id == first.id]
    assert stored.acked_by == "王丽"
