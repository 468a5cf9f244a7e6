"""The alert hub: persist first, then push to every terminal through its own bounded queue.

Drop policy ``disconnect_slow``: when a terminal's queue is full, the hub stops feeding it and
closes it. The terminal reconnects with ``since=<last seq>`` (and the epoch it saw) and replays what
it missed from the log, so a slow tablet never stalls the others and never loses an alert. A cursor
of another epoch, or ahead of the log, gets a full replay from the start (see :mod:`alerts.cursor`).

A terminal is counted from :meth:`Hub.subscribe` until it leaves :meth:`Hub.connection`, whatever
ends it: a failed replay, a broken socket, a cancelled task.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from alerts.cursor import Cursor, Replay
from alerts.envelope import AckEvent, Alert, AlertDraft, AlertLog, HubMessage

logger = logging.getLogger(__name__)

DROP_POLICY = "disconnect_slow"
REPLAY_LIMIT = 500


@dataclass(eq=False)
class Subscription:
    """One connected terminal. Its queue is only touched on the hub's event loop."""

    client: str
    queue: asyncio.Queue[HubMessage]
    last_seq: int = 0
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    def __init__(self, log: AlertLog, *, queue_size: int = 256, replay_limit: int = REPLAY_LIMIT) -> None:
        self._log = log
        self._queue_size = queue_size
        self._replay_limit = replay_limit
        self._subs: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[Callable[[Alert], None]] = []
        self._ack_listeners: list[Callable[[Alert], None]] = []
        self._publish_lock = threading.Lock()
        self.dropped_clients = 0
        self.published = 0

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def add_listener(self, listener: Callable[[Alert], None]) -> None:
        """Called in the publishing thread after each alert is stored (e.g. console printing)."""
        self._listeners.append(listener)

    def add_ack_listener(self, listener: Callable[[Alert], None]) -> None:
        """Call ``listener`` with each alert once it is acknowledged (on the acknowledging thread)."""
        self._ack_listeners.append(listener)

    @property
    def client_count(self) -> int:
        return len(self._subs)

    @property
    def epoch(self) -> str:
        """The alert log's epoch: seqs compare only within it."""
        return self._log.epoch

    def publish(self, draft: AlertDraft) -> Alert:
        """Store ``draft`` and push it. Safe to call from any thread."""
        with self._publish_lock:  # seq order and push order must agree across camera threads
            alert = self._log.append(draft)
            self.published += 1
            self._fanout_threadsafe(HubMessage(type="alert", alert=alert, epoch=self.epoch))
        for listener in self._listeners:
            try:
                listener(alert)
            except Exception:  # a listener must never break publishing
                logger.exception("alert listener failed")
        return alert

    def ack(self, alert_id: str, by: str) -> Alert | None:
        """Record an acknowledgement and broadcast it to every terminal. Any thread."""
        alert = self._log.ack(alert_id, by)
        if alert is not None and alert.acked_at is not None and alert.acked_by is not None:
            event = AckEvent(alert_id=alert.id, seq=alert.seq, acked_at=alert.acked_at, acked_by=alert.acked_by)
            self._fanout_threadsafe(HubMessage(type="ack", ack=event, epoch=self.epoch))
            for listener in self._ack_listeners:
                try:
                    listener(alert)
                except Exception:  # a listener must never break an acknowledgement
                    logger.exception("ack listener failed")
        return alert

    def refresh(self, alerts: Iterable[Alert]) -> None:
        """Push stored alerts again, as they are now (an erasure scrubbed the name from them): a terminal that
        shows one replaces it. Any thread. The hub keeps no alerts of its own; replays read the log."""
        for alert in alerts:
            self._fanout_threadsafe(HubMessage(type="alert", alert=alert, epoch=self.epoch, replace=True))

    def _fanout_threadsafe(self, message: HubMessage) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._fanout(message)
        else:
            loop.call_soon_threadsafe(self._fanout, message)

    def _fanout(self, message: HubMessage) -> None:
        for sub in list(self._subs):
            if sub.overflowed.is_set():
                continue
            try:
                sub.queue.put_nowait(message)
            except asyncio.QueueFull:
                logger.warning("terminal %s is too slow; closing it (policy %s)", sub.client, DROP_POLICY)
                sub.overflowed.set()
                self.dropped_clients += 1

    def replay(self, since: int | None, epoch: str | None, limit: int | None = None) -> Replay:
        """What a client at (``epoch``, ``since``) missed, at most ``limit`` (capped by the hub's), newest kept.

        Blocking (reads the log); raises :class:`alerts.errors.BadCursor` for a cursor that fits no stream.
        """
        cursor = Cursor(since, epoch)
        limit = self._replay_limit if limit is None else max(1, min(limit, self._replay_limit))
        current, last = self._log.epoch, self._log.last_seq()
        if cursor.since is None:
            return Replay(epoch=current, last_seq=last, reset=False, alerts=[])
        start = cursor.start(current, last)
        first = 0 if start is None else start
        alerts = self._log.since(first, limit)
        if alerts:  # published meanwhile
            last = max(last, alerts[-1].seq)
        missed = alerts[0].seq - first - 1 if alerts else 0  # the oldest ones beyond the limit
        if missed > 0:
            logger.warning("a terminal missed %s alerts more than the replay limit (%s) holds", missed, limit)
        return Replay(epoch=current, last_seq=last, reset=start is None, alerts=alerts, missed=max(0, missed))

    async def subscribe(self, client: str, since: int | None,
                        epoch: str | None = None) -> tuple[Subscription, Replay]:
        """Register a terminal; return it with what it missed. It is not left registered if this raises."""
        Cursor(since, epoch)  # refuse a bad cursor before counting the terminal
        if self._loop is None:
            self.bind_loop(asyncio.get_running_loop())
        sub = Subscription(client=client, queue=asyncio.Queue(maxsize=self._queue_size))
        self._subs.add(sub)  # register before reading the log so nothing falls between the two
        try:
            replay = await asyncio.to_thread(self.replay, since, epoch)
        except BaseException:  # a failed read, a cancelled task: never a ghost terminal
            self._subs.discard(sub)
            raise
        # alerts queued meanwhile and already in the replay are skipped by seq
        sub.last_seq = replay.alerts[-1].seq if replay.alerts else (0 if replay.reset else since or 0)
        return sub, replay

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @asynccontextmanager
    async def connection(self, client: str, since: int | None,
                         epoch: str | None = None) -> AsyncIterator[tuple[Subscription, Replay]]:
        """A registered terminal for the length of the ``async with`` body, however the body ends."""
        sub, replay = await self.subscribe(client, since, epoch)
        try:
            yield sub, replay
        finally:
            self.unsubscribe(sub)
