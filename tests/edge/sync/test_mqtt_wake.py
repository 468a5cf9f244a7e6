"""The MQTT wake-up against the real Mosquitto on 127.0.0.1:1883: an announcement on the branch's topic reaches the
waker; a broker that is not there leaves the box running (the long-poll alone serves)."""

from __future__ import annotations

import json
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from console.config import MqttConfig as ConsoleMqttConfig
from console.config import SyncConfig as ConsoleSyncConfig
from edge.cli.main import main
from edge.config import EdgeConfig, load_config
from edge.runtime import EdgeRuntime
from edge.sync.config import MqttConfig
from edge.sync.mqtt import MqttWaker, parse_version
from tests.edge.sync.live_console import LiveConsole
from tests.waiting import free_port, wait_for
from vision.engines.owner import EnginePool


def broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=1):
            return True
    except OSError:
        return False


def test_payload_parsing() -> None:
    assert parse_version(b'{"version": 12}') == 12
    assert parse_version(b"not json") is None and parse_version(b'{"v": 1}') is None and parse_version(b"[]") is None


@pytest.mark.skipif(not broker_up(), reason="no Mosquitto on 127.0.0.1:1883")
def test_an_announcement_on_the_branch_topic_wakes_the_puller() -> None:
    prefix = f"sbtest-{secrets.token_hex(4)}"  # a topic of this test alone (retained messages stay on the broker)
    woken: list[int] = []
    event = threading.Event()

    def wake(version: int) -> None:
        woken.append(version)
        event.set()

    waker = MqttWaker(MqttConfig(host="127.0.0.1", port=1883, topic_prefix=prefix), "A001", wake)
    waker.start()
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    try:
        wait_for(lambda: waker.connected, 20, "the subscription")
        publisher.connect("127.0.0.1", 1883)
        publisher.loop_start()
        publisher.publish(f"{prefix}/gallery/B001", json.dumps({"version": 5}), qos=1).wait_for_publish(5)
        publisher.publish(f"{prefix}/gallery/A001", json.dumps({"version": 7}), qos=1).wait_for_publish(5)
        assert event.wait(20)
        assert woken == [7]  # only its own branch's topic
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        waker.stop()


def test_a_broker_that_is_not_there_is_only_logged() -> None:
    waker = MqttWaker(MqttConfig(host="127.0.0.1", port=free_port()), "A001", lambda _: None)
    waker.start()  # does not raise: paho retries in its own thread
    assert not waker.connected
    waker.stop()


@pytest.mark.skipif(not broker_up(), reason="no Mosquitto on 127.0.0.1:1883")
def test_the_console_s_announcement_reaches_the_box_and_the_change_is_applied(
        tmp_path: Path, make_config: Callable[..., EdgeConfig], engine_pool: EnginePool,
        photo_bytes: Callable[[str], bytes]) -> None:
    prefix = f"sbtest-{secrets.token_hex(4)}"
    console = LiveConsole(tmp_path, engine_pool, sync=ConsoleSyncConfig(
        mqtt=ConsoleMqttConfig(host="127.0.0.1", port=1883, topic_prefix=prefix)))
    runtime: EdgeRuntime | None = None
    try:
        make_config(sync={"long_poll_s": 2, "mqtt": {"host": "127.0.0.1", "port": 1883, "topic_prefix": prefix}})
        edge_yaml = tmp_path / "smartbranch.yaml"
        assert main(["edge", "register", "--config", str(edge_yaml), "--console", console.url, "--code",
                     console.code("A001")]) == 0
        runtime = EdgeRuntime(load_config(edge_yaml), engine=engine_pool)
        runtime.start()
        sync = runtime.sync
        assert sync is not None and sync.waker is not None
        waker = sync.waker
        wait_for(lambda: waker.connected, 20, "the subscription")
        # when a VIP of A is enrolled at the console
        obama = console.enrol("奥巴马", [photo_bytes("obama.jpg")], ("A001",))
        # then the broker carries A's new version to the box, and the box applies it
        version = sync.applier.version
        wait_for(lambda: (waker.last_version or 0) > version, 30, "the announcement")
        wait_for(lambda: runtime is not None and obama in runtime.gallery.persons, 30, "the apply")
        assert sync.status().mqtt_connected is True
    finally:
        if runtime is not None:
            runtime.stop()
        console.close()
