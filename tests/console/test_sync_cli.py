"""``smartbranch console edge code|list|revoke``: the same codes and revocation as the API, at the machine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from console.cli.main import main as console_main
from console.context import ConsoleContext
from console.tables import AuditRow
from tests.console.conftest import add_branch


def test_a_code_from_the_cli_registers_a_box_and_the_cli_revokes_it(client: TestClient, console_ctx: ConsoleContext,
                                                                    tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    add_branch(console_ctx, "BJ001")
    config = tmp_path / "console.yaml"
    config.write_text(json.dumps({"data_dir": str(console_ctx.config.data_dir),
                                  "database": {"url": console_ctx.config.database_url}}), encoding="utf-8")
    assert console_main(["edge", "code", "--config", str(config), "--branch", "bj001", "--name", "box-1"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"--code ([0-9A-Z]{4}-[0-9A-Z]{4})", out)
    assert found is not None, out
    answer = client.post("/api/sync/register", json={"code": found.group(1), "model_id": "m", "software": "1"})
    assert answer.status_code == 201, answer.text
    edge_id, token = answer.json()["edge_id"], answer.json()["token"]
    assert console_main(["edge", "list", "--config", str(config)]) == 0
    assert re.search(rf"^{edge_id}\tBJ001\tbox-1\t-\t-\t有效/active$", capsys.readouterr().out, re.M)
    assert console_main(["edge", "revoke", "--config", str(config), "--id", str(edge_id)]) == 0
    status = client.post("/api/sync/status", json={"gallery_version": 0}, headers={"Authorization": f"Bearer {token}"})
    assert status.status_code == 401
    assert console_main(["edge", "code", "--config", str(config), "--branch", "XX999", "--name", "b"]) == 1
    assert "no branch XX999" in capsys.readouterr().err
    with console_ctx.db.transaction() as session:
        rows = list(session.scalars(select(AuditRow).where(AuditRow.action.in_(["edge_code_create", "edge_revoke"]))))
    assert [r.action for r in rows] == ["edge_code_create", "edge_revoke"] and rows[0].actor.startswith("cli")
