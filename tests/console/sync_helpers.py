"""Helpers of the sync tests: edges with tokens, persons written as the services write them (rows plus a gallery
change under the gallery lock) when a test needs no face, and an admin Principal for the services."""

from __future__ import annotations

import json
import queue
import secrets
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from console.context import ConsoleContext
from console.dupindex import lock_gallery
from console.security import Principal, digest, new_secret, principal_for
from console.tables import Branch, Edge, GalleryChange, Person, User
from tests.console.conftest import add_user


def add_edge(ctx: ConsoleContext, branch_code: str, name: str = "edge-1") -> tuple[int, dict[str, str]]:
    """A registered edge of ``branch_code``: (its id, the Authorization header of its token)."""
    token = new_secret()
    with ctx.db.transaction() as session:
        branch = session.scalars(select(Branch).where(Branch.code == branch_code)).one()
        edge = Edge(branch_id=branch.id, name=name, token_hash=digest(token))
        session.add(edge)
        session.flush()
        return edge.id, {"Authorization": f"Bearer {token}"}


def admin(ctx: ConsoleContext, username: str = "root") -> Principal:
    with ctx.db.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            add_user(ctx, username, "admin")
            user = session.scalars(select(User).where(User.username == username)).one()
        return principal_for(session, user, "token", token_name="test")


def put_person(ctx: ConsoleContext, name: str, home: str, *, scope_kind: str = "branches",
               branches: Sequence[str] = (), region: str | None = None, role: str = "vip",
               person_id: str | None = None) -> str:
    """A person without photos (scope and paging tests), with their gallery change; returns the id."""
    with ctx.db.transaction() as session:
        lock_gallery(session)
        codes = {b.code: b for b in session.scalars(select(Branch))}
        person = Person(id=person_id or secrets.token_hex(16), name=name, role=role, tier="gold",
                        home_branch_id=codes[home].id, scope_kind=scope_kind, scope_region=region, created_by="t")
        person.scope_branches = [codes[c] for c in branches]
        session.add(person)
        session.flush()
        change = GalleryChange(person_id=person.id, kind="upsert")
        session.add(change)
        session.flush()
        person.version = change.seq
        return person.id


def version_of(ctx: ConsoleContext) -> int:
    from console.sync.feed import current_version

    with ctx.db.transaction() as session:
        return current_version(session)


BROKER = ("127.0.0.1", 1883)


@contextmanager
def gallery_listener(topic: str) -> Iterator[queue.Queue[tuple[str, dict[str, int]]]]:
    """A subscriber on the real Mosquitto, subscribed before this yields: (topic, payload) of every announcement
    on ``topic`` (MQTT wildcards allowed). Skips the test when no broker listens; .ci/run starts one."""
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError as exc:
        pytest.skip(f"no MQTT broker at {BROKER[0]}:{BROKER[1]} ({exc}); .ci/run starts Mosquitto")
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    received: queue.Queue[tuple[str, dict[str, int]]] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sbtest-listener-{secrets.token_hex(4)}")
    listener.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
    listener.on_subscribe = lambda *_a: subscribed.put(True)
    listener.on_message = lambda _c, _u, m: received.put((m.topic, json.loads(m.payload)))
    listener.connect(*BROKER)
    listener.loop_start()
    try:
        assert subscribed.get(timeout=10)
        yield received
    finally:
        listener.loop_stop()
        listener.disconnect()
