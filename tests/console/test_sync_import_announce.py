"""A bulk import run from the command line, outside the console's process, announces the new gallery version on
the real Mosquitto (127.0.0.1:1883) like an import through the console does."""

from __future__ import annotations

import json
import queue
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from console.context import ConsoleContext
from tests.console.conftest import add_branch, add_user
from tests.console.sync_helpers import version_of
from tests.console.test_import import CONSENT, csv_bytes

BROKER = ("127.0.0.1", 1883)


def test_the_cli_import_announces_the_new_version_to_the_branch(
        console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes], tmp_path: Path) -> None:
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError as exc:
        pytest.skip(f"no MQTT broker at {BROKER[0]}:{BROKER[1]} ({exc}); .ci/run starts Mosquitto")
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from console.cli.main import main

    add_branch(console_ctx, "SH001")
    add_user(console_ctx, "importer", "enroller")
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "obama.jpg").write_bytes(photo_bytes("obama.jpg"))
    (tmp_path / "people.csv").write_bytes(csv_bytes(f"E1,奥巴马,vip,gold,SH001,,,obama.jpg,,{CONSENT}"))
    prefix = f"sbtest-{secrets.token_hex(4)}"
    config = tmp_path / "console.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(console_ctx.config.data_dir),
                                      "database": {"url": console_ctx.config.database_url},
                                      "sync": {"mqtt": {"host": BROKER[0], "port": BROKER[1],
                                                        "topic_prefix": prefix}}}))
    received: queue.Queue[tuple[str, dict[str, int]]] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sbtest-listener-{secrets.token_hex(4)}")
    listener.on_connect = lambda c, *_a: c.subscribe(f"{prefix}/gallery/#", qos=1)
    listener.on_subscribe = lambda *_a: subscribed.put(True)
    listener.on_message = lambda _c, _u, m: received.put((m.topic, json.loads(m.payload)))
    listener.connect(*BROKER)
    listener.loop_start()
    try:
        assert subscribed.get(timeout=10)
        assert main(["import", "--config", str(config), "--csv", str(tmp_path / "people.csv"), "--photos",
                     str(folder), "--user", "importer"]) == 0
        # the command has returned: what it announced was handed to the broker before it exited
        assert received.get(timeout=10) == (f"{prefix}/gallery/SH001", {"version": version_of(console_ctx)})
    finally:
        listener.loop_stop()
        listener.disconnect()
