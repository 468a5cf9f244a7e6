"""A branch moved to another region: its edge is told, the VIPs of the new region appear there and those of the
old one vanish, on both backends; the branch's topic is announced on the real Mosquitto (127.0.0.1:1883)."""

from __future__ import annotations

import json
import queue
import secrets
import socket

import pytest
from fastapi.testclient import TestClient

from console.app import create_app
from console.config import MqttConfig
from console.context import ConsoleContext
from tests.console.conftest import add_branch, add_token, add_user
from tests.console.sync_helpers import add_edge, put_person, version_of

BROKER = ("127.0.0.1", 1883)


def _admin(ctx: ConsoleContext) -> dict[str, str]:
    return {"Authorization": f"Bearer {add_token(ctx, add_user(ctx, 'root', 'admin'))}"}


def test_a_region_change_brings_the_new_regions_vips_and_drops_the_old_ones(client: TestClient,
                                                                            console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "A001", region="east")
    add_branch(console_ctx, "W001", region="west")
    east = put_person(console_ctx, "华东贵宾", "A001", scope_kind="region", region="east")
    west = put_person(console_ctx, "华西贵宾", "W001", scope_kind="region", region="west")
    everyone = put_person(console_ctx, "全行贵宾", "A001", scope_kind="all")
    _, auth = add_edge(console_ctx, "A001")
    first = client.get("/api/sync/gallery", params={"since": 0}, headers=auth).json()
    assert {p["id"] for p in first["persons"]} == {east, everyone}
    admin = _admin(console_ctx)
    moved = client.patch("/api/branches/A001", json={"region": "west"}, headers=admin)
    assert moved.status_code == 200, moved.text
    assert version_of(console_ctx) > first["version"]  # a gallery change: the edge's long-poll ends
    changes = client.get("/api/sync/gallery", params={"since": first["version"], "wait": 5}, headers=auth).json()
    assert (changes["snapshot"], changes["version"]) == (False, version_of(console_ctx))
    assert [p["id"] for p in changes["persons"]] == [west]
    assert changes["erased"] == [east]
    # a name-only edit moves no scope: no gallery change
    before = version_of(console_ctx)
    assert client.patch("/api/branches/A001", json={"name": "甲支行"}, headers=admin).status_code == 200
    assert version_of(console_ctx) == before


def test_a_region_change_is_announced_to_the_moved_branch(console_ctx: ConsoleContext) -> None:
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError as exc:
        pytest.skip(f"no MQTT broker at {BROKER[0]}:{BROKER[1]} ({exc}); .ci/run starts Mosquitto")
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    add_branch(console_ctx, "A001", region="east")
    add_branch(console_ctx, "W001", region="west")
    put_person(console_ctx, "华东贵宾", "A001", scope_kind="region", region="east")
    prefix = f"sbtest-{secrets.token_hex(4)}"
    console_ctx.config.sync.mqtt = MqttConfig(host=BROKER[0], port=BROKER[1], topic_prefix=prefix)
    received: queue.Queue[tuple[str, dict[str, int]]] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sbtest-listener-{secrets.token_hex(4)}")
    listener.on_connect = lambda c, *_a: c.subscribe(f"{prefix}/gallery/A001", qos=1)
    listener.on_subscribe = lambda *_a: subscribed.put(True)
    listener.on_message = lambda _c, _u, m: received.put((m.topic, json.loads(m.payload)))
    listener.connect(*BROKER)
    listener.loop_start()
    try:
        assert subscribed.get(timeout=10)
        with TestClient(create_app(console_ctx.config, context=console_ctx)) as client:
            r = client.patch("/api/branches/A001", json={"region": "west"}, headers=_admin(console_ctx))
            assert r.status_code == 200, r.text
            # the only east VIP is now outside A001's scope: A001 must still be told, to drop them
            assert received.get(timeout=10) == (f"{prefix}/gallery/A001", {"version": version_of(console_ctx)})
    finally:
        listener.loop_stop()
        listener.disconnect()
