"""The alert stream through the real app: the epoch and true last seq in the hello, a reset replay when a
terminal's cursor is of another database or ahead of the log, refused cursors, and no ghost terminals."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from tests.alerts.test_hub import draft
from tests.edge.conftest import IT_TOKEN, LOBBY_TOKEN, LiveEdge

BRANCH = "test-branch"
OLD_EPOCH = "f" * 32
AUTH = {"Authorization": f"Bearer {LOBBY_TOKEN}"}


@pytest.fixture()
def edge(make_config: Callable[..., EdgeConfig], live_edge: Callable[..., LiveEdge]) -> LiveEdge:
    """A live edge box (uvicorn on a free port), cameras not started."""
    return live_edge(make_config())


@pytest.fixture()
def runtime(edge: LiveEdge) -> EdgeRuntime:
    return edge.runtime


def terminal(edge: LiveEdge, **query: object) -> ClientConnection:
    url = f"ws://127.0.0.1:{edge.server.port}/ws/terminal?token={LOBBY_TOKEN}"
    return connect(url + "".join(f"&{k}={v}" for k, v in query.items()), open_timeout=10)


def publish(runtime: EdgeRuntime, n: int) -> None:
    for i in range(n):
        runtime.hub.publish(draft(i, branch=BRANCH))


def receive(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=10)))


def hello_and_replay(edge: LiveEdge, **query: object) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The hello and the alert messages that follow it, as far as the hello's last seq (or a quiet second)."""
    with terminal(edge, **query) as ws:
        hello = receive(ws)
        messages: list[dict[str, Any]] = []
        while hello["last_seq"] and (not messages or messages[-1]["alert"]["seq"] < hello["last_seq"]):
            try:
                messages.append(json.loads(ws.recv(timeout=1)))
            except TimeoutError:
                break
        return hello, messages


def closed_with(edge: LiveEdge, **query: object) -> tuple[int, str]:
    """The close code and reason the server answers a connection with (before any message)."""
    with terminal(edge, **query) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None, "the server closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


def wait_until_no_terminal(runtime: EdgeRuntime) -> None:
    deadline = time.monotonic() + 20
    while runtime.hub.client_count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_terminal_ahead_of_the_log_is_told_the_truth_and_replayed(edge: LiveEdge, runtime: EdgeRuntime) -> None:
    # given a box at seq 53
    publish(runtime, 53)
    # when a terminal comes with since=57
    hello, messages = hello_and_replay(edge, since=57)
    # then the hello tells the box's last seq and epoch, and that the terminal's cursor was reset
    assert hello == {"type": "hello", "alert": None, "ack": None, "last_seq": 53, "epoch": runtime.store.epoch,
                     "reset": True, "missed": 0, "heartbeat_s": runtime.config.server.terminal_heartbeat_s,
                     "replace": None}
    # and every alert from 1 comes, each with the epoch
    assert [m["alert"]["seq"] for m in messages] == list(range(1, 54))
    assert {m["epoch"] for m in messages} == {runtime.store.epoch}


def test_a_tablet_of_a_reset_database_gets_the_new_alerts(edge: LiveEdge, runtime: EdgeRuntime) -> None:
    # given a box whose database was reset and now holds alerts 1-6
    publish(runtime, 6)
    # when a tablet that saw seq 91 (or 3) of the old database reconnects, with or without its old epoch
    for query in ({"since": 91, "epoch": OLD_EPOCH}, {"since": 3, "epoch": OLD_EPOCH}, {"since": 91}):
        hello, messages = hello_and_replay(edge, **query)
        # then it is told of the reset and gets alerts 1-6
        assert (hello["reset"], hello["last_seq"], hello["epoch"]) == (True, 6, runtime.store.epoch), query
        assert [m["alert"]["seq"] for m in messages] == [1, 2, 3, 4, 5, 6], query
    # and a tablet of this database resumes where it was
    hello, messages = hello_and_replay(edge, since=4, epoch=runtime.store.epoch)
    assert hello["reset"] is False and [m["alert"]["seq"] for m in messages] == [5, 6]
    # and one that is up to date gets nothing, then the next live alert
    with terminal(edge, since=6, epoch=runtime.store.epoch) as ws:
        assert receive(ws)["last_seq"] == 6
        runtime.hub.publish(draft(7, branch=BRANCH))
        assert receive(ws)["alert"]["seq"] == 7


def get_alerts(edge: LiveEdge, **params: object) -> httpx.Response:
    return httpx.get(f"{edge.http}/api/alerts", params=params, headers=AUTH, timeout=10)  # type: ignore[arg-type]


def test_get_alerts_tells_the_epoch_and_a_reset(edge: LiveEdge, runtime: EdgeRuntime) -> None:
    publish(runtime, 6)
    # a reader of another epoch gets the whole list (same shape as ever) and is told of the reset
    other = get_alerts(edge, since=3, epoch=OLD_EPOCH)
    assert other.status_code == 200
    assert [a["seq"] for a in other.json()] == [1, 2, 3, 4, 5, 6]
    assert other.headers["X-Alert-Epoch"] == runtime.store.epoch
    assert other.headers["X-Alert-Reset"] == "true" and other.headers["X-Alert-Last-Seq"] == "6"
    # a reader ahead of the log too (the newest within its limit)
    ahead = get_alerts(edge, since=57, limit=2)
    assert [a["seq"] for a in ahead.json()] == [5, 6] and ahead.headers["X-Alert-Reset"] == "true"
    # the largest seq there is is a seq ahead of the log, not an error
    largest = get_alerts(edge, since=2**63 - 1)
    assert largest.status_code == 200 and [a["seq"] for a in largest.json()] == [1, 2, 3, 4, 5, 6]
    # a reader of this epoch resumes
    same = get_alerts(edge, since=3, epoch=runtime.store.epoch)
    assert [a["seq"] for a in same.json()] == [4, 5, 6] and same.headers["X-Alert-Reset"] == "false"
    plain = get_alerts(edge)
    assert len(plain.json()) == 6 and plain.headers["X-Alert-Reset"] == "false"


def test_get_alerts_refuses_odd_queries_with_a_4xx(edge: LiveEdge) -> None:
    for query in ({"since": 2**63}, {"since": 2**64}, {"since": 10**40}, {"since": -1}, {"since": "1e3"},
                  {"since": "abc"}, {"limit": 10**30}, {"limit": 0}, {"limit": -5}, {"epoch": "x" * 65},
                  {"epoch": "bad epoch"}, {"epoch": ""}):
        response = get_alerts(edge, **query)
        assert response.status_code == 422, (query, response.status_code, response.text)
        detail = response.json()["detail"]
        assert detail["code"] == "bad_request" and detail["field"] == next(iter(query)), detail


@pytest.mark.parametrize("since", [str(2**63), str(2**64), "9" * 40, "-1", "1e3", "abc", "\u0663", "+5", "5_000"])
def test_a_bad_since_is_closed_with_a_reason_and_not_counted(edge: LiveEdge, runtime: EdgeRuntime,
                                                             since: str) -> None:
    code, reason = closed_with(edge, since=since)
    assert code == 1008 and "since" in reason
    wait_until_no_terminal(runtime)
    assert runtime.hub.client_count == 0


def test_a_bad_epoch_is_closed_with_a_reason(edge: LiveEdge, runtime: EdgeRuntime) -> None:
    for epoch in ("x" * 65, "bad%20epoch", "%C3%A9"):
        code, reason = closed_with(edge, since=1, epoch=epoch)
        assert code == 1008 and "epoch" in reason, epoch
    assert runtime.hub.client_count == 0


def test_odd_client_messages_do_not_end_the_terminal(edge: LiveEdge, runtime: EdgeRuntime) -> None:
    publish(runtime, 1)
    with terminal(edge, since=1) as ws:
        assert receive(ws)["type"] == "hello"
        # when the terminal sends garbage of every kind
        ws.send(b"\x00\x01binary")
        for text in ("not json", "[1, 2]", "null", '{"type": "ack"}', '{"type": "ack", "alert_id": 5}',
                     '{"type": "ack", "alert_id": "' + "a" * 100_000 + '"}', '{"type": "ack", "alert_id": "nope"}',
                     '{"type": "hug", "alert_id": "x", "extra": 1}', "[" * 100_000 + "]" * 100_000):
            ws.send(text)
        # then it is still served: a live alert arrives and an ack of it is broadcast
        alert = runtime.hub.publish(draft(2, branch=BRANCH))
        message = receive(ws)
        assert message["type"] == "alert" and message["alert"]["id"] == alert.id
        ws.send(json.dumps({"type": "ack", "alert_id": alert.id}))
        ack = receive(ws)
        assert ack["type"] == "ack" and ack["ack"]["alert_id"] == alert.id and ack["epoch"] == runtime.store.epoch
        assert runtime.hub.client_count == 1
    wait_until_no_terminal(runtime)
    assert runtime.hub.client_count == 0


def test_terminals_that_vanish_or_ask_too_much_leave_no_ghost(edge: LiveEdge, runtime: EdgeRuntime) -> None:
    # given a box with a long log
    publish(runtime, 300)
    # when terminals vanish right after the hello or in the middle of the replay, or ask for seq 2^63
    for since in ("0", "0", "150"):
        with terminal(edge, since=since) as ws:
            receive(ws)
    with terminal(edge, since=0):
        pass
    closed_with(edge, since=2**63)
    # then none of them stays counted, in the hub or in /healthz
    wait_until_no_terminal(runtime)
    assert runtime.hub.client_count == 0
    health = httpx.get(f"{edge.http}/healthz", headers={"Authorization": f"Bearer {IT_TOKEN}"}, timeout=10).json()
    assert health["terminals"] == 0
