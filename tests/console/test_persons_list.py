"""The persons list as the web page and scripts read it: one row per person with the page's columns (home
branch, scope, photo count, plates in the order they were added, consent, a thumbnail link for the roles that
may see faces), filtered by the caller's scope and by the search, newest change first. Reading a list writes
no audit row (a photo view is audited when its bytes are fetched), and the name search can use its index.

The rows are written straight into the tables here (the list reads them, whoever wrote them), so these tests
need no face engine."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, text

from console.context import ConsoleContext
from console.db import utcnow
from console.persons_cache import ListCache, list_version
from console.tables import AuditRow, Consent, Person, PersonBranch, Photo, Plate
from tests.console.conftest import add_branch, add_token, add_user


def _person(ctx: ConsoleContext, pid: str, name: str, home: int, *, minutes: int, external_id: str | None = None,
            scope: tuple[int, ...] = (), plates: tuple[str, ...] = (), photos: int = 0, consent: bool = False,
            role: str = "vip", tier: str = "gold", scope_kind: str = "branches") -> None:
    at = utcnow() - timedelta(minutes=100 - minutes)
    with ctx.db.transaction() as session:
        session.add(Person(id=pid, external_id=external_id, name=name, role=role, tier=tier, notes="",
                           home_branch_id=home, scope_kind=scope_kind, scope_region=None, version=minutes,
                           created_by="test", created_at=at, updated_at=at))
        session.flush()
        for b in scope:
            session.add(PersonBranch(person_id=pid, branch_id=b))
        for plate in plates:  # one at a time, so the ids follow the order given
            session.add(Plate(person_id=pid, plate=plate, kind="blue"))
            session.flush()
        for n in range(photos):
            session.add(Photo(id=f"{pid[:30]}p{n}", person_id=pid, blob_key=f"k{pid}{n}", sha256="0" * 64,
                              width=600, height=800, face_px=200.0, sharpness=40.0, embedding=b"x",
                              model_id="m", created_at=at + timedelta(seconds=10 - n)))
        if consent:
            session.add(Consent(person_id=pid, purpose="VIP greeting", given_on=date(2026, 1, 2), operator="op"))


def _bank(ctx: ConsoleContext) -> dict[str, Any]:
    a, b = add_branch(ctx, "SH001", name="上海分行"), add_branch(ctx, "BJ001", name="北京分行")
    c = add_branch(ctx, "GZ001")
    _person(ctx, "a" * 32, "张三", a, minutes=1, external_id="C-100", scope=(c, a), plates=("沪B22222", "沪A11111"),
            photos=2, consent=True)
    _person(ctx, "b" * 32, "李四", b, minutes=2, role="staff", tier="")
    _person(ctx, "c" * 32, "100%真", c, minutes=3, external_id="X_9", scope_kind="all", photos=1)
    return {"a": a, "b": b, "c": c}


def _bearer(ctx: ConsoleContext, name: str, role: str, **scope: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {add_token(ctx, add_user(ctx, name, role, **scope))}"}


def test_a_row_holds_the_page_columns_from_every_related_table(console_ctx: ConsoleContext,
                                                              client: TestClient) -> None:
    _bank(console_ctx)
    admin = _bearer(console_ctx, "admin", "admin")
    listed = client.get("/api/persons", headers=admin).json()
    assert (listed["total"], listed["total_exact"]) == (3, True)
    assert [p["name"] for p in listed["items"]] == ["100%真", "李四", "张三"]  # newest change first
    zhang = listed["items"][2]
    with console_ctx.db.transaction() as session:
        person = session.get_one(Person, "a" * 32)
        created, updated = person.created_at.isoformat(), person.updated_at.isoformat()
    assert zhang == {
        "id": "a" * 32, "external_id": "C-100", "name": "张三", "role": "vip", "tier": "gold",
        "home_branch": {"code": "SH001", "name": "上海分行"},
        "scope": {"kind": "branches", "region": None, "branches": ["GZ001", "SH001"]},
        "photo_count": 2, "plates": ["沪B22222", "沪A11111"], "has_consent": True,
        # the first photo is the oldest one
        "thumbnail_url": f"/api/persons/{'a' * 32}/photos/{'a' * 30}p1?thumb=1",
        "created_at": created, "updated_at": updated}
    li, other = listed["items"][1], listed["items"][0]
    assert (li["photo_count"], li["plates"], li["has_consent"], li["thumbnail_url"]) == (0, [], False, None)
    assert (li["scope"], other["scope"]) == ({"kind": "branches", "region": None, "branches": []},
                                             {"kind": "all", "region": None, "branches": []})
    # the detail's row is the same row (the detail's plates are objects)
    detail = client.get(f"/api/persons/{'a' * 32}", headers=admin).json()
    assert {k: v for k, v in detail.items() if k in zhang and k != "plates"} == {
        k: v for k, v in zhang.items() if k != "plates"}


def test_scope_filters_and_paging(console_ctx: ConsoleContext, client: TestClient) -> None:
    bank = _bank(console_ctx)
    mine = _bearer(console_ctx, "sh", "enroller", scope_kind="branches", branch_ids=(bank["a"], bank["c"]))
    it = _bearer(console_ctx, "it", "branch_it", scope_kind="region", region="east")

    def names(res: Any) -> list[str]:
        return [p["name"] for p in res.json()["items"]]

    assert names(client.get("/api/persons", headers=mine)) == ["100%真", "张三"]
    assert names(client.get("/api/persons", params={"role": "staff"}, headers=it)) == ["李四"]
    assert names(client.get("/api/persons", params={"branch": "gz001"}, headers=mine)) == ["100%真"]
    assert names(client.get("/api/persons", params={"tier": "gold", "limit": 1, "offset": 1}, headers=it)) == ["张三"]
    page = client.get("/api/persons", params={"limit": 1, "offset": 1}, headers=mine).json()
    assert ([p["name"] for p in page["items"]], page["total"]) == (["张三"], 2)
    assert client.get("/api/persons", headers=it).json()["items"][0]["thumbnail_url"] is None  # no faces for IT


def test_the_search_matches_name_customer_number_and_plate_literally(console_ctx: ConsoleContext,
                                                                     client: TestClient) -> None:
    _bank(console_ctx)
    admin = _bearer(console_ctx, "admin", "admin")

    def found(q: str) -> list[str]:
        return [p["name"] for p in client.get("/api/persons", params={"q": q}, headers=admin).json()["items"]]

    assert found("张") == ["张三"]
    assert found("c-10") == ["张三"]  # the customer number, any case
    assert found("a111") == ["张三"]  # a plate, upper-cased
    assert found("沪·B222") == ["张三"]  # the separator people type is ignored
    assert found("%") == ["100%真"]  # LIKE's wildcards are literal
    assert found("_") == ["100%真"]
    assert found("nobody") == []


def test_a_write_shows_in_the_next_list_and_listing_writes_no_audit_row(console_ctx: ConsoleContext,
                                                                      client: TestClient) -> None:
    bank = _bank(console_ctx)
    admin = _bearer(console_ctx, "admin", "admin")

    def audit_rows() -> int:
        with console_ctx.db.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(AuditRow)) or 0)

    before = audit_rows()
    first = client.get("/api/persons", headers=admin).json()
    client.get("/api/persons", params={"q": "张"}, headers=admin)
    assert audit_rows() == before  # two photos listed, none viewed
    li = next(p for p in first["items"] if p["name"] == "李四")
    assert (li["plates"], li["has_consent"], li["photo_count"]) == ([], False, 0)
    with console_ctx.db.transaction() as session:
        session.add(Plate(person_id="b" * 32, plate="京C33333", kind="blue"))
        session.add(Consent(person_id="b" * 32, purpose="p", given_on=date(2026, 1, 1), operator="op"))
        session.add(PersonBranch(person_id="b" * 32, branch_id=bank["a"]))
    li = next(p for p in client.get("/api/persons", headers=admin).json()["items"] if p["name"] == "李四")
    assert (li["plates"], li["has_consent"], li["scope"]["branches"]) == (["京C33333"], True, ["SH001"])


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_name_search_can_use_a_trigram_index(console_ctx: ConsoleContext) -> None:
    with console_ctx.db.transaction() as session:
        session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(session.scalars(text(
            "EXPLAIN SELECT id FROM persons WHERE lower(name) LIKE '%' || :q || '%'"), {"q": "客户00"}))
    assert "ix_persons_name_trgm" in plan, plan


def test_every_write_to_what_the_list_shows_bumps_its_version(console_ctx: ConsoleContext) -> None:
    bank = _bank(console_ctx)
    writes = [
        "UPDATE persons SET name = '张三丰' WHERE id = '" + "a" * 32 + "'",
        "DELETE FROM photos WHERE person_id = '" + "a" * 32 + "'",
        "UPDATE plates SET plate = '沪C00000' WHERE plate = '沪A11111'",
        "DELETE FROM consents",
        f"DELETE FROM person_branches WHERE branch_id = {bank['c']}",
        f"UPDATE branches SET name = '上海总行' WHERE id = {bank['a']}",
        "DELETE FROM persons WHERE id = '" + "b" * 32 + "'",
    ]
    with console_ctx.db.transaction() as session:
        seen = [list_version(session)]
    for statement in writes:
        with console_ctx.db.transaction() as session:
            session.execute(text(statement))
        with console_ctx.db.transaction() as session:
            seen.append(list_version(session))
        assert seen[-1] > seen[-2], statement
    with console_ctx.db.transaction() as session:  # what the list does not show leaves it
        session.execute(text("UPDATE users SET display_name = 'x'"))
        session.execute(text("INSERT INTO gallery_changes (person_id, kind, at) VALUES ('x', 'upsert', :at)"),
                        {"at": utcnow()})
    with console_ctx.db.transaction() as session:
        assert list_version(session) == seen[-1]


def test_a_kept_answer_is_served_until_a_write_and_never_across_scopes(console_ctx: ConsoleContext,
                                                                         client: TestClient) -> None:
    bank = _bank(console_ctx)
    admin = _bearer(console_ctx, "admin", "admin")
    it = _bearer(console_ctx, "it", "branch_it", scope_kind="branches", branch_ids=(bank["a"],))
    first = client.get("/api/persons", headers=admin)
    assert client.get("/api/persons", headers=admin).content == first.content
    assert len(ListCache.of(console_ctx.extras)) == 1  # the second answer was the kept one
    scoped = client.get("/api/persons", headers=it).json()
    assert [(p["name"], p["thumbnail_url"]) for p in scoped["items"]] == [("张三", None)]
    with console_ctx.db.transaction() as session:
        session.execute(text(f"UPDATE branches SET name = '上海总行' WHERE id = {bank['a']}"))
    zhang = client.get("/api/persons", headers=admin).json()["items"][2]
    assert zhang["home_branch"] == {"code": "SH001", "name": "上海总行"}


def test_a_kept_answer_costs_one_statement_that_reads_the_caller_and_the_version(console_ctx: ConsoleContext,
                                                                                  client: TestClient) -> None:
    _bank(console_ctx)
    admin = _bearer(console_ctx, "admin", "admin")
    first = client.get("/api/persons", headers=admin)
    statements: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    event.listen(console_ctx.db.engine, "before_cursor_execute", on_execute)
    try:
        kept = client.get("/api/persons", headers=admin)
    finally:
        event.remove(console_ctx.db.engine, "before_cursor_execute", on_execute)
    assert (kept.status_code, kept.content) == (200, first.content)
    # the caller and the list's version in one statement: one snapshot, and no BEGIN or COMMIT around it
    assert len(statements) == 1 and "api_tokens" in statements[0] and "persons_list_version" in statements[0]
