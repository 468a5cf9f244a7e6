"""Pairing a tablet by a one-time code instead of a token in its URLs: the cookie, its use by the socket and the
media, single use and expiry, the refusal throttle, the admin's list and revoke, and the CLI (real app, real
store)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from alerts.ws import CLOSE_UNAUTHORISED, REASON_REVOKED
from edge.api.app import create_app
from edge.api.pairing import COOKIE, Pairings, normalise_code
from edge.cli.main import main as cli
from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from tests.alerts.test_hub import draft
from tests.edge.conftest import ADMIN_TOKEN, LOBBY_TOKEN
from vision.engines.owner import EnginePool

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture()
def config(make_config: Callable[..., EdgeConfig]) -> EdgeConfig:
    cfg = make_config(server={"host": "127.0.0.1", "port": 8000, "refusal_burst": 3, "terminal_heartbeat_s": 0.2})
    return cfg


@pytest.fixture()
def app_client(config: EdgeConfig, engine_pool: EnginePool) -> Iterator[tuple[TestClient, EdgeRuntime]]:
    runtime = EdgeRuntime(config, engine=engine_pool)
    with TestClient(create_app(runtime, start_cameras=False)) as c:
        yield c, runtime
    runtime.stop()


def issue(client: TestClient, name: str = "大堂平板1") -> dict[str, str]:
    res = client.post("/api/pairings", json={"name": name}, headers=ADMIN)
    assert res.status_code == 201, res.text
    return dict(res.json())


def test_a_code_buys_an_httponly_strict_cookie_once(app_client: tuple[TestClient, EdgeRuntime]) -> None:
    client, _ = app_client
    issued = issue(client)
    assert len(normalise_code(issued["code"])) == 8 and issued["code"][4] == "-"
    # when the tablet sends the code (typed in lower case, without the dash)
    res = client.post("/api/pair", json={"code": normalise_code(issued["code"]).lower()})
    # then it gets the session cookie: HttpOnly, SameSite=Strict, for the whole box, and no secret in the body
    assert res.status_code == 200 and res.json() == {"id": issued["id"], "name": "大堂平板1", "role": "lobby_manager"}
    cookie = res.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/" in cookie and "Max-Age=" in cookie
    # and the code is used up
    again = client.post("/api/pair", json={"code": issued["code"]}, cookies={})
    assert again.status_code == 401 and again.json()["detail"]["code"] == "bad_code"


def test_the_cookie_opens_the_lobby_routes_and_the_socket_only(app_client: tuple[TestClient, EdgeRuntime]) -> None:
    client, runtime = app_client
    runtime.hub.publish(draft(1, branch=runtime.config.branch.id))
    client.post("/api/pair", json={"code": issue(client)["code"]})
    # the lobby manager's routes answer to the cookie alone
    assert client.get("/api/alerts?since=0").status_code == 200
    assert client.get("/api/terminal/people").status_code == 200
    # an admin's or an enroller's do not: the paired tablet is a lobby manager and nothing more
    assert client.get("/api/pairings").status_code == 403
    assert client.get("/api/persons").status_code == 403
    # and the socket takes it without a token in its URL
    with client.websocket_connect("/ws/terminal?since=0") as ws:
        hello = json.loads(ws.receive_text())
        assert hello["type"] == "hello"
        assert json.loads(ws.receive_text())["alert"]["seq"] == 1


def test_revoking_closes_the_socket_and_refuses_the_cookie(app_client: tuple[TestClient, EdgeRuntime]) -> None:
    client, _ = app_client
    issued = issue(client)
    client.post("/api/pair", json={"code": issued["code"]})
    with client.websocket_connect("/ws/terminal") as ws:
        assert json.loads(ws.receive_text())["type"] == "hello"
        # when the admin revokes the pairing
        res = client.delete(f"/api/pairings/{issued['id']}", headers=ADMIN)
        assert res.status_code == 200 and res.json()["state"] == "revoked"
        # then the socket is closed at its next heartbeat, saying why
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_text()
        assert (closed.value.code, closed.value.reason) == (CLOSE_UNAUTHORISED, REASON_REVOKED)
    # and every later request with the cookie is refused
    assert client.get("/api/alerts").status_code == 401
    listed = {p["id"]: p for p in client.get("/api/pairings", headers=ADMIN).json()}
    assert listed[issued["id"]]["state"] == "revoked" and listed[issued["id"]]["revoked_at"]
    assert client.delete("/api/pairings/nope", headers=ADMIN).status_code == 404


def test_an_expired_code_is_refused_and_wrong_codes_are_throttled(app_client: tuple[TestClient, EdgeRuntime]) -> None:
    client, runtime = app_client
    expired = Pairings(runtime.store).issue("旧平板", ttl_s=-1)
    assert client.post("/api/pair", json={"code": expired.code}).status_code == 401
    # more refusals than the burst (3) from one address, and it is blocked, even with a good code
    good = issue(client)["code"]
    for _ in range(3):
        assert client.post("/api/pair", json={"code": "AAAA-AAAA"}).status_code == 401
    blocked = client.post("/api/pair", json={"code": good})
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers


def test_only_an_admin_pairs_and_lists(app_client: tuple[TestClient, EdgeRuntime]) -> None:
    client, _ = app_client
    lobby = {"Authorization": f"Bearer {LOBBY_TOKEN}"}
    assert client.post("/api/pairings", json={"name": "x"}, headers=lobby).status_code == 403
    assert client.get("/api/pairings", headers=lobby).status_code == 403
    assert client.post("/api/pairings", json={"name": "\u200b"}, headers=ADMIN).status_code == 422


def test_the_cli_pairs_lists_and_revokes(config: EdgeConfig, capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    path = tmp_path / "smartbranch.yaml"
    assert cli(["--lang", "en", "pair", "--config", str(path), "--name", "lobby tablet"]) == 0
    out = capsys.readouterr().out
    code = out.split(": ", 1)[1].split()[0]
    assert len(normalise_code(code)) == 8 and "/terminal" in out
    assert cli(["pairings", "list", "--config", str(path)]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    pairing_id, state = line.split()[:2]
    assert state == "waiting" and line.endswith("lobby tablet")
    assert cli(["pairings", "revoke", "--config", str(path), pairing_id]) == 0
    assert cli(["pairings", "list", "--config", str(path)]) == 0
    assert capsys.readouterr().out.split("\n")[-2].split()[1] == "revoked"
    assert cli(["pairings", "revoke", "--config", str(path), "nope"]) == 2
