"""Branches and edges over the API and the CLI, on SQLite and PostgreSQL: field checks, scope, audit, and an
edge token that is shown once and stored only as its digest."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from console.branches import branch_by_code
from console.cli.main import main as console_main
from console.context import ConsoleContext
from console.errors import ConsoleError
from console.security import digest
from console.tables import AuditRow, Branch, Edge
from tests.console.conftest import add_branch, add_token, add_user


def bearer(ctx: ConsoleContext, username: str, role: str, **kw: object) -> dict[str, str]:
    uid = add_user(ctx, username, role, **kw)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {add_token(ctx, uid)}"}


def audit_rows(ctx: ConsoleContext, action: str) -> list[AuditRow]:
    with ctx.db.transaction() as session:
        return list(session.scalars(select(AuditRow).where(AuditRow.action == action).order_by(AuditRow.id)))


def test_admin_creates_a_branch_and_it_is_listed_and_audited(client: TestClient, console_ctx: ConsoleContext) -> None:
    admin = bearer(console_ctx, "root", "admin")
    r = client.post("/api/branches", json={"code": "bj001", "name": "北京分行", "region": "华北",
                                           "timezone": "Asia/Shanghai"}, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json() | {"id": 0} == {"id": 0, "code": "BJ001", "name": "北京分行", "region": "华北",
                                    "timezone": "Asia/Shanghai", "edges": []}
    listed = client.get("/api/branches", headers=admin).json()
    assert [b["code"] for b in listed] == ["BJ001"]
    [row] = audit_rows(console_ctx, "branch_create")
    assert (row.actor, row.object_id, row.branch_code) == ("root/token:script", "BJ001", "BJ001")


@pytest.mark.parametrize(("body", "error", "field"), [
    ({"code": "B", "name": "x", "region": "r"}, "invalid_branch", "code"),
    ({"code": "BJ 001", "name": "x", "region": "r"}, "invalid_branch", "code"),
    ({"code": "北京", "name": "x", "region": "r"}, "invalid_branch", "code"),
    ({"code": "A" * 33, "name": "x", "region": "r"}, "invalid_branch", "code"),
    ({"code": "BJ001", "name": " ", "region": "r"}, "invalid_branch", "name"),
    ({"code": "BJ001", "name": "x", "region": "r", "timezone": "Asia/Beijing"}, "invalid_timezone", "timezone"),
    ({"code": "BJ001", "name": "x", "region": "r", "timezone": "../../etc/passwd"}, "invalid_timezone", "timezone"),
])
def test_a_bad_field_is_refused_with_422_naming_it_and_nothing_is_written(
        client: TestClient, console_ctx: ConsoleContext, body: dict[str, str], error: str, field: str) -> None:
    admin = bearer(console_ctx, "root", "admin")
    r = client.post("/api/branches", json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == error and r.json()["field"] == field
    assert client.get("/api/branches", headers=admin).json() == []
    assert audit_rows(console_ctx, "branch_create") == []


def test_a_duplicate_code_is_409(client: TestClient, console_ctx: ConsoleContext) -> None:
    admin = bearer(console_ctx, "root", "admin")
    body = {"code": "SH-01", "name": "上海分行", "region": "华东", "timezone": "Asia/Shanghai"}
    assert client.post("/api/branches", json=body, headers=admin).status_code == 201
    r = client.post("/api/branches", json=body | {"code": "sh-01", "name": "另一个"}, headers=admin)
    assert r.status_code == 409 and r.json()["error"] == "duplicate"
    assert [b["name"] for b in client.get("/api/branches", headers=admin).json()] == ["上海分行"]


def test_only_an_admin_creates_or_edits_branches(client: TestClient, console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "BJ001")
    enroller = bearer(console_ctx, "enr", "enroller")
    body = {"code": "SH001", "name": "x", "region": "r"}
    assert client.post("/api/branches", json=body, headers=enroller).status_code == 403
    assert client.patch("/api/branches/BJ001", json={"name": "y"}, headers=enroller).status_code == 403


def test_patch_changes_the_given_fields_checks_the_zone_and_audits_the_change(
        client: TestClient, console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "BJ001", region="华北")
    admin = bearer(console_ctx, "root", "admin")
    r = client.patch("/api/branches/bj001", json={"name": "北京分行营业部", "timezone": "Asia/Urumqi"}, headers=admin)
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["region"], r.json()["timezone"]) == ("北京分行营业部", "华北", "Asia/Urumqi")
    bad = client.patch("/api/branches/BJ001", json={"timezone": "Mars/Olympus"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_timezone"
    assert client.patch("/api/branches/NOPE", json={"name": "x"}, headers=admin).status_code == 404
    [row] = audit_rows(console_ctx, "branch_update")
    assert row.detail == {"changed": {"name": ["BJ001 支行", "北京分行营业部"],
                                      "timezone": ["Asia/Shanghai", "Asia/Urumqi"]}}


def test_the_list_holds_only_the_callers_branches_with_their_edges(client: TestClient,
                                                                    console_ctx: ConsoleContext) -> None:
    a = add_branch(console_ctx, "AAA", region="east")
    add_branch(console_ctx, "BBB", region="west")
    admin = bearer(console_ctx, "root", "admin")
    assert client.post("/api/branches/AAA/edges", json={"name": "box-1"}, headers=admin).status_code == 201
    it = bearer(console_ctx, "it_a", "branch_it", scope_kind="branches", branch_ids=(a,))
    listed = client.get("/api/branches", headers=it).json()
    assert [b["code"] for b in listed] == ["AAA"]
    [edge] = listed[0]["edges"]
    assert edge["name"] == "box-1" and edge["last_seen_at"] is None and "token" not in edge
    regional = bearer(console_ctx, "rm", "regional_manager", scope_kind="region", region="west")
    assert [b["code"] for b in client.get("/api/branches", headers=regional).json()] == ["BBB"]
    assert [b["code"] for b in client.get("/api/branches", headers=admin).json()] == ["AAA", "BBB"]


def test_branch_it_registers_an_edge_only_at_a_branch_in_scope(client: TestClient,
                                                                console_ctx: ConsoleContext) -> None:
    a = add_branch(console_ctx, "AAA")
    add_branch(console_ctx, "BBB")
    it = bearer(console_ctx, "it_a", "branch_it", scope_kind="branches", branch_ids=(a,))
    refused = client.post("/api/branches/BBB/edges", json={"name": "box-1"}, headers=it)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert client.post("/api/branches/AAA/edges", json={"name": "box-1"}, headers=it).status_code == 201
    enroller = bearer(console_ctx, "enr", "enroller")
    assert client.post("/api/branches/AAA/edges", json={"name": "box-2"}, headers=enroller).status_code == 403
    with console_ctx.db.transaction() as session:
        assert [(e.name, e.branch_id) for e in session.scalars(select(Edge))] == [("box-1", a)]
    assert len(audit_rows(console_ctx, "edge_register")) == 1


def test_the_edge_token_is_shown_once_and_only_its_digest_is_stored(client: TestClient,
                                                                     console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "AAA")
    admin = bearer(console_ctx, "root", "admin")
    r = client.post("/api/branches/AAA/edges", json={"name": "box-1"}, headers=admin)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert len(token) >= 40
    with console_ctx.db.transaction() as session:
        edge = session.scalars(select(Edge)).one()
        assert edge.token_hash == digest(token) and token not in edge.token_hash
        audit_text = str([row.detail for row in session.scalars(select(AuditRow))])
    assert token not in audit_text
    assert token not in client.get("/api/branches", headers=admin).text
    again = client.post("/api/branches/AAA/edges", json={"name": "box-1"}, headers=admin)
    assert again.status_code == 409 and again.json()["error"] == "duplicate"


def test_branch_by_code_finds_a_branch_or_says_unknown_branch(console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "BJ001")
    with console_ctx.db.transaction() as session:
        assert branch_by_code(session, " bj001 ").code == "BJ001"
        with pytest.raises(ConsoleError) as caught:
            branch_by_code(session, "SH001")
    assert (caught.value.code, caught.value.status) == ("unknown_branch", 422)


def test_the_cli_adds_and_lists_branches(console_ctx: ConsoleContext, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "console.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(console_ctx.config.data_dir),
                                      "database": {"url": console_ctx.config.database_url}}), encoding="utf-8")
    args = ["branch", "add", "--config", str(config), "--code", "BJ001", "--name", "北京分行", "--region", "华北",
            "--timezone", "Asia/Shanghai"]
    assert console_main(args) == 0
    assert console_main(args) == 1  # the same code again
    assert "BJ001 already exists" in capsys.readouterr().err
    bad = ["branch", "add", "--config", str(config), "--code", "SH001", "--name", "上海", "--region", "华东",
           "--timezone", "Asia/Beijing"]
    assert console_main(bad) == 1
    assert "Asia/Beijing" in capsys.readouterr().err
    assert console_main(["branch", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "BJ001\t北京分行\t华北\tAsia/Shanghai\t0" in out and "SH001" not in out
    with console_ctx.db.transaction() as session:
        assert [b.code for b in session.scalars(select(Branch))] == ["BJ001"]
    [row] = audit_rows(console_ctx, "branch_create")
    assert row.actor.startswith("cli") and row.actor_role == "system"
