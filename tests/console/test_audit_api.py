"""The audit API: newest first with a total, filters, paging; an admin reads all, compliance only the rows of
branches in their scope, every other role nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from console.audit import record
from console.context import ConsoleContext
from tests.console.conftest import add_branch, add_token, add_user

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
# (minutes after T0, actor, action, object_id, branch)
ROWS = [(0, "li", "enrol", "p1", "B001"), (1, "li", "photo_view", "p1", "B001"), (2, "wang", "enrol", "p2", "B002"),
        (3, "root", "user_create", "li", None), (4, "li/token:nightly", "enrol", "p3", "B001"),
        (5, "zhao", "photo_view", "p2", "B002")]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def seeded(console_ctx: ConsoleContext) -> dict[str, int]:
    """Two branches in two regions and the rows of ROWS, written at known times."""
    ids = {"B001": add_branch(console_ctx, "B001", region="east"), "B002": add_branch(console_ctx, "B002",
                                                                                      region="west")}
    with console_ctx.db.transaction() as session:
        for minutes, actor, action, object_id, branch in ROWS:
            row = record(session, actor, action, object_type="person", object_id=object_id, branch_code=branch,
                         detail={"n": minutes})
            row.at = T0 + timedelta(minutes=minutes)
    return ids


def get(client: TestClient, headers: dict[str, str], **params: object) -> dict[str, object]:
    answer = client.get("/api/audit", headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def minutes(body: dict[str, object]) -> list[int]:
    return [item["detail"]["n"] for item in body["items"]]  # type: ignore[attr-defined]


def test_admin_reads_every_row_newest_first_with_the_total(client: TestClient, console_ctx: ConsoleContext,
                                                          seeded: dict[str, int]) -> None:
    admin = bearer(add_token(console_ctx, add_user(console_ctx, "root", "admin")))
    body = get(client, admin)
    assert body["total"] == 6 and minutes(body) == [5, 4, 3, 2, 1, 0]
    first = body["items"][0]  # type: ignore[index]
    assert set(first) == {"id", "at", "actor", "actor_role", "action", "object_type", "object_id", "branch_code",
                          "detail", "ip"}
    assert (first["actor"], first["action"], first["branch_code"]) == ("zhao", "photo_view", "B002")
    assert datetime.fromisoformat(first["at"]) == T0 + timedelta(minutes=5)
    page = get(client, admin, limit=2, offset=2)
    assert page["total"] == 6 and minutes(page) == [3, 2]


@pytest.mark.parametrize(("params", "expected"), [
    ({"action": "enrol"}, [4, 2, 0]),
    ({"actor": "li"}, [4, 1, 0]),  # the user and their tokens
    ({"object_id": "p2"}, [5, 2]),
    ({"object_type": "person", "branch": "b001"}, [4, 1, 0]),
    ({"since": "2026-11-01T08:02:00Z", "until": "2026-11-01T08:04:00Z"}, [3, 2]),
    ({"since": "2026-11-01T08:04:00"}, [5, 4]),  # no zone: UTC
    ({"action": "enrol", "branch": "B002"}, [2]),
    ({"action": "erase"}, []),
])
def test_filters(client: TestClient, console_ctx: ConsoleContext, seeded: dict[str, int], params: dict[str, str],
                 expected: list[int]) -> None:
    admin = bearer(add_token(console_ctx, add_user(console_ctx, "root", "admin")))
    body = get(client, admin, **params)
    assert minutes(body) == expected and body["total"] == len(expected)


def test_limit_is_at_most_500(client: TestClient, console_ctx: ConsoleContext, seeded: dict[str, int]) -> None:
    admin = bearer(add_token(console_ctx, add_user(console_ctx, "root", "admin")))
    assert client.get("/api/audit", headers=admin, params={"limit": 501}).status_code == 422
    assert client.get("/api/audit", headers=admin, params={"limit": 500}).status_code == 200


def test_compliance_reads_only_the_rows_of_branches_in_scope(client: TestClient, console_ctx: ConsoleContext,
                                                            seeded: dict[str, int]) -> None:
    east = bearer(add_token(console_ctx, add_user(console_ctx, "qa-east", "compliance", scope_kind="region",
                                                  region="east")))
    body = get(client, east)
    assert minutes(body) == [4, 1, 0] and body["total"] == 3  # B001 only; the user row (no branch) is admin-only
    assert minutes(get(client, east, branch="B002")) == []
    assert client.get("/api/audit/actions", headers=east).json() == ["enrol", "photo_view"]
    one = bearer(add_token(console_ctx, add_user(console_ctx, "qa-b2", "compliance", scope_kind="branches",
                                                 branch_ids=(seeded["B002"],))))
    assert minutes(get(client, one)) == [5, 2]
    everywhere = bearer(add_token(console_ctx, add_user(console_ctx, "qa-all", "compliance")))
    assert minutes(get(client, everywhere)) == [5, 4, 2, 1, 0]


def test_admin_sees_every_action_name(client: TestClient, console_ctx: ConsoleContext, seeded: dict[str, int]) -> None:
    admin = bearer(add_token(console_ctx, add_user(console_ctx, "root", "admin")))
    assert client.get("/api/audit/actions", headers=admin).json() == ["enrol", "photo_view", "user_create"]


@pytest.mark.parametrize("role", ["enroller", "branch_it", "regional_manager"])
def test_other_roles_may_not_read_the_audit(client: TestClient, console_ctx: ConsoleContext, seeded: dict[str, int],
                                            role: str) -> None:
    caller = bearer(add_token(console_ctx, add_user(console_ctx, "someone", role)))
    for path in ("/api/audit", "/api/audit/actions"):
        answer = client.get(path, headers=caller)
        assert (answer.status_code, answer.json()["error"]) == (403, "forbidden")
