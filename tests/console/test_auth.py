"""Sign-in: the cookies and their flags, wrong passwords, the lock-out (per name and per address), CSRF on
session calls, API tokens, sign-out; on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import timedelta
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from console.config import AuthConfig, ServerConfig
from console.context import ConsoleContext
from console.db import utcnow
from console.security import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from console.tables import AuditRow, LoginAttempt, User, WebSession
from tests.console.conftest import PASSWORD, add_token, add_user

WRONG = "not the password at all"


def login(client: TestClient, username: str, password: str = PASSWORD) -> tuple[int, dict[str, object]]:
    answer = client.post("/api/auth/login", json={"username": username, "password": password})
    return answer.status_code, answer.json()


def set_cookies(answer_headers: list[str]) -> dict[str, str]:
    """Each Set-Cookie header by cookie name, as sent (flags included)."""
    found: dict[str, str] = {}
    for header in answer_headers:
        cookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            found[name] = header
    return found


def flags(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(";")[1:]}


def with_auth(ctx: ConsoleContext, **settings: float) -> None:
    ctx.config = ctx.config.model_copy(update={"auth": AuthConfig(**settings)})  # type: ignore[arg-type]


def test_login_sets_an_httponly_session_cookie_and_a_readable_csrf_cookie(client: TestClient,
                                                                          console_ctx: ConsoleContext) -> None:
    add_user(console_ctx, "alice", "enroller")
    answer = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["user"]["username"] == "alice" and body["user"]["role"] == "enroller"
    cookies = set_cookies(answer.headers.get_list("set-cookie"))
    session_flags, csrf_flags = flags(cookies[SESSION_COOKIE]), flags(cookies[CSRF_COOKIE])
    assert {"httponly", "samesite=strict", "path=/"} <= session_flags
    assert {"samesite=strict", "path=/"} <= csrf_flags and "httponly" not in csrf_flags
    assert "secure" not in session_flags  # server.secure_cookies is off by default (plain HTTP in a test)
    assert client.cookies[CSRF_COOKIE] == body["csrf_token"]
    assert "max-age=43200" in session_flags  # auth.session_hours (12)
    me = client.get("/api/me")
    assert me.status_code == 200
    assert me.json() == {"id": body["user"]["id"], "username": "alice", "display_name": "alice", "role": "enroller",
                         "scope_kind": "all", "scope_region": None, "branches": []}
    with console_ctx.db.transaction() as session:
        web = session.scalars(select(WebSession)).one()
        assert web.id != client.cookies[SESSION_COOKIE]  # only the cookie's hash is stored
        hours = (web.expires_at - web.created_at).total_seconds() / 3600
        assert hours == pytest.approx(12, abs=0.01)


def test_cookies_are_secure_when_the_config_says_so(client: TestClient, console_ctx: ConsoleContext) -> None:
    add_user(console_ctx, "alice", "enroller")
    console_ctx.config = console_ctx.config.model_copy(update={"server": ServerConfig(secure_cookies=True)})
    answer = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert answer.status_code == 200
    cookies = set_cookies(answer.headers.get_list("set-cookie"))
    assert "secure" in flags(cookies[SESSION_COOKIE]) and "secure" in flags(cookies[CSRF_COOKIE])


def test_wrong_password_and_unknown_user_get_the_same_401(client: TestClient, console_ctx: ConsoleContext) -> None:
    add_user(console_ctx, "alice", "enroller")
    wrong = client.post("/api/auth/login", json={"username": "alice", "password": WRONG})
    unknown = client.post("/api/auth/login", json={"username": "nobody", "password": WRONG})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"] == "bad_credentials"
    assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")
    assert client.get("/api/me").status_code == 401


def test_a_disabled_user_cannot_sign_in(client: TestClient, console_ctx: ConsoleContext) -> None:
    user_id = add_user(console_ctx, "alice", "enroller")
    with console_ctx.db.transaction() as session:
        session.get_one(User, user_id).active = False
    status, body = login(client, "alice")
    assert (status, body["error"]) == (401, "bad_credentials")


def test_the_sixth_failure_locks_the_name_even_with_the_right_password_until_the_lockout_ends(
        client: TestClient, console_ctx: ConsoleContext) -> None:
    with_auth(console_ctx, max_failures=5, failure_window_s=60, lockout_s=1.5)
    add_user(console_ctx, "alice", "enroller")
    for _ in range(5):
        assert login(client, "alice", WRONG)[0] == 401
    sixth = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert sixth.status_code == 429, sixth.text
    assert sixth.json()["error"] == "locked"
    assert int(sixth.headers["retry-after"]) == sixth.json()["retry_after"] >= 1
    assert SESSION_COOKIE not in sixth.headers.get("set-cookie", "")
    status, _ = login(client, "alice")  # still locked (refused before any password check)
    assert status == 429
    with console_ctx.db.transaction() as session:
        locked_until = session.scalars(select(User.locked_until).where(User.username == "alice")).one()
    assert locked_until is not None
    time.sleep(max(0.0, (locked_until - utcnow()).total_seconds()) + 0.05)
    status, body = login(client, "alice")
    assert status == 200, body
    with console_ctx.db.transaction() as session:
        attempts = session.scalars(select(LoginAttempt.ok).order_by(LoginAttempt.id)).all()
        actions = session.scalars(select(AuditRow.action).order_by(AuditRow.id)).all()
    assert attempts == [False] * 7 + [True]  # every attempt is stored, refused ones too
    assert actions == ["login_failed"] * 5 + ["login_locked"] * 2 + ["login_ok"]


def test_an_unknown_name_is_locked_like_a_real_one(client: TestClient, console_ctx: ConsoleContext) -> None:
    with_auth(console_ctx, max_failures=5, failure_window_s=60, lockout_s=300)
    add_user(console_ctx, "alice", "enroller")
    answers = {}
    for name in ("alice", "nobody"):
        for _ in range(5):
            assert login(client, name, WRONG)[0] == 401
        answer = client.post("/api/auth/login", json={"username": name, "password": WRONG})
        answers[name] = (answer.status_code, answer.json()["error"], answer.headers["retry-after"])
    assert answers["alice"] == answers["nobody"] == (429, "locked", "300")


def test_one_address_trying_many_names_is_locked(client: TestClient, console_ctx: ConsoleContext) -> None:
    with_auth(console_ctx, max_failures=5, max_address_failures=3, failure_window_s=60, lockout_s=300)
    add_user(console_ctx, "alice", "enroller")
    for name in ("bob", "carol", "dave"):
        assert login(client, name, WRONG)[0] == 401
    status, body = login(client, "alice")  # right password, a fresh name, but the same address
    assert (status, body["error"]) == (429, "locked")
    with console_ctx.db.transaction() as session:
        row = session.scalars(select(AuditRow).where(AuditRow.action == "login_locked")).one()
    assert (row.object_type, row.object_id) == ("address", "testclient")


def test_a_success_starts_the_name_count_again(client: TestClient, console_ctx: ConsoleContext) -> None:
    with_auth(console_ctx, max_failures=3, failure_window_s=60, lockout_s=300)
    add_user(console_ctx, "alice", "enroller")
    for _ in range(2):
        assert login(client, "alice", WRONG)[0] == 401
    assert login(client, "alice")[0] == 200
    for _ in range(3):
        assert login(client, "alice", WRONG)[0] == 401
    assert login(client, "alice")[0] == 429


def test_sign_in_attempts_are_audited_without_the_password(client: TestClient, console_ctx: ConsoleContext) -> None:
    add_user(console_ctx, "alice", "enroller")
    login(client, "alice", WRONG)
    login(client, "alice")
    with console_ctx.db.transaction() as session:
        rows = session.scalars(select(AuditRow).order_by(AuditRow.id)).all()
        dumped = repr([(r.actor, r.action, r.object_id, r.detail) for r in rows])
    assert [(r.actor, r.actor_role, r.action) for r in rows] == [("alice", "enroller", "login_failed"),
                                                                ("alice", "enroller", "login_ok")]
    assert rows[0].ip == "testclient"
    assert WRONG not in dumped and PASSWORD not in dumped


def test_a_session_post_needs_the_csrf_token(client: TestClient, console_ctx: ConsoleContext) -> None:
    add_user(console_ctx, "root", "admin")
    _, body = login(client, "root")
    new_user = {"username": "bob", "password": "a long enough password", "role": "enroller", "scope_kind": "all"}
    refused = client.post("/api/users", json=new_user)
    assert (refused.status_code, refused.json()["error"]) == (403, "csrf")
    wrong = client.post("/api/users", json=new_user, headers={CSRF_HEADER: "not-the-token"})
    assert (wrong.status_code, wrong.json()["error"]) == (403, "csrf")
    made = client.post("/api/users", json=new_user, headers={CSRF_HEADER: str(body["csrf_token"])})
    assert made.status_code == 201, made.text
    with console_ctx.db.transaction() as session:
        assert session.scalars(select(User.username).order_by(User.username)).all() == ["bob", "root"]


def test_a_bearer_token_needs_no_csrf_and_a_revoked_one_is_refused(client: TestClient,
                                                                   console_ctx: ConsoleContext) -> None:
    admin_id = add_user(console_ctx, "root", "admin")
    token = add_token(console_ctx, admin_id)
    bearer = {"Authorization": f"Bearer {token}"}
    made = client.post("/api/users", headers=bearer, json={"username": "bob", "password": "a long enough password",
                                                           "role": "enroller", "scope_kind": "all"})
    assert made.status_code == 201, made.text
    tokens = client.get(f"/api/users/{admin_id}/tokens", headers=bearer).json()
    assert [t["name"] for t in tokens] == ["script"] and tokens[0]["last_used_at"] is not None
    assert client.delete(f"/api/tokens/{tokens[0]['id']}", headers=bearer).status_code == 204
    after = client.get("/api/me", headers=bearer)
    assert (after.status_code, after.json()["error"]) == (401, "unauthorized")


def test_logout_ends_the_session_and_clears_the_cookies(client: TestClient, console_ctx: ConsoleContext) -> None:
    add_user(console_ctx, "alice", "enroller")
    _, body = login(client, "alice")
    cookie = client.cookies[SESSION_COOKIE]
    assert client.post("/api/auth/logout").status_code == 403  # a POST: the CSRF token is needed here too
    out = client.post("/api/auth/logout", headers={CSRF_HEADER: str(body["csrf_token"])})
    assert out.status_code == 204
    cleared = set_cookies(out.headers.get_list("set-cookie"))
    assert {SESSION_COOKIE, CSRF_COOKIE} <= cleared.keys()
    assert "max-age=0" in flags(cleared[SESSION_COOKIE])
    client.cookies.set(SESSION_COOKIE, cookie)  # replaying the old cookie does not work either
    assert client.get("/api/me").status_code == 401
    with console_ctx.db.transaction() as session:
        assert session.scalars(select(WebSession)).all() == []


def test_an_expired_session_is_refused(client: TestClient, console_ctx: ConsoleContext) -> None:
    from console.security import start_session

    user_id = add_user(console_ctx, "alice", "enroller")
    with console_ctx.db.transaction() as session:
        cookie, _ = start_session(session, session.get_one(User, user_id), utcnow() - timedelta(seconds=1))
    client.cookies.set(SESSION_COOKIE, cookie)
    answer = client.get("/api/me")
    assert (answer.status_code, answer.json()["error"]) == (401, "unauthorized")


def test_two_console_replicas_share_the_count(client: TestClient, console_ctx: ConsoleContext) -> None:
    from console.app import create_app

    with_auth(console_ctx, max_failures=5, failure_window_s=60, lockout_s=300)
    add_user(console_ctx, "alice", "enroller")
    other_ctx = ConsoleContext.open(console_ctx.config)  # a second replica on the same database
    try:
        with TestClient(create_app(other_ctx.config, context=other_ctx)) as other:
            for replica in (client, other, client, other, client):
                assert login(replica, "alice", WRONG)[0] == 401
            assert login(other, "alice")[0] == 429
    finally:
        other_ctx.close()


def test_an_admin_setting_a_new_password_lifts_the_lockout(client: TestClient, console_ctx: ConsoleContext) -> None:
    with_auth(console_ctx, max_failures=5, failure_window_s=60, lockout_s=300)
    alice = add_user(console_ctx, "alice", "enroller")
    admin = {"Authorization": f"Bearer {add_token(console_ctx, add_user(console_ctx, 'root', 'admin'))}"}
    for _ in range(6):
        login(client, "alice", WRONG)
    assert login(client, "alice")[0] == 429
    fresh = "a brand new password"
    assert client.patch(f"/api/users/{alice}", headers=admin, json={"password": fresh}).status_code == 200
    assert login(client, "alice", fresh)[0] == 200


def test_an_address_lockout_ends_and_its_count_starts_again(client: TestClient, console_ctx: ConsoleContext) -> None:
    from datetime import datetime

    with_auth(console_ctx, max_failures=5, max_address_failures=3, failure_window_s=60, lockout_s=1.0)
    add_user(console_ctx, "alice", "enroller")
    for name in ("bob", "carol", "dave"):
        assert login(client, name, WRONG)[0] == 401
    assert login(client, "alice")[0] == 429
    with console_ctx.db.transaction() as session:
        detail = session.scalars(select(AuditRow.detail).where(AuditRow.action == "login_locked")).one()
    until = datetime.fromisoformat(detail["until"])
    time.sleep(max(0.0, (until - utcnow()).total_seconds()) + 0.05)
    assert login(client, "alice")[0] == 200
