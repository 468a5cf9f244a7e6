"""End to end: a video of real faces -> edge pipeline -> WebSocket terminals."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from edge.config import EdgeConfig
from tests.edge.conftest import ADMIN_TOKEN, ENROLLER_TOKEN, IT_TOKEN, LOBBY_TOKEN, LiveEdge

pytestmark = pytest.mark.slow



def drain(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every message that arrives within ``seconds``; the box's pings are answered, as a terminal does, and left
    out."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            break
        if message["type"] == "ping":
            ws.send(json.dumps({"type": "pong"}))
        else:
            out.append(message)
    return out


def alerts_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["alert"] for m in messages if m["type"] == "alert"]


def test_vip_walk_in_alerts_once_replays_and_shares_acks(
        walk_in_video: Path, make_config: Callable[..., EdgeConfig], live_edge: Callable[..., LiveEdge],
        photo_bytes: Callable[[str], bytes]) -> None:
    # given an edge box with one entrance camera on the video and one VIP enrolled from another photo
    config = make_config(cameras=[{"id": "entrance-1", "name": "正门", "role": "entrance",
                                   "source": {"url": f"file:{walk_in_video}", "fps": 10}}])
    edge = live_edge(config)
    vip = edge.runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama.jpg"),
                                      consent="测试同意记录")
    # and a terminal connected before anyone walks in
    with connect(edge.ws_url()) as terminal_a:
        hello = json.loads(terminal_a.recv(timeout=5))
        assert hello == {"type": "hello", "alert": None, "ack": None, "last_seq": 0,
                         "epoch": edge.runtime.store.epoch, "reset": False, "missed": 0,
                         "heartbeat_s": config.server.terminal_heartbeat_s, "replace": None}

        # when the video plays through the pipeline
        edge.runtime.start()
        deadline = time.monotonic() + 60
        received: list[dict[str, Any]] = []
        while not edge.runtime.cameras_done and time.monotonic() < deadline:
            received += drain(terminal_a, 0.5)
        received += drain(terminal_a, 1.0)

        # then exactly one vip_arrival arrives, for the enrolled VIP, and nothing for the strangers
        alerts = alerts_of(received)
        assert [a["type"] for a in alerts] == ["vip_arrival"]
        alert = alerts[0]
        assert alert["person_id"] == vip.id
        assert alert["title"] == "VIP 到店"
        assert alert["payload"]["name"] == "奥巴马"
        assert alert["payload"]["tier"] == "钻石"
        assert alert["payload"]["camera_name"] == "正门"
        assert alert["payload"]["photo_url"] == f"/api/persons/{vip.id}/photo"
        assert alert["seq"] == 1
        assert edge.runtime.workers[0].processed > 20

        # when a second terminal that missed it reconnects with since=0
        with connect(edge.ws_url(since=0)) as terminal_b:
            replay = alerts_of(drain(terminal_b, 1.0))
            # then it receives the alert it missed
            assert [a["id"] for a in replay] == [alert["id"]]

            # when terminal A acknowledges it
            terminal_a.send(json.dumps({"type": "ack", "alert_id": alert["id"]}))
            # then terminal B hears of the ack
            acks = [m["ack"] for m in drain(terminal_b, 2.0) if m["type"] == "ack"]
            assert len(acks) == 1
            assert acks[0]["alert_id"] == alert["id"]
            assert acks[0]["acked_by"] == "lobby-1"

        # and a terminal reconnecting with since=<its last seq> gets nothing twice
        with connect(edge.ws_url(since=alert["seq"])) as terminal_c:
            assert alerts_of(drain(terminal_c, 0.5)) == []

    # and the stored alert shows the ack and the enrolment photo is served to the lobby manager
    stored = httpx.get(f"{edge.http}/api/alerts?since=0", headers={"Authorization": f"Bearer {LOBBY_TOKEN}"})
    assert stored.status_code == 200
    assert stored.json()[0]["acked_by"] == "lobby-1"
    photo = httpx.get(f"{edge.http}{alert['payload']['photo_url']}?token={LOBBY_TOKEN}")
    assert photo.status_code == 200 and photo.content == photo_bytes("obama.jpg")
    assert photo.headers["content-type"] == "image/jpeg"


def test_rest_ack_is_broadcast_and_unknown_alert_is_404(
        make_config: Callable[..., EdgeConfig], live_edge: Callable[..., LiveEdge],
        photo_bytes: Callable[[str], bytes]) -> None:
    # given a stored alert (published through the hub as a rule would) and a connected terminal
    from datetime import UTC, datetime

    from alerts.envelope import AlertDraft, AlertType, VipArrivalPayload

    edge = live_edge(make_config())
    now = datetime.now(UTC)
    draft = AlertDraft(type=AlertType.VIP_ARRIVAL, branch_id="test-branch", camera_id="c1", person_id="p1",
                       title="VIP 到店", captured_at=now,
                       payload=VipArrivalPayload(person_id="p1", name="甲", tier="金卡", photo_url="/x",
                                                 score=0.97, margin=0.1, votes=1, track_id=1,
                                                 camera_name="正门", first_seen_at=now))
    with connect(edge.ws_url(token=ADMIN_TOKEN)) as terminal:
        terminal.recv(timeout=5)
        alert = edge.runtime.hub.publish(draft)
        assert alerts_of(drain(terminal, 1.0))[0]["id"] == alert.id
        # when the lobby manager acks over HTTP
        response = httpx.post(f"{edge.http}/api/alerts/{alert.id}/ack",
                              headers={"Authorization": f"Bearer {LOBBY_TOKEN}"})
        # then the ack is stored and pushed to the terminal
        assert response.status_code == 200 and response.json()["acked_by"] == "lobby-1"
        assert [m["ack"]["alert_id"] for m in drain(terminal, 1.0) if m["type"] == "ack"] == [alert.id]
    missing = httpx.post(f"{edge.http}/api/alerts/nope/ack", headers={"Authorization": f"Bearer {LOBBY_TOKEN}"})
    assert missing.status_code == 404


@pytest.mark.parametrize(("token", "expected_close", "expected_reason"), [
    (None, 4401, "missing token"),
    ("", 4401, "missing token"),
    ("wrong", 4401, "invalid token"),
    (ENROLLER_TOKEN, 4403, "token lacks the lobby_manager role"),
    (IT_TOKEN, 4403, "token lacks the lobby_manager role"),
])
def test_terminal_without_valid_token_is_closed(token: str | None, expected_close: int, expected_reason: str,
                                                make_config: Callable[..., EdgeConfig],
                                                live_edge: Callable[..., LiveEdge]) -> None:
    # a missing token, an unknown one and a known one without the lobby role are three different closes
    from websockets.exceptions import ConnectionClosed

    edge = live_edge(make_config())
    url = f"ws://127.0.0.1:{edge.server.port}/ws/terminal" + (f"?token={token}" if token is not None else "")
    with connect(url) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (expected_close, expected_reason)
