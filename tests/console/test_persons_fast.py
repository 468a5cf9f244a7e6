"""The persons list's short way (console.persons_fast): a kept answer for an API token goes out before the app,
the same bytes and headers the endpoint gives, and it gives way to the full endpoint for everything it does not
answer itself: a revoke, a disabled user, a scope or role change written elsewhere still count from the next
request. The answer cache computes a key several requests ask at once only once, and a filter's total once
for all its pages."""

from __future__ import annotations

import gzip
import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

import console.api.persons as persons_api
import console.persons_query as persons_query
from console.context import ConsoleContext
from console.db import utcnow
from console.persons_cache import Answer, ListCache
from console.persons_fast import list_filter
from console.persons_query import PersonFilter
from console.security import digest
from console.tables import ApiToken, User, UserBranch
from tests.console.conftest import add_branch, add_token, add_user
from tests.console.test_persons_list import _person


def _many(ctx: ConsoleContext, branch: int, count: int) -> None:
    for n in range(count):
        _person(ctx, f"{n:032x}", f"客户{n:03d}", branch, minutes=n)


def _spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_kept_answer_goes_out_before_the_endpoint_with_the_same_bytes_and_headers(
        console_ctx: ConsoleContext, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    _many(console_ctx, add_branch(console_ctx, "SH001"), 30)  # long enough to be gzipped
    token = {"Authorization": f"Bearer {add_token(console_ctx, add_user(console_ctx, 's', 'admin'))}"}
    endpoint = _spy(monkeypatch, persons_api, "_list_body")
    full = client.get("/api/persons?limit=20", headers=token)
    plain = client.get("/api/persons?limit=20", headers={**token, "Accept-Encoding": "identity"})
    zipped = client.get("/api/persons?limit=20", headers={**token, "Accept-Encoding": "gzip"})
    assert len(endpoint) == 1  # the two later requests never reached the endpoint
    assert full.status_code == plain.status_code == zipped.status_code == 200
    assert full.content == plain.content == zipped.content and len(full.json()["items"]) == 20
    assert (full.headers["content-encoding"], zipped.headers["content-encoding"]) == ("gzip", "gzip")
    assert "content-encoding" not in plain.headers
    for res in (full, plain, zipped):
        assert res.headers["content-type"] == "application/json"
        assert res.headers["vary"] == "Accept-Encoding"
    tiny = client.get("/api/persons?limit=1&q=none-such", headers=token)
    kept = client.get("/api/persons?limit=1&q=none-such", headers=token)
    assert (tiny.content, "content-encoding" in kept.headers) == (kept.content, False)  # under gzip's minimum


def test_the_short_way_gives_way_to_every_change_of_the_caller(console_ctx: ConsoleContext,
                                                                client: TestClient) -> None:
    east, west = add_branch(console_ctx, "SH001"), add_branch(console_ctx, "CD001", region="west")
    _person(console_ctx, "a" * 32, "东", east, minutes=1)
    _person(console_ctx, "b" * 32, "西", west, minutes=2)
    user_id = add_user(console_ctx, "script", "enroller", scope_kind="branches", branch_ids=(east,))
    token = add_token(console_ctx, user_id)
    bearer = {"Authorization": f"Bearer {token}"}

    def names() -> list[str]:
        first, kept = client.get("/api/persons", headers=bearer), client.get("/api/persons", headers=bearer)
        assert first.status_code == kept.status_code == 200 and first.content == kept.content
        return sorted(p["name"] for p in kept.json()["items"])

    assert names() == ["东"]
    with console_ctx.db.transaction() as session:
        session.add(UserBranch(user_id=user_id, branch_id=west))
    assert names() == ["东", "西"]
    with console_ctx.db.transaction() as session:
        session.execute(update(User).where(User.id == user_id).values(role="regional_manager"))
    assert client.get("/api/persons", headers=bearer).status_code == 403
    with console_ctx.db.transaction() as session:
        session.execute(update(User).where(User.id == user_id).values(role="enroller", active=False))
    assert client.get("/api/persons", headers=bearer).status_code == 401
    with console_ctx.db.transaction() as session:
        session.execute(update(User).where(User.id == user_id).values(active=True))
    assert names() == ["东", "西"]
    with console_ctx.db.transaction() as session:
        session.execute(update(ApiToken).where(ApiToken.token_hash == digest(token)).values(revoked_at=utcnow()))
    res = client.get("/api/persons", headers=bearer)
    assert (res.status_code, res.json()["error"]) == (401, "unauthorized")


def test_a_token_due_its_last_use_write_takes_the_full_way(console_ctx: ConsoleContext, client: TestClient) -> None:
    token = add_token(console_ctx, add_user(console_ctx, "script", "admin"))
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/persons", headers=bearer).status_code == 200
    old = utcnow() - timedelta(minutes=5)
    with console_ctx.db.transaction() as session:
        session.execute(update(ApiToken).where(ApiToken.token_hash == digest(token)).values(last_used_at=old))
    assert client.get("/api/persons", headers=bearer).status_code == 200
    with console_ctx.db.transaction() as session:
        used = session.query(ApiToken).filter_by(token_hash=digest(token)).one().last_used_at
    assert used is not None and used > old + timedelta(minutes=4)


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=abc", "limit=", "offset=-1", "q=" + "x" * 129,
                                   "role=" + "v" * 9, "limit=5&limit=6"])
def test_a_query_the_short_way_does_not_read_as_the_endpoint_does_is_left_to_it(
        console_ctx: ConsoleContext, client: TestClient, query: str) -> None:
    bearer = {"Authorization": f"Bearer {add_token(console_ctx, add_user(console_ctx, 'script', 'admin'))}"}
    kept = {k: client.get(f"/api/persons?{query}", headers=bearer) for k in ("first", "again")}
    assert kept["first"].status_code == kept["again"].status_code
    assert kept["first"].content == kept["again"].content
    if list_filter(query.encode()) is None:
        assert query == "limit=5&limit=6" or kept["first"].status_code == 422


def test_list_filter_reads_the_query_as_the_endpoint_does() -> None:
    assert list_filter(b"") == PersonFilter()
    assert list_filter(b"q=+%E5%BC%A0+&branch=+sh001&limit=200&offset=7&role=vip&tier=gold&x=1") == \
        PersonFilter("张", "vip", "gold", "SH001", 200, 7)
    for refused in (b"limit=0", b"limit=%EF%BC%95", b"offset=1e3", b"q=%FF", b"q=a&q=b"):
        assert list_filter(refused) is None, refused


def test_one_answer_asked_at_once_is_computed_once() -> None:
    cache = ListCache()
    assert cache.claim(3, "k") is None  # the first computes it
    waiting = cache.claim(3, "k")
    assert isinstance(waiting, threading.Event) and not waiting.is_set()
    assert cache.claim(3, "other") is None  # another key is claimed on its own
    cache.put(3, "k", Answer.of(b"{}"))
    assert waiting.is_set() and cache.claim(3, "k") == Answer(b"{}")
    failed = cache.claim(4, "k")  # a newer version is a new key
    assert failed is None
    waiting = cache.claim(4, "k")
    assert isinstance(waiting, threading.Event)
    cache.release(4, "k")  # the computing request failed: the waiter goes on and computes it itself
    assert waiting.is_set() and cache.claim(4, "k") is None
    cache.put(2, "old", Answer(b"[]"))  # computed from older data than what is kept: dropped
    assert cache.get(2, "old") is None and cache.get(4, "old") is None


def test_an_answer_kept_gzipped_is_the_body_gzipped() -> None:
    body = b'{"items":[' + b'{"name":"x"},' * 200 + b'{}]}'
    assert gzip.decompress(Answer.of(body).gzipped or b"") == body
    assert Answer.of(b"{}").gzipped is None


def test_a_filters_total_is_counted_once_for_all_its_pages(console_ctx: ConsoleContext, client: TestClient,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    branch = add_branch(console_ctx, "SH001")
    _many(console_ctx, branch, 12)
    bearer = {"Authorization": f"Bearer {add_token(console_ctx, add_user(console_ctx, 'script', 'admin'))}"}
    counts = _spy(monkeypatch, persons_query, "capped_count")
    pages = [client.get(f"/api/persons?limit=5&offset={o}", headers=bearer).json() for o in (0, 5, 10)]
    assert [len(p["items"]) for p in pages] == [5, 5, 2] and {p["total"] for p in pages} == {12}
    assert len(counts) == 1
    assert client.get("/api/persons?limit=5&q=客户00", headers=bearer).json()["total"] == 10  # another filter
    assert len(counts) == 2
    _person(console_ctx, "f" * 32, "新人", branch, minutes=99)  # a write: counted again
    assert client.get("/api/persons?limit=5&offset=5", headers=bearer).json()["total"] == 13
    assert len(counts) == 3
