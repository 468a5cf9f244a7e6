"""Lobby terminals for the benchmarks: the terminal page's WebSocket protocol, spoken by a fleet of clients.

Each terminal does what ``alerts/static/terminal.html`` does: it connects to ``/ws/terminal?token=…&since=N``
with ``N`` the newest seq it has seen (0 at first, so the stored alerts are replayed) and the ``epoch`` it
last saw, reads ``hello``, ``alert`` and ``ack`` messages, acknowledges some alerts, and reconnects with
back-off when the socket closes. A ``hello`` with ``reset`` (or, from a service that does not say so, with
another epoch) means the store was reset: the terminal starts over from seq 0.

Every first receipt of an alert is kept with the time it arrived (this host's wall clock, ``time.time()``),
to compare with the alert's own ``created_at`` and ``captured_at``. All terminals run on one asyncio loop
in one thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

logger = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 2.0
UrlFor = Callable[[str, int, str | None], str]  # (token, since, epoch) -> ws:// URL


@dataclass(frozen=True, slots=True)
class Receipt:
    seq: int
    alert_id: str
    received_at: float  # time.time() in the bench process
    created_at: float  # when the service stored the alert (its wall clock)
    captured_at: float  # capture time of the frame that decided it
    replayed: bool  # came in the replay right after a hello (not a live push)


def _epoch_s(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


@dataclass
class Terminal:
    name: str
    token: str
    url_for: UrlFor
    ack_every: int = 0  # acknowledge alerts whose seq % ack_every == ack_slot (0: never)
    ack_slot: int = 0
    drop_at: float | None = None  # time.monotonic() at which to drop the connection once (a Wi-Fi blip)
    on_receipt: Callable[[Terminal, Receipt], None] | None = None  # called on the loop after each first receipt
    receipts: dict[str, Receipt] = field(default_factory=dict)  # alert id -> first receipt
    ids_by_seq: dict[tuple[str | None, int], str] = field(default_factory=dict)  # (epoch, seq) -> alert id
    last_seq: int = 0
    epoch: str | None = None
    connects: int = 0
    connect_errors: int = 0
    drops: int = 0
    resets: int = 0  # hellos that reset the stream (a new epoch)
    seq_conflicts: int = 0  # one seq received with two different alert ids
    close_codes: list[int] = field(default_factory=list)
    acks_sent: int = 0
    ack_events: int = 0
    _replay_until: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        backoff = BACKOFF_MIN_S
        while not stop.is_set():
            try:
                async with connect(self.url_for(self.token, self.last_seq, self.epoch), open_timeout=5, close_timeout=2,
                                   max_size=2**22) as ws:
                    self.connects += 1
                    backoff = BACKOFF_MIN_S
                    await self._session(ws, stop)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.connect_errors += 1
                logger.debug("terminal %s cannot connect: %r", self.name, exc)
            except ConnectionClosed as exc:
                self.close_codes.append(exc.rcvd.code if exc.rcvd is not None else 1006)
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _session(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.drop_at is not None and time.monotonic() >= self.drop_at:
                self.drop_at = None
                self.drops += 1
                await ws.close()
                return
            try:
                text = await asyncio.wait_for(ws.recv(), 0.25)
            except TimeoutError:
                continue
            received_at = time.time()
            if isinstance(text, bytes):
                continue
            if await self._handle(ws, json.loads(text), received_at):
                await ws.close()
                return

    async def _handle(self, ws: ClientConnection, msg: dict[str, Any], received_at: float) -> bool:
        """Handle one message; True when the terminal must reconnect (the store was reset)."""
        kind = msg.get("type")
        if kind == "hello":
            epoch = None if msg.get("epoch") is None else str(msg["epoch"])
            if msg.get("reset"):
                self.resets += 1
                self.last_seq = 0
            elif epoch is not None and self.epoch is not None and epoch != self.epoch:
                self.resets += 1
                self.epoch, self.last_seq = epoch, 0
                return True
            self.epoch = epoch if epoch is not None else self.epoch
            self._replay_until = int(msg.get("last_seq") or 0)
        elif kind == "alert" and isinstance(msg.get("alert"), dict):
            await self._alert(ws, msg["alert"], received_at)
        elif kind == "ack":
            self.ack_events += 1
        elif kind == "ping":  # the box's heartbeat: a terminal that does not answer is closed as dead
            await ws.send('{"type": "pong"}')
        return False

    async def _alert(self, ws: ClientConnection, alert: dict[str, Any], received_at: float) -> None:
        seq, alert_id = int(alert["seq"]), str(alert["id"])
        known = self.ids_by_seq.setdefault((self.epoch, seq), alert_id)
        if known != alert_id:
            self.seq_conflicts += 1
        if alert_id not in self.receipts:
            receipt = Receipt(seq, alert_id, received_at, _epoch_s(alert["created_at"]),
                              _epoch_s(alert["captured_at"]), seq <= self._replay_until)
            self.receipts[alert_id] = receipt
            if self.on_receipt is not None:
                self.on_receipt(self, receipt)
        self.last_seq = max(self.last_seq, seq)
        if self.ack_every and seq % self.ack_every == self.ack_slot and alert.get("acked_at") is None:
            await ws.send(json.dumps({"type": "ack", "alert_id": alert_id}))
            self.acks_sent += 1


class Fleet:
    """Terminals on one asyncio loop in a background thread."""

    def __init__(self, terminals: list[Terminal]) -> None:
        self.terminals = terminals
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="terminals", daemon=True)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await asyncio.gather(*(t.run(self._stop) for t in self.terminals))

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def connected(self) -> int:
        return sum(1 for t in self.terminals if t.connects > 0)

    def received(self) -> dict[str, int]:
        """Every alert some terminal has received: id -> seq."""
        return {r.alert_id: r.seq for t in self.terminals for r in list(t.receipts.values())}

    def missing(self, alert_ids: list[str]) -> dict[str, list[str]]:
        """Per terminal, the given alerts it has not received (a membership test: safe while it runs)."""
        out = {t.name: [a for a in alert_ids if a not in t.receipts] for t in self.terminals}
        return {k: v for k, v in out.items() if v}

    def wait_for(self, alert_ids: list[str], timeout: float) -> dict[str, list[str]]:
        deadline = time.monotonic() + timeout
        missing = self.missing(alert_ids)
        while missing and time.monotonic() < deadline:
            time.sleep(0.2)
            missing = self.missing(alert_ids)
        return missing


def make_fleet(tokens: list[str], url_for: UrlFor, *, ack: bool = True, drop_every: int = 0,
               drop_window: tuple[float, float] | None = None,
               on_receipt: Callable[[Terminal, Receipt], None] | None = None) -> Fleet:
    """One terminal per token. With ``ack`` each alert is acknowledged by one terminal (seq mod n); with
    ``drop_every`` every n-th terminal drops its connection once, at a time spread over ``drop_window``
    (monotonic seconds) and reconnects with ``since``."""
    n = len(tokens)
    terminals = []
    for i, token in enumerate(tokens):
        drop_at = None
        if drop_every and drop_window is not None and i % drop_every == 0:
            a, b = drop_window
            drop_at = a + (b - a) * (i / max(n - 1, 1))
        terminals.append(Terminal(f"lobby-tablet-{i + 1:02d}", token, url_for, ack_every=n if ack else 0,
                                  ack_slot=i, drop_at=drop_at, on_receipt=on_receipt))
    return Fleet(terminals)
