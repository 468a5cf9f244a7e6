"""The gallery feed with real enrolments: photos decrypted from the blob store, the template only for the
edge's own model, gzip on the wire, and the MQTT announcement on the real Mosquitto (127.0.0.1:1883)."""

from __future__ import annotations

import base64
import hashlib
import json
import queue
import secrets
import socket
from collections.abc import Callable
from datetime import date

import numpy as np
import pytest
from fastapi.testclient import TestClient

from console.app import create_app
from console.config import MqttConfig
from console.context import ConsoleContext
from console.dupindex import TemplateCipher
from console.enrolment import (
    ConsentInput,
    PersonChanges,
    PersonInput,
    PhotoUpload,
    create_person,
    erase_person,
    update_person,
)
from console.sync.announce import EXTRA_KEY, Announcer
from console.tables import Person
from tests.console.conftest import add_branch
from tests.console.sync_helpers import add_edge, admin

BROKER = ("127.0.0.1", 1883)


def enrol(ctx: ConsoleContext, photos: list[bytes], *, scope: tuple[str, ...] = ("A001",)) -> Person:
    return create_person(ctx, admin(ctx), PersonInput(name="奥巴马", role="vip", tier="gold", home_branch="A001",
                                                      scope_branches=scope, plates=("京A12345",)),
                         [PhotoUpload(p, field=f"p{i}") for i, p in enumerate(photos)],
                         ConsentInput("VIP greeting", date(2026, 11, 1), "李经理"))


def test_photos_are_sent_decrypted_and_the_template_only_for_the_same_model(
        client: TestClient, console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes]) -> None:
    add_branch(console_ctx, "A001")
    originals = [photo_bytes("obama.jpg"), photo_bytes("obama2.jpg")]
    person = enrol(console_ctx, originals)
    _, auth = add_edge(console_ctx, "A001")
    model = console_ctx.engine().model_id
    same = client.get("/api/sync/gallery", params={"since": 0, "model_id": model}, headers=auth).json()
    other = client.get("/api/sync/gallery", params={"since": 0, "model_id": "insightface-arcface-r100"},
                       headers=auth).json()
    for body in (same, other):
        [sent] = body["persons"]
        assert (sent["id"], sent["name"], sent["role"], sent["version"]) == (person.id, "奥巴马", "vip", person.version)
        assert [base64.b64decode(p["data"]) for p in sent["photos"]] == originals  # the card photo first
        assert [p["sha256"] for p in sent["photos"]] == [hashlib.sha256(o).hexdigest() for o in originals]
        assert sent["plates"] == [{"plate": "京A12345", "kind": "ordinary"}]
    template = same["persons"][0]["template"]
    vector = np.frombuffer(base64.b64decode(template["vector"]), dtype="<f4")
    assert template["model_id"] == model and vector.shape == (128,)
    assert person.template is not None
    assert np.array_equal(vector, TemplateCipher(console_ctx.key).decrypt(person.template))
    assert other["persons"][0]["template"] is None  # the edge embeds the photos with its own model


def test_gallery_answers_are_gzipped_when_the_edge_accepts_it(client: TestClient, console_ctx: ConsoleContext,
                                                              photo_bytes: Callable[[str], bytes]) -> None:
    add_branch(console_ctx, "A001")
    enrol(console_ctx, [photo_bytes("obama.jpg")])
    _, auth = add_edge(console_ctx, "A001")
    zipped = client.get("/api/sync/gallery", params={"since": 0}, headers={**auth, "Accept-Encoding": "gzip"})
    plain = client.get("/api/sync/gallery", params={"since": 0}, headers={**auth, "Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert zipped.json() == plain.json()  # httpx decompressed it: the same answer


def _broker_problem() -> str | None:
    try:
        socket.create_connection(BROKER, timeout=2).close()
        return None
    except OSError as exc:
        return f"no MQTT broker at {BROKER[0]}:{BROKER[1]} ({exc}); .ci/run starts Mosquitto"


def test_an_enrolment_is_announced_on_the_real_broker(console_ctx: ConsoleContext,
                                                      photo_bytes: Callable[[str], bytes]) -> None:
    problem = _broker_problem()
    if problem:
        pytest.skip(problem)
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    add_branch(console_ctx, "A001")
    add_branch(console_ctx, "B001")
    prefix = f"sbtest-{secrets.token_hex(4)}"
    console_ctx.config.sync.mqtt = MqttConfig(host=BROKER[0], port=BROKER[1], topic_prefix=prefix)
    received: queue.Queue[tuple[str, dict[str, int], bool]] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sbtest-listener-{secrets.token_hex(4)}")
    listener.on_connect = lambda c, *_a: c.subscribe(f"{prefix}/gallery/#", qos=1)
    listener.on_subscribe = lambda *_a: subscribed.put(True)
    listener.on_message = lambda _c, _u, m: received.put((m.topic, json.loads(m.payload), bool(m.retain)))
    listener.connect(*BROKER)
    listener.loop_start()
    try:
        assert subscribed.get(timeout=10)
        with TestClient(create_app(console_ctx.config, context=console_ctx)):
            announcer = console_ctx.extras[EXTRA_KEY]
            assert isinstance(announcer, Announcer)
            person = enrol(console_ctx, [photo_bytes("obama.jpg")])  # scoped to A001 only
            topic, payload, _retained = received.get(timeout=10)
            assert (topic, payload) == (f"{prefix}/gallery/A001", {"version": person.version})
            # moved from A to B: A must hear of it too (to drop them), so a scope change goes to every branch
            moved = update_person(console_ctx, admin(console_ctx), person.id, PersonChanges(scope_branches=("B001",)))
            told = sorted((m[0], m[1]["version"]) for m in (received.get(timeout=10) for _ in range(2)))
            assert told == [(f"{prefix}/gallery/{b}", moved.version) for b in ("A001", "B001")]
            erase_person(console_ctx, admin(console_ctx), person.id)  # an erasure goes to every branch
            erased = sorted((m[0], m[1]["version"]) for m in (received.get(timeout=10) for _ in range(2)))
            assert erased == [(f"{prefix}/gallery/{b}", moved.version + 1) for b in ("A001", "B001")]
            announcer.close()
        # retained: a box that subscribes later still learns the newest version at once
        late: queue.Queue[tuple[str, dict[str, int], bool]] = queue.Queue()
        box = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sbtest-box-{secrets.token_hex(4)}")
        box.on_connect = lambda c, *_a: c.subscribe(f"{prefix}/gallery/B001", qos=1)
        box.on_message = lambda _c, _u, m: late.put((m.topic, json.loads(m.payload), bool(m.retain)))
        box.connect(*BROKER)
        box.loop_start()
        try:
            assert late.get(timeout=10) == (f"{prefix}/gallery/B001", {"version": moved.version + 1}, True)
        finally:
            box.loop_stop()
            box.disconnect()
    finally:
        listener.loop_stop()
        listener.disconnect()


def test_a_broker_that_is_down_costs_no_enrolment(console_ctx: ConsoleContext,
                                                  photo_bytes: Callable[[str], bytes]) -> None:
    add_branch(console_ctx, "A001")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    console_ctx.config.sync.mqtt = MqttConfig(host="127.0.0.1", port=port)
    with TestClient(create_app(console_ctx.config, context=console_ctx)) as client:
        person = enrol(console_ctx, [photo_bytes("obama.jpg")])
        _, auth = add_edge(console_ctx, "A001")
        body = client.get("/api/sync/gallery", params={"since": 0}, headers=auth).json()
        assert [p["id"] for p in body["persons"]] == [person.id]
        announcer = console_ctx.extras[EXTRA_KEY]
        assert isinstance(announcer, Announcer)
        announcer.close()
