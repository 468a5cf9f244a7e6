"""MQTT announcements: after a gallery change commits, ``{"version": V}`` goes, QoS 1 and retained, to
``<prefix>/gallery/<branch code>`` for every branch the change touches, so that a subscribed edge pulls at once.

- The hook sits on the console's session factory, so every writer of gallery changes (enrolment, plates,
  imports) is covered without knowing about MQTT: ``after_flush`` notes the new
  :class:`~console.tables.GalleryChange` rows, ``before_commit`` works out the branches while the transaction
  can still read, ``after_commit`` publishes (nothing is announced for a rolled-back change).
- Which branches: the person's scope now. An erasure, or a change of the person's scope (kind, region, branches
  or home), goes to every branch, because the branches that held the person before are not known after the
  commit; announcing too widely costs an empty pull, announcing too narrowly a stale edge until its long-poll.
  A branch moved to another region is announced besides (:mod:`console.sync.region`).
- MQTT is only a hint. The client connects in the background and reconnects by itself; when the broker is down
  a publish is logged and dropped, the commit stands, and the edges' long-polls still bring the change.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from console.config import MqttConfig
from console.context import ConsoleContext
from console.sync.region import ALSO_ANNOUNCE
from console.sync.scope import branch_codes_for
from console.tables import Branch, GalleryChange, Person

log = logging.getLogger(__name__)
EXTRA_KEY = "sync_announcer"
_CHANGES, _SCOPE_MOVED, _PENDING = "sync_changes", "sync_scope_moved", "sync_announce"
_SCOPE_FIELDS = ("scope_kind", "scope_region", "scope_branches", "home_branch_id", "role")


def topic(prefix: str, branch_code: str) -> str:
    return f"{prefix}/gallery/{branch_code}"


class Announcer:
    """One MQTT client per console process, with its own network thread (paho's loop)."""

    def __init__(self, config: MqttConfig) -> None:
        import paho.mqtt.client as mqtt  # imported here: a console without a broker never loads it
        from paho.mqtt.enums import CallbackAPIVersion

        self.config = config
        self._ok = mqtt.MQTT_ERR_SUCCESS
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"smartbranch-console-{secrets.token_hex(4)}")
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._connected = threading.Event()
        self._sent: list[Any] = []  # the MessageInfo of each publish not yet known to be delivered (see flush)
        self.client.on_connect = lambda *_args: self._connected.set()
        self.client.connect_async(config.host, config.port, keepalive=30)
        self.client.loop_start()

    def publish(self, branch_codes: Iterable[str], version: int) -> int:
        """Publish ``version`` to each branch's topic; returns how many were handed to the client."""
        payload = json.dumps({"version": version})
        sent = 0
        for code in sorted(set(branch_codes)):
            try:
                info = self.client.publish(topic(self.config.topic_prefix, code), payload, qos=1, retain=True)
            except (ValueError, OSError) as exc:
                log.warning("MQTT announcement of version %d to %s failed: %s", version, code, exc)
                continue
            if info.rc != self._ok:
                log.warning("MQTT broker %s:%d not reachable; version %d for %s left to the long-poll (rc %s)",
                            self.config.host, self.config.port, version, code, info.rc)
                continue
            sent += 1
            self._sent = [*(i for i in self._sent if not i.is_published()), info]
        return sent

    def wait_connected(self, timeout_s: float) -> bool:
        """Whether the broker took the connection within ``timeout_s`` (a short-lived process waits before its
        first change, so that its announcement is not dropped for want of a connection)."""
        return self._connected.wait(timeout_s)

    def flush(self, timeout_s: float) -> bool:
        """Wait until every announcement made is with the broker, at most ``timeout_s``; whether all are (a
        process that exits right after its change calls this before :meth:`close`)."""
        deadline = time.monotonic() + timeout_s
        for info in list(self._sent):
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                log.warning("MQTT announcement not delivered: %s", exc)
        return all(i.is_published() for i in self._sent)

    def close(self) -> None:
        """Stop the client's thread; closing twice is harmless."""
        self.client.disconnect()
        self.client.loop_stop()


def _scope_moved(person: Person) -> bool:
    state = inspect(person)
    return any(state.attrs[name].history.has_changes() for name in _SCOPE_FIELDS)


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    moved = session.info.setdefault(_SCOPE_MOVED, set())
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, Person) and (obj in session.deleted or _scope_moved(obj)):
            moved.add(obj.id)


def _after_flush(session: Session, _context: Any) -> None:
    changes = session.info.setdefault(_CHANGES, [])
    changes.extend((obj.seq, obj.person_id, obj.kind) for obj in session.new if isinstance(obj, GalleryChange))


def affected_branches(session: Session, changes: list[tuple[int, str, str]], moved: set[str]) -> set[str]:
    codes: set[str] = set()
    for _seq, person_id, kind in changes:
        person = session.get(Person, person_id) if kind != "erase" and person_id not in moved else None
        if person is None:
            return set(session.scalars(select(Branch.code)))
        codes |= branch_codes_for(session, person)
    return codes


def _before_commit(session: Session) -> None:
    try:
        session.flush()
        changes = session.info.pop(_CHANGES, [])
        moved = session.info.pop(_SCOPE_MOVED, set())
        also = session.info.pop(ALSO_ANNOUNCE, set())
        if changes:
            codes = affected_branches(session, changes, moved) | also
            session.info[_PENDING] = (codes, max(c[0] for c in changes))
    except Exception:  # an announcement must never cost the change itself
        log.exception("could not work out which branches a gallery change touches; not announced")
        session.info.pop(_PENDING, None)


def _forget(session: Session, *_args: Any) -> None:
    for key in (_CHANGES, _SCOPE_MOVED, _PENDING, ALSO_ANNOUNCE):
        session.info.pop(key, None)


def install_announcer(ctx: ConsoleContext) -> Announcer | None:
    """Hook MQTT announcements into ``ctx``'s sessions when the config has ``sync.mqtt``; idempotent."""
    existing = ctx.extras.get(EXTRA_KEY)
    if isinstance(existing, Announcer) or ctx.config.sync.mqtt is None:
        return existing if isinstance(existing, Announcer) else None
    announcer = Announcer(ctx.config.sync.mqtt)
    ctx.extras[EXTRA_KEY] = announcer
    weakref.finalize(ctx, announcer.close)  # the client's thread ends with the context (or at exit)

    def after_commit(session: Session) -> None:
        pending = session.info.pop(_PENDING, None)
        if pending:
            codes, version = pending
            announcer.publish(codes, version)

    factory = ctx.db.sessions
    event.listen(factory, "before_flush", _before_flush)
    event.listen(factory, "after_flush", _after_flush)
    event.listen(factory, "before_commit", _before_commit)
    event.listen(factory, "after_commit", after_commit)
    event.listen(factory, "after_rollback", _forget)
    return announcer
