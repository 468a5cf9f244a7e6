"""Users and API tokens through the API (role checks, validation, audit without secrets) and the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from console.cli.common import operator_name
from console.cli.main import main as console_main
from console.context import ConsoleContext
from console.tables import AuditRow, User
from console.users import ensure_admin
from tests.console.conftest import PASSWORD, add_branch, add_token, add_user

NEW_PASSWORD = "another long password 42"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def admin(console_ctx: ConsoleContext) -> dict[str, str]:
    return bearer(add_token(console_ctx, add_user(console_ctx, "root", "admin")))


def audit_dump(ctx: ConsoleContext) -> tuple[list[tuple[str, str, str]], str]:
    with ctx.db.transaction() as session:
        rows = session.scalars(select(AuditRow).order_by(AuditRow.id)).all()
        return [(r.actor, r.action, r.object_id) for r in rows], repr([(r.object_id, r.detail) for r in rows])


def test_an_admin_creates_lists_and_edits_users(client: TestClient, console_ctx: ConsoleContext,
                                                admin: dict[str, str]) -> None:
    add_branch(console_ctx, "B001", region="east")
    add_branch(console_ctx, "B002", region="east")
    made = client.post("/api/users", headers=admin, json={
        "username": "li.na", "display_name": "李娜", "password": PASSWORD, "role": "enroller",
        "scope_kind": "branches", "branches": ["b002", "B001"]})
    assert made.status_code == 201, made.text
    out = made.json()
    assert {k: out[k] for k in ("username", "display_name", "role", "scope_kind", "branches", "active")} == {
        "username": "li.na", "display_name": "李娜", "role": "enroller", "scope_kind": "branches",
        "branches": ["B001", "B002"], "active": True}
    assert not any("password" in key for key in out)
    listed = client.get("/api/users", headers=admin).json()
    assert [u["username"] for u in listed] == ["li.na", "root"]
    patched = client.patch(f"/api/users/{out['id']}", headers=admin,
                           json={"role": "compliance", "scope_kind": "region", "scope_region": "east",
                                 "password": NEW_PASSWORD})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["role"], patched.json()["scope_kind"], patched.json()["scope_region"]) == (
        "compliance", "region", "east")
    assert client.post("/api/auth/login", json={"username": "li.na", "password": PASSWORD}).status_code == 401
    assert client.post("/api/auth/login", json={"username": "li.na", "password": NEW_PASSWORD}).status_code == 200
    rows, dumped = audit_dump(console_ctx)
    assert ("root/token:script", "user_create", "li.na") in rows and ("root/token:script", "user_update",
                                                                       "li.na") in rows
    assert PASSWORD not in dumped and NEW_PASSWORD not in dumped and "'password': 'changed'" in dumped


@pytest.mark.parametrize(("change", "field"), [
    ({"username": "No Caps"}, "username"), ({"username": "ab"}, "username"), ({"password": "short"}, "password"),
    ({"role": "superuser"}, "role"), ({"scope_kind": "region", "scope_region": "west"}, "scope_region"),
    ({"scope_kind": "branches", "branches": ["B404"]}, "branches"), ({"scope_kind": "branches"}, "branches"),
    ({"scope_kind": "planet"}, "scope_kind")])
def test_a_bad_user_is_refused_naming_the_field_and_nothing_is_written(
        client: TestClient, console_ctx: ConsoleContext, admin: dict[str, str], change: dict[str, object],
        field: str) -> None:
    add_branch(console_ctx, "B001", region="east")
    body = {"username": "bob", "password": PASSWORD, "role": "enroller", "scope_kind": "all", **change}
    answer = client.post("/api/users", headers=admin, json=body)
    assert answer.status_code == 422, answer.text
    assert [p["field"] for p in answer.json()["problems"]] == [field]
    with console_ctx.db.transaction() as session:
        assert session.scalars(select(User.username)).all() == ["root"]
    assert audit_dump(console_ctx)[0] == []


def test_a_taken_name_is_409(client: TestClient, admin: dict[str, str]) -> None:
    body = {"username": "root", "password": PASSWORD, "role": "enroller", "scope_kind": "all"}
    answer = client.post("/api/users", headers=admin, json=body)
    assert (answer.status_code, answer.json()["error"]) == (409, "duplicate")


@pytest.mark.parametrize("role", ["enroller", "compliance", "branch_it", "regional_manager"])
def test_only_an_admin_manages_users(client: TestClient, console_ctx: ConsoleContext, role: str) -> None:
    target = add_user(console_ctx, "root", "admin")
    caller = bearer(add_token(console_ctx, add_user(console_ctx, "someone", role)))
    assert client.get("/api/users", headers=caller).status_code == 403
    body = {"username": "bob", "password": PASSWORD, "role": "admin", "scope_kind": "all"}
    assert client.post("/api/users", headers=caller, json=body).status_code == 403
    assert client.patch(f"/api/users/{target}", headers=caller, json={"active": False}).status_code == 403
    assert client.post(f"/api/users/{target}/tokens", headers=caller, json={"name": "x"}).status_code == 403
    assert client.get(f"/api/users/{target}/tokens", headers=caller).status_code == 403


def test_the_last_active_admin_cannot_be_disabled_or_demoted(client: TestClient, console_ctx: ConsoleContext,
                                                              admin: dict[str, str]) -> None:
    with console_ctx.db.transaction() as session:
        root = session.scalars(select(User.id).where(User.username == "root")).one()
    for change in ({"active": False}, {"role": "enroller"}):
        answer = client.patch(f"/api/users/{root}", headers=admin, json=change)
        assert (answer.status_code, answer.json()["error"]) == (409, "last_admin")
    second = add_user(console_ctx, "root2", "admin")
    assert client.patch(f"/api/users/{second}", headers=admin, json={"active": False}).status_code == 200


def test_disabling_a_user_stops_their_token_and_session(client: TestClient, console_ctx: ConsoleContext,
                                                       admin: dict[str, str]) -> None:
    user_id = add_user(console_ctx, "bob", "enroller")
    token = add_token(console_ctx, user_id)
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    bob = TestClient(client.app)
    assert bob.post("/api/auth/login", json={"username": "bob", "password": PASSWORD}).status_code == 200
    assert client.patch(f"/api/users/{user_id}", headers=admin, json={"active": False}).status_code == 200
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert bob.get("/api/me").status_code == 401


def test_a_user_manages_their_own_tokens_but_not_anyone_elses(client: TestClient, console_ctx: ConsoleContext,
                                                              admin: dict[str, str]) -> None:
    bob_id, carol_id = add_user(console_ctx, "bob", "enroller"), add_user(console_ctx, "carol", "enroller")
    bob, carol = bearer(add_token(console_ctx, bob_id, "bob-main")), bearer(add_token(console_ctx, carol_id))
    made = client.post(f"/api/users/{bob_id}/tokens", headers=bob, json={"name": "nightly import"})
    assert made.status_code == 201, made.text
    secret = made.json()["token"]
    assert set(made.json()) == {"id", "name", "token"}
    assert client.get("/api/me", headers=bearer(secret)).json()["username"] == "bob"
    listed = client.get(f"/api/users/{bob_id}/tokens", headers=bob).json()
    assert [t["name"] for t in listed] == ["bob-main", "nightly import"]
    assert all(set(t) == {"id", "name", "created_at", "last_used_at", "revoked_at"} for t in listed)
    assert client.get(f"/api/users/{bob_id}/tokens", headers=carol).status_code == 403
    assert client.delete(f"/api/tokens/{made.json()['id']}", headers=carol).status_code == 403
    assert client.delete(f"/api/tokens/{made.json()['id']}", headers=bob).status_code == 204
    assert client.get("/api/me", headers=bearer(secret)).status_code == 401
    carol_tokens = client.get(f"/api/users/{carol_id}/tokens", headers=admin).json()
    assert client.delete(f"/api/tokens/{carol_tokens[0]['id']}", headers=admin).status_code == 204
    assert client.get("/api/me", headers=carol).status_code == 401
    assert client.delete("/api/tokens/999999", headers=admin).status_code == 404
    rows, dumped = audit_dump(console_ctx)
    assert [a for _, a, _ in rows] == ["token_create", "token_revoke", "token_revoke"]
    assert secret not in dumped


def write_config(ctx: ConsoleContext, tmp_path: Path) -> Path:
    path = tmp_path / "console.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(ctx.config.data_dir),
                                    "database": {"url": ctx.config.database_url}}), encoding="utf-8")
    return path


def test_cli_adds_a_user_who_can_sign_in_and_makes_a_token(client: TestClient, console_ctx: ConsoleContext,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    add_branch(console_ctx, "B001", region="east")
    config = str(write_config(console_ctx, tmp_path))
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert console_main(["user", "add", "--config", config, "--username", "wang", "--role", "enroller",
                         "--branches", "B001", "--display-name", "王", "--password-stdin"]) == 0
    assert "已创建用户 / user created: wang" in capsys.readouterr().out
    signed_in = client.post("/api/auth/login", json={"username": "wang", "password": PASSWORD})
    assert signed_in.status_code == 200 and signed_in.json()["user"]["branches"] == ["B001"]
    assert console_main(["user", "token", "--config", config, "--username", "wang", "--name", "script"]) == 0
    token = capsys.readouterr().out.strip()
    assert client.get("/api/me", headers=bearer(token)).json()["username"] == "wang"
    rows, dumped = audit_dump(console_ctx)
    assert (operator_name(), "user_create", "wang") in rows and token not in dumped and PASSWORD not in dumped


def test_cli_refuses_a_short_password_and_a_mismatch(console_ctx: ConsoleContext, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(console_ctx, tmp_path))
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert console_main(["user", "add", "--config", config, "--username", "wang", "--role", "admin", "--all",
                         "--password-stdin"]) == 1
    assert "password: at least 10 characters" in capsys.readouterr().err
    answers = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert console_main(["user", "add", "--config", config, "--username", "wang", "--role", "admin", "--all"]) == 1
    assert "两次输入的密码不一致" in capsys.readouterr().err
    with console_ctx.db.transaction() as session:
        assert session.scalars(select(User)).all() == []


def test_cli_has_no_password_flag() -> None:
    with pytest.raises(SystemExit):
        console_main(["user", "add", "--username", "wang", "--role", "admin", "--all", "--password", PASSWORD])


def test_ensure_admin_creates_the_first_admin_once(client: TestClient, console_ctx: ConsoleContext) -> None:
    assert ensure_admin(console_ctx, "admin", PASSWORD) is True
    assert ensure_admin(console_ctx, "admin", "a different password") is False  # not reset
    answer = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    assert answer.status_code == 200 and answer.json()["user"]["role"] == "admin"
    assert answer.json()["user"]["scope_kind"] == "all"
