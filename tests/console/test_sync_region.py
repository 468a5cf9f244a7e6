"""A branch moved to another region: its edge is told, the VIPs of the new region appear there and those of the
old one vanish, on both backends; the branch's topic is announced on the real Mosquitto (127.0.0.1:1883)."""

from __future__ import annotations

import secrets

from fastapi.testclient import TestClient

from console.app import create_app
from console.config import MqttConfig
from console.context import ConsoleContext
from tests.console.conftest import add_branch, add_token, add_user
from tests.console.sync_helpers import BROKER, add_edge, gallery_listener, put_person, version_of


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
    add_branch(console_ctx, "A001", region="east")
    add_branch(console_ctx, "W001", region="west")
    put_person(console_ctx, "华东贵宾", "A001", scope_kind="region", region="east")
    prefix = f"sbtest-{secrets.token_hex(4)}"
    console_ctx.config.sync.mqtt = MqttConfig(host=BROKER[0], port=BROKER[1], topic_prefix=prefix)
    with (gallery_listener(f"{prefix}/gallery/A001") as received,
          TestClient(create_app(console_ctx.config, context=console_ctx)) as client):
        r = client.patch("/api/branches/A001", json={"region": "west"}, headers=_admin(console_ctx))
        assert r.status_code == 200, r.text
        # the only east VIP is now outside A001's scope: A001 must still be told, to drop them
        assert received.get(timeout=10) == (f"{prefix}/gallery/A001", {"version": version_of(console_ctx)})
