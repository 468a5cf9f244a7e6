"""Edge registration by one-time code, edge tokens and their revocation, and the wall between edge and user
credentials."""

from __future__ import annotations

import re
import secrets
import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from console.context import ConsoleContext
from console.db import utcnow
from console.errors import ConsoleError
from console.sync.codes import Registration, redeem
from console.tables import AuditRow, Edge, EdgeCode
from tests.console.conftest import add_branch, add_token, add_user, session_headers

CODE = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}")


def make_code(client: TestClient, ctx: ConsoleContext, branch: str = "BJ001", name: str = "box-1") -> str:
    admin = add_token(ctx, add_user(ctx, f"admin-{secrets.token_hex(4)}", "admin"))
    answer = client.post(f"/api/branches/{branch}/edges/codes", json={"name": name},
                         headers={"Authorization": f"Bearer {admin}"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["code"])


def register(client: TestClient, code: str) -> tuple[int, dict[str, object]]:
    answer = client.post("/api/sync/register", json={"code": code, "model_id": "dlib-resnet-v1", "software": "1.0"})
    return answer.status_code, answer.json()


def status(client: TestClient, token: str) -> int:
    answer = client.post("/api/sync/status", json={"gallery_version": 0}, headers={"Authorization": f"Bearer {token}"})
    return int(answer.status_code)


def test_a_code_registers_one_edge_once(client: TestClient, console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "BJ001", name="北京分行")
    code = make_code(client, console_ctx)
    assert CODE.fullmatch(code)
    with console_ctx.db.transaction() as session:
        row = session.scalars(select(EdgeCode)).one()
        assert code.replace("-", "") not in row.code_hash and row.expires_at - row.created_at == timedelta(hours=24)
    got, body = register(client, code.lower())  # typed in lower case: still the code
    assert got == 201, body
    assert body["branch"] == {"code": "BJ001", "name": "北京分行", "timezone": "Asia/Shanghai"}
    token = str(body["token"])
    assert status(client, token) == 200
    again, body2 = register(client, code)
    assert (again, body2["error"]) == (401, "bad_code")
    with console_ctx.db.transaction() as session:
        edge = session.scalars(select(Edge)).one()
        assert (edge.id, edge.name, edge.model_id) == (body["edge_id"], "box-1", "dlib-resnet-v1")
        actions = [a for a in session.scalars(select(AuditRow.action).order_by(AuditRow.id))]
    assert actions[-3:] == ["edge_code_create", "edge_register", "edge_register_failed"]


def test_an_expired_or_unknown_code_is_refused(client: TestClient, console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "BJ001")
    code = make_code(client, console_ctx)
    with console_ctx.db.transaction() as session:
        session.execute(update(EdgeCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    got, body = register(client, code)
    assert (got, body["error"]) == (401, "bad_code")
    assert register(client, "ZZZZ-ZZZZ")[1]["error"] == "bad_code"
    assert register(client, "not a code")[1]["error"] == "bad_code"


def test_failed_redemptions_from_one_address_are_throttled(client: TestClient, console_ctx: ConsoleContext) -> None:
    console_ctx.config.sync.register_max_failures = 3
    add_branch(console_ctx, "BJ001")
    code = make_code(client, console_ctx)
    for _ in range(3):
        assert register(client, "AAAA-AAAA")[0] == 401
    got, body = register(client, code)  # the right code too: the address is locked out for the window
    assert (got, body["error"]) == (429, "locked")
    with console_ctx.db.transaction() as session:
        assert session.scalar(select(EdgeCode.used_at)) is None


def test_a_revoked_edge_token_is_refused_and_the_list_shows_it(client: TestClient,
                                                               console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "BJ001")
    _, body = register(client, make_code(client, console_ctx))
    token = str(body["token"])
    it = add_token(console_ctx, add_user(console_ctx, "it", "branch_it", scope_kind="branches",
                                         branch_ids=(add_branch(console_ctx, "SH001"),)))
    outside = client.delete(f"/api/edges/{body['edge_id']}", headers={"Authorization": f"Bearer {it}"})
    assert (outside.status_code, outside.json()["error"]) == (403, "forbidden")
    admin = add_token(console_ctx, add_user(console_ctx, "root", "admin"))
    answer = client.delete(f"/api/edges/{body['edge_id']}", headers={"Authorization": f"Bearer {admin}"})
    assert answer.status_code == 200 and answer.json()["revoked_at"]
    assert status(client, token) == 401
    assert client.get("/api/sync/gallery", headers={"Authorization": f"Bearer {token}"}).json()["error"] == \
        "unauthorized"
    listed = client.get("/api/branches", headers={"Authorization": f"Bearer {admin}"}).json()
    edges = next(b for b in listed if b["code"] == "BJ001")["edges"]
    assert edges[0]["revoked_at"] == answer.json()["revoked_at"]
    # the box that replaces it can take the same name with a new code
    got, again = register(client, make_code(client, console_ctx, name="box-1"))
    assert got == 201 and status(client, str(again["token"])) == 200


@pytest.mark.parametrize("role,code", [("enroller", 403), ("regional_manager", 403)])
def test_only_admins_and_branch_it_make_codes(client: TestClient, console_ctx: ConsoleContext, role: str,
                                              code: int) -> None:
    add_branch(console_ctx, "BJ001")
    token = add_token(console_ctx, add_user(console_ctx, "someone", role))
    answer = client.post("/api/branches/BJ001/edges/codes", json={"name": "x"},
                         headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == code


def test_users_never_reach_sync_routes_and_edges_never_reach_user_routes(client: TestClient,
                                                                        console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "BJ001")
    _, body = register(client, make_code(client, console_ctx))
    edge_auth = {"Authorization": f"Bearer {body['token']}"}
    user_id = add_user(console_ctx, "root2", "admin")
    user_auth = {"Authorization": f"Bearer {add_token(console_ctx, user_id)}"}
    assert client.get("/api/sync/gallery", headers=user_auth).status_code == 403
    assert client.post("/api/sync/status", json={"gallery_version": 1}, headers=user_auth).status_code == 403
    for path in ("/api/me", "/api/branches", "/api/persons"):
        assert client.get(path, headers=edge_auth).status_code == 401
    csrf = session_headers(console_ctx, user_id, client)
    assert client.get("/api/sync/gallery").status_code == 403
    assert client.post("/api/sync/status", json={"gallery_version": 1}, headers=csrf).status_code == 403
    client.cookies.clear()
    assert client.get("/api/sync/gallery").status_code == 401


def test_a_second_box_redeeming_the_code_while_the_first_commits_gets_bad_code(client: TestClient,
                                                                                 console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "BJ001")
    code = make_code(client, console_ctx)
    second: list[object] = []

    def redeem_too() -> None:
        with console_ctx.db.transaction() as session:
            second.append(redeem(session, console_ctx.config.sync, code, "dlib", "1.0", "10.0.0.2"))

    with console_ctx.db.transaction() as session:  # the first box's redemption, not yet committed
        first = redeem(session, console_ctx.config.sync, code, "dlib", "1.0", "10.0.0.1")
        assert isinstance(first, Registration)
        other = threading.Thread(target=redeem_too)
        other.start()
        other.join(0.5)
        assert other.is_alive()  # it waits for the first transaction (row lock / SQLite's write lock)
    other.join()
    assert len(second) == 1 and isinstance(second[0], ConsoleError) and second[0].code == "bad_code"
    with console_ctx.db.transaction() as session:
        assert [e.id for e in session.scalars(select(Edge))] == [first.edge.id]
