"""A script's API token resolves to its user's role and scope on every request, in one query: a scope that
changes, a branch added to a region, a revoke or a disabled user, written by any console process (or the CLI),
counts from the next request."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from console.context import ConsoleContext
from console.db import utcnow
from console.security import digest
from console.tables import ApiToken, User, UserBranch
from tests.console.conftest import add_branch, add_token, add_user
from tests.console.test_persons_list import _person


def _names(client: TestClient, headers: dict[str, str]) -> list[str]:
    res = client.get("/api/persons", headers=headers)
    assert res.status_code == 200, res.text
    return sorted(p["name"] for p in res.json()["items"])


def test_a_tokens_scope_follows_its_user_from_the_next_request(console_ctx: ConsoleContext,
                                                               client: TestClient) -> None:
    east, west = add_branch(console_ctx, "SH001", region="east"), add_branch(console_ctx, "CD001", region="west")
    _person(console_ctx, "a" * 32, "东", east, minutes=1)
    _person(console_ctx, "b" * 32, "西", west, minutes=2)
    regional = {"Authorization": "Bearer " + add_token(console_ctx, add_user(
        console_ctx, "r", "enroller", scope_kind="region", region="east"))}
    user_id = add_user(console_ctx, "b", "compliance", scope_kind="branches", branch_ids=(west,))
    listed = {"Authorization": "Bearer " + add_token(console_ctx, user_id)}
    nothing = {"Authorization": "Bearer " + add_token(console_ctx, add_user(
        console_ctx, "n", "enroller", scope_kind="branches"))}
    assert (_names(client, regional), _names(client, listed), _names(client, nothing)) == (["东"], ["西"], [])

    third = add_branch(console_ctx, "HZ001", region="east")  # a branch added to the region later is in scope
    _person(console_ctx, "c" * 32, "杭", third, minutes=3)
    assert _names(client, regional) == sorted(["杭", "东"])
    with console_ctx.db.transaction() as session:
        session.add(UserBranch(user_id=user_id, branch_id=east))
    assert _names(client, listed) == sorted(["东", "西"])
    with console_ctx.db.transaction() as session:
        session.execute(update(User).where(User.id == user_id).values(scope_kind="all"))
    assert _names(client, listed) == sorted(["东", "西", "杭"])


def test_a_revoke_or_a_disabled_user_written_elsewhere_counts_at_the_next_request(console_ctx: ConsoleContext,
                                                                                   client: TestClient) -> None:
    user_id = add_user(console_ctx, "script", "admin")
    first, second = add_token(console_ctx, user_id, "one"), add_token(console_ctx, user_id, "two")
    for token in (first, second):
        assert client.get("/api/persons", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with console_ctx.db.transaction() as session:
        used = session.query(ApiToken).filter_by(token_hash=digest(first)).one().last_used_at
        assert used is not None and utcnow() - used < timedelta(minutes=1)  # the last use is kept
        session.execute(update(ApiToken).where(ApiToken.token_hash == digest(first)).values(revoked_at=utcnow()))
    res = client.get("/api/persons", headers={"Authorization": f"Bearer {first}"})
    assert (res.status_code, res.json()["error"]) == (401, "unauthorized")
    assert client.get("/api/persons", headers={"Authorization": f"Bearer {second}"}).status_code == 200
    with console_ctx.db.transaction() as session:
        session.execute(update(User).where(User.id == user_id).values(active=False))
    assert client.get("/api/persons", headers={"Authorization": f"Bearer {second}"}).status_code == 401
    assert client.get("/api/persons", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
