"""The gallery feed an edge pulls: its branch's scope only, changes since its version, erasures, snapshots,
paging, the long-poll across two console replicas, and status reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from console.app import create_app
from console.context import ConsoleContext
from console.enrolment import PersonChanges, erase_person, update_person
from console.tables import AuditRow, Edge
from tests.console.conftest import add_branch, add_token, add_user
from tests.console.sync_helpers import add_edge, admin, put_person, version_of


@pytest.fixture()
def bank(console_ctx: ConsoleContext) -> ConsoleContext:
    add_branch(console_ctx, "A001", region="east")
    add_branch(console_ctx, "B001", region="east")
    add_branch(console_ctx, "C001", region="west")
    return console_ctx


def pull(client: TestClient, auth: dict[str, str], **params: Any) -> dict[str, Any]:
    answer = client.get("/api/sync/gallery", params=params, headers=auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def ids(body: dict[str, Any]) -> set[str]:
    return {p["id"] for p in body["persons"]}


def test_each_branch_gets_its_own_scope(client: TestClient, bank: ConsoleContext) -> None:
    everyone = put_person(bank, "全行贵宾", "A001", scope_kind="all")
    east = put_person(bank, "华东贵宾", "C001", scope_kind="region", region="east")
    a_only = put_person(bank, "甲行贵宾", "A001", branches=["A001"])
    staff_b = put_person(bank, "乙行员工", "B001", role="staff", branches=["B001"])
    _, a_auth = add_edge(bank, "A001")
    _, b_auth = add_edge(bank, "B001")
    _, c_auth = add_edge(bank, "C001")
    a, b, c = (pull(client, auth, since=0) for auth in (a_auth, b_auth, c_auth))
    assert (a["branch"], a["snapshot"], a["more"], a["version"]) == ("A001", True, False, version_of(bank))
    assert ids(a) == {everyone, east, a_only}
    assert ids(b) == {everyone, east, staff_b}
    assert ids(c) == {everyone}
    # a VIP enrolled later for A only never shows up in B's changes, not even as an id
    since = b["version"]
    later = put_person(bank, "甲行新贵宾", "A001", branches=["A001"])
    b_changes = pull(client, b_auth, since=since)
    assert (b_changes["snapshot"], b_changes["persons"], b_changes["erased"]) == (False, [], [])
    assert b_changes["version"] == version_of(bank) and later not in str(b_changes)
    assert ids(pull(client, a_auth, since=since)) == {later}
    # a long-poll is not woken by other branches' people: B's edge waits on until one of its own changes
    since = version_of(bank)
    made: list[str] = []

    def enrol_a_then_b() -> None:
        time.sleep(0.3)
        made.append(put_person(bank, "又一位甲行贵宾", "A001", branches=["A001"]))
        time.sleep(0.5)
        made.append(put_person(bank, "乙行贵宾", "B001", branches=["B001"]))

    worker = threading.Thread(target=enrol_a_then_b)
    worker.start()
    woken = pull(client, b_auth, since=since, wait=10)
    worker.join()
    assert (ids(woken), woken["erased"], woken["version"]) == ({made[1]}, [], since + 2)


def test_a_person_moved_out_of_scope_or_erased_is_in_the_erased_list(client: TestClient, bank: ConsoleContext) -> None:
    both = put_person(bank, "两行贵宾", "A001", branches=["A001", "B001"])
    gone = put_person(bank, "将被删除", "B001", scope_kind="all")
    _, a_auth = add_edge(bank, "A001")
    _, b_auth = add_edge(bank, "B001")
    first = pull(client, b_auth, since=0)
    assert ids(first) == {both, gone}
    actor = admin(bank)
    update_person(bank, actor, both, PersonChanges(scope_branches=("A001",)))
    erase_person(bank, actor, gone)
    b = pull(client, b_auth, since=first["version"])
    assert (b["persons"], sorted(b["erased"])) == ([], sorted([both, gone]))
    a = pull(client, a_auth, since=first["version"])
    assert ids(a) == {both} and a["erased"] == [gone]
    assert a["persons"][0]["version"] == b["version"] - 1  # the scope change, before the erasure


def test_a_snapshot_when_new_when_asked_or_when_the_edge_is_ahead_of_the_console(client: TestClient,
                                                                                 bank: ConsoleContext) -> None:
    one = put_person(bank, "甲", "A001", scope_kind="all")
    two = put_person(bank, "乙", "A001", scope_kind="all")
    _, auth = add_edge(bank, "A001")
    version = version_of(bank)
    ahead = pull(client, auth, since=version + 100)  # the console was restored from an older backup
    assert (ahead["snapshot"], ids(ahead), ahead["version"]) == (True, {one, two}, version)
    asked = pull(client, auth, since=version, snapshot=1)
    assert (asked["snapshot"], ids(asked)) == (True, {one, two})
    current = pull(client, auth, since=version)
    assert (current["snapshot"], current["persons"], current["version"]) == (False, [], version)


def test_changes_and_snapshots_come_in_pages(client: TestClient, bank: ConsoleContext) -> None:
    made = [put_person(bank, f"贵宾{i}", "A001", scope_kind="all", person_id=f"{i:032x}") for i in range(5)]
    _, auth = add_edge(bank, "A001")
    seen: list[str] = []
    page = pull(client, auth, since=0, limit=2)
    version = page["version"]
    while True:
        assert page["snapshot"] and page["version"] == version
        seen += [p["id"] for p in page["persons"]]
        if not page["more"]:
            assert page["cursor"] is None
            break
        put_person(bank, "翻页时新登记", "B001", branches=["B001"])  # changes meanwhile do not move the snapshot
        page = pull(client, auth, since=version, snapshot=1, after=page["cursor"], limit=2)
    assert seen == sorted(made)
    # changes: at most `limit` persons per answer, and V says up to where the answer is complete
    since = version_of(bank)
    more = [put_person(bank, f"新{i}", "A001", scope_kind="all") for i in range(3)]
    got: list[str] = []
    page = pull(client, auth, since=since, limit=2)
    assert (page["more"], len(page["persons"])) == (True, 2)
    got += [p["id"] for p in page["persons"]]
    page = pull(client, auth, since=page["version"], limit=2)
    assert page["more"] is False and page["version"] == version_of(bank)
    got += [p["id"] for p in page["persons"]]
    assert got == more


@pytest.fixture()
def second_replica(bank: ConsoleContext) -> Iterator[TestClient]:
    """Another console process's app over the same database and data folder (nothing shared in memory)."""
    other = ConsoleContext.open(bank.config)
    with TestClient(create_app(bank.config, context=other)) as client:
        yield client
    other.close()


def test_the_long_poll_brings_a_change_made_through_another_replica(client: TestClient, bank: ConsoleContext,
                                                                    second_replica: TestClient) -> None:
    _, auth = add_edge(bank, "A001")
    person = put_person(bank, "已有", "A001", scope_kind="all")
    since = pull(client, auth, since=0)["version"]
    token = add_token(bank, add_user(bank, "enroller", "enroller"))
    added: list[int] = []

    def add_plate_elsewhere() -> None:  # an enroller's request served by the other replica
        time.sleep(0.5)
        answer = second_replica.post(f"/api/persons/{person}/plates", json={"plate": "沪A12345"},
                                     headers={"Authorization": f"Bearer {token}"})
        added.append(answer.status_code)

    worker = threading.Thread(target=add_plate_elsewhere)
    worker.start()
    answer = pull(client, auth, since=since, wait=10)
    worker.join()
    assert added == [201]
    assert answer["version"] == since + 1 and answer["persons"][0]["id"] == person
    assert answer["persons"][0]["plates"] == [{"plate": "沪A12345", "kind": "ordinary"}]
    # with nothing new, the wait ends with the same version and empty lists
    assert pull(second_replica, auth, since=answer["version"], wait=0.3) == {
        "branch": "A001", "version": answer["version"], "snapshot": False, "more": False, "cursor": None,
        "persons": [], "erased": []}


def test_a_status_report_updates_the_edge_and_audits_erasure_confirmations(client: TestClient,
                                                                           bank: ConsoleContext) -> None:
    gone = put_person(bank, "已删除", "A001", scope_kind="all")
    moved = put_person(bank, "移出", "A001", scope_kind="all")
    erase_person(bank, admin(bank), gone)
    edge_id, auth = add_edge(bank, "A001")
    report = {"gallery_version": version_of(bank), "model_id": "dlib-v1", "software": "smartbranch 1.2",
              "cameras": [{"id": "entrance", "name": "大门", "role": "entrance", "status": "ok", "fps": 9.5,
                           "last_frame_at": "2026-12-03T08:00:00+00:00"}],
              "erased_confirmed": [gone, moved], "embed_failures": []}
    for _ in range(2):  # sent twice (a retry): one audit row
        answer = client.post("/api/sync/status", json=report, headers=auth)
        assert answer.json() == {"version": version_of(bank)}
    with bank.db.transaction() as session:
        edge = session.get_one(Edge, edge_id)
        assert (edge.gallery_version, edge.model_id, edge.last_seen_at is not None) == (version_of(bank), "dlib-v1",
                                                                                        True)
        health = edge.camera_health
        assert isinstance(health, dict) and health["entrance"]["status"] == "ok"
        rows = list(session.scalars(select(AuditRow).where(AuditRow.action == "erasure_confirmed")))
    assert [(r.object_id, r.detail, r.branch_code) for r in rows] == [(gone, {"edge": edge_id, "branch": "A001"},
                                                                       "A001")]
