"""The optional MQTT wake-up: the console announces "branch X is at version N"; the puller pulls at once.

HTTP stays the contract (bank networks pass HTTP(S) through proxies); the broker only shortens the wait of a puller
that is backing off or between polls. The edge subscribes to ``<prefix>/gallery/<branch code>`` (the console
publishes there, QoS 1, retained, the payload ``{"version": V}``). A broker that is down or unreachable is logged
and retried by paho's own reconnect loop; the long-poll alone serves meanwhile.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.sync.config import MqttConfig

logger = logging.getLogger(__name__)


def topic(config: MqttConfig, branch_code: str) -> str:
    return f"{config.topic_prefix}/gallery/{branch_code}"


def parse_version(payload: bytes | bytearray) -> int | None:
    try:
        body = json.loads(payload)
        return int(body["version"]) if isinstance(body, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


class MqttWaker:
    """Subscribes to the branch's topic and calls ``wake(version)`` for every announcement."""

    def __init__(self, config: MqttConfig, branch_code: str, wake: Callable[[int], None], *,
                 client_id: str = "") -> None:
        self._config = config
        self.topic = topic(config, branch_code)
        self._wake = wake
        self.connected = False
        self.last_version: int | None = None  # the newest version announced (health and tests)
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)

    def start(self) -> None:
        try:
            self._client.connect_async(self._config.host, self._config.port, keepalive=30)
        except (OSError, ValueError) as exc:
            logger.warning("sync: MQTT broker %s:%s not usable (%s); the long-poll alone serves",
                           self._config.host, self._config.port, exc)
        self._client.loop_start()  # connects, and reconnects, in paho's own thread

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            logger.warning("sync: MQTT broker %s:%s refused the connection: %s", self._config.host,
                           self._config.port, reason)
            return
        self.connected = True
        client.subscribe(self.topic, qos=1)  # again after every reconnect
        logger.info("sync: MQTT subscribed to %s", self.topic)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                       _props: Any = None) -> None:
        if self.connected:
            logger.warning("sync: MQTT broker %s:%s lost (%s); retrying, the long-poll serves meanwhile",
                           self._config.host, self._config.port, reason)
        self.connected = False

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        version = parse_version(message.payload)
        if version is None:
            logger.warning("sync: MQTT message on %s is not {\"version\": N}; ignored", message.topic)
            return
        self.last_version = version if self.last_version is None else max(self.last_version, version)
        self._wake(version)
