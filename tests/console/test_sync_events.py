"""Events up from the edges (POST /api/sync/events), clips at the centre and the bank view, on both backends."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from console.context import ConsoleContext
from console.security import digest, new_secret
from console.tables import AuditRow, CentralClip, CentralHour, CentralInteraction, Edge, EdgeEvent
from tests.console.conftest import add_branch, add_token, add_user

EPOCH = "e" * 32


def add_edge(ctx: ConsoleContext, branch_id: int, name: str = "box-1") -> str:
    token = new_secret()
    with ctx.db.transaction() as session:
        session.add(Edge(branch_id=branch_id, name=name, token_hash=digest(token)))
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def z(hms: str, day: str = "2026-03-02") -> str:
    """A UTC time of the test day."""
    return f"{day}T{hms}+00:00"


def alert(seq: int, kind: str, at: str) -> dict[str, Any]:
    return {"seq": seq, "kind": "alert", "at": at, "body": {"id": f"a{seq}", "seq": seq, "type": kind}}


def episode(seq: int, ident: str, started: str, *, wait: float | None, duration: float,
            interrupted: bool = False, staff: str = "张柜员", vip: str | None = None) -> dict[str, Any]:
    return {"seq": seq, "kind": "interaction", "at": started, "body": {
        "id": ident, "camera": "counter-1", "staff_id": "s1", "staff_name": staff, "vip_id": "v1" if vip else None,
        "vip_name": vip, "started_at": started, "ended_at": started, "duration_s": duration, "wait_s": wait,
        "interrupted": interrupted, "clip_id": None}}


def clip(seq: int, ident: str, started: str, data: bytes, *, staff: str = "张柜员", vip: str | None = None,
         camera: str = "counter-1") -> dict[str, Any]:
    return {"seq": seq, "kind": "clip", "at": started, "body": {
        "id": ident, "interaction_id": f"i-{ident}", "camera": camera, "staff_id": "s1", "staff_name": staff,
        "vip_id": "v1" if vip else None, "vip_name": vip, "started_at": started, "ended_at": started,
        "duration_s": 30.0, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}}


def post(client: TestClient, token: str, events: list[dict[str, Any]], *, zipped: bool = False) -> Any:
    body = json.dumps({"epoch": EPOCH, "events": events}).encode()
    headers = {**bearer(token), "Content-Type": "application/json"}
    if zipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    return client.post("/api/sync/events", content=body, headers=headers)


def count(ctx: ConsoleContext, table: Any) -> int:
    with ctx.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


# --- the bank view's known day (branch in Asia/Shanghai, UTC+8) ---------------------------------------------------
# 03-02 local: VIP arrivals 09:05 and 10:20; unattended 09:50 and 11:10; unstaffed 11:20; episodes 09:10 (wait 10,
# service 100), 09:40 (30, 200), 11:05 (no wait, 600), 11:30 (50, 400 but interrupted: not a service time).
# 03-03 local: a VIP arrival at 00:10 and an episode at 00:30 (wait 20, service 60), i.e. 16:10/16:30 UTC on 03-02.
KNOWN_DAY = [
    alert(1, "vip_arrival", z("01:05:00")), alert(2, "vip_arrival", z("02:20:00")),
    alert(3, "customer_unattended", z("01:50:00")), alert(4, "customer_unattended", z("03:10:00")),
    alert(5, "counter_unstaffed", z("03:20:00")), alert(6, "interaction_started", z("01:10:00")),
    episode(7, "i1", z("01:10:00"), wait=10.0, duration=100.0),
    episode(8, "i2", z("01:40:00"), wait=30.0, duration=200.0),
    episode(9, "i3", z("03:05:00"), wait=None, duration=600.0),
    episode(10, "i4", z("03:30:00"), wait=50.0, duration=400.0, interrupted=True),
    alert(11, "vip_arrival", z("16:10:00")), episode(12, "i5", z("16:30:00"), wait=20.0, duration=60.0),
]
# 03-02: waits [10, 30, 50] -> p50 30, p90 30 + 0.8 * 20 = 46; services [100, 200, 600] -> p50 200, mean 300;
# active hours 09 and 11 (10 had only an arrival), 11 had an unstaffed counter -> staffed 1/2.
EXPECTED = [
    {"date": "2026-03-02", "branch": "BJ001", "branch_name": "BJ001 支行", "vip_arrivals": 2, "wait_p50_s": 30.0,
     "wait_p90_s": 46.0, "service_p50_s": 200.0, "service_mean_s": 300.0, "unattended_events": 2,
     "staffed_ratio": 0.5, "interactions": 4},
    {"date": "2026-03-03", "branch": "BJ001", "branch_name": "BJ001 支行", "vip_arrivals": 1, "wait_p50_s": 20.0,
     "wait_p90_s": 20.0, "service_p50_s": 60.0, "service_mean_s": 60.0, "unattended_events": 0,
     "staffed_ratio": 1.0, "interactions": 1},
]


def test_a_resent_batch_is_stored_and_counted_once(client: TestClient, console_ctx: ConsoleContext) -> None:
    token = add_edge(console_ctx, add_branch(console_ctx, "BJ001"))
    # when a batch arrives, then again (its answer was lost), then overlapping with new events, gzip-compressed
    first = post(client, token, KNOWN_DAY[:8])
    again = post(client, token, KNOWN_DAY[:8])
    rest = post(client, token, KNOWN_DAY[4:], zipped=True)
    # then every seq is acknowledged each time, and each event is stored and projected once
    assert first.status_code == again.status_code == rest.status_code == 200, rest.text
    assert first.json()["acked"] == again.json()["acked"] == list(range(1, 9))
    assert rest.json()["acked"] == list(range(5, 13))
    assert count(console_ctx, EdgeEvent) == 12
    assert count(console_ctx, CentralInteraction) == 5
    with console_ctx.db.transaction() as session:
        totals = session.execute(select(func.sum(CentralHour.vip_arrivals), func.sum(CentralHour.unattended),
                                        func.sum(CentralHour.unstaffed), func.sum(CentralHour.interactions))).one()
    assert tuple(totals) == (3, 2, 1, 5)


def test_an_unknown_kind_from_a_newer_edge_is_stored_and_acknowledged_not_refused(
        client: TestClient, console_ctx: ConsoleContext) -> None:
    token = add_edge(console_ctx, add_branch(console_ctx, "BJ001"))
    newer = {"seq": 1, "kind": "queue_length", "at": z("01:00:00"), "body": {"people": 3}}
    answer = post(client, token, [newer, KNOWN_DAY[1] | {"seq": 2}])
    assert answer.status_code == 200 and answer.json()["acked"] == [1, 2]
    assert count(console_ctx, EdgeEvent) == 2
    bad = post(client, token, [{**newer, "seq": 3, "kind": "Not A Kind!"}])
    assert bad.status_code == 422  # a malformed kind is still refused


def test_events_need_an_edge_token(client: TestClient, console_ctx: ConsoleContext) -> None:
    branch = add_branch(console_ctx, "BJ001")
    user_token = add_token(console_ctx, add_user(console_ctx, "admin1", "admin"))
    assert post(client, new_secret(), KNOWN_DAY[:1]).status_code == 401
    assert post(client, user_token, KNOWN_DAY[:1]).status_code == 403
    token = add_edge(console_ctx, branch)
    bad = client.post("/api/sync/events", content=b"\x1f\x8bnot gzip", headers={**bearer(token),
                                                                              "Content-Encoding": "gzip"})
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_gzip")
    malformed = post(client, token, [{"seq": 1, "kind": "../selfie", "at": z("01:00:00"), "body": {}}])
    assert malformed.status_code == 422
    assert count(console_ctx, EdgeEvent) == 0


def test_daily_stats_from_known_events_and_the_csv(client: TestClient, console_ctx: ConsoleContext) -> None:
    branch = add_branch(console_ctx, "BJ001", region="north")
    other = add_branch(console_ctx, "SH001", region="east")
    assert post(client, add_edge(console_ctx, branch), KNOWN_DAY).status_code == 200
    assert post(client, add_edge(console_ctx, other, "box-2"), KNOWN_DAY[:3]).status_code == 200
    admin = add_token(console_ctx, add_user(console_ctx, "admin1", "admin"))
    answer = client.get("/api/stats/daily?from=2026-03-02&to=2026-03-03&branch=BJ001", headers=bearer(admin))
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == EXPECTED
    csv_text = client.get("/api/stats/daily.csv?from=2026-03-02&to=2026-03-03&branch=BJ001",
                          headers=bearer(admin)).content.decode("utf-8-sig")
    assert csv_text == (
        "date,branch,branch_name,vip_arrivals,wait_p50_s,wait_p90_s,service_p50_s,service_mean_s,"
        "unattended_events,staffed_ratio,interactions\r\n"
        "2026-03-02,BJ001,BJ001 支行,2,30.0,46.0,200.0,300.0,2,0.5,4\r\n"
        "2026-03-03,BJ001,BJ001 支行,1,20.0,20.0,60.0,60.0,0,1.0,1\r\n")
    # a regional manager sees their region only; an enroller no statistics at all
    manager = add_token(console_ctx, add_user(console_ctx, "rm1", "regional_manager", scope_kind="region",
                                              region="east"))
    seen = client.get("/api/stats/daily?from=2026-03-02&to=2026-03-03", headers=bearer(manager)).json()["rows"]
    assert {r["branch"] for r in seen} == {"SH001"}
    assert client.get("/api/stats/daily?from=2026-03-02&to=2026-03-03&branch=BJ001",
                      headers=bearer(manager)).status_code == 403
    enroller = add_token(console_ctx, add_user(console_ctx, "en1", "enroller"))
    assert client.get("/api/stats/daily?from=2026-03-02&to=2026-03-02", headers=bearer(enroller)).status_code == 403


def _two_branches_with_clips(client: TestClient, ctx: ConsoleContext) -> tuple[str, str, bytes]:
    a, b = add_branch(ctx, "BJ001"), add_branch(ctx, "SH001")
    token_a, token_b = add_edge(ctx, a), add_edge(ctx, b, "box-2")
    data = os.urandom(5000)
    assert post(client, token_a, [clip(1, "ca1", z("01:00:00"), data, staff="张柜员", vip="李先生"),
                                  clip(2, "ca2", z("05:00:00"), data, staff="王柜员", camera="counter-2"),
                                  clip(3, "ca3", z("02:00:00", "2026-03-05"), data, staff="张柜员")]).status_code == 200
    assert post(client, token_b, [clip(1, "cb1", z("01:00:00"), data, staff="赵柜员")]).status_code == 200
    return token_a, token_b, data


def test_clips_are_listed_by_name_within_the_callers_scope(client: TestClient, console_ctx: ConsoleContext) -> None:
    _two_branches_with_clips(client, console_ctx)
    with console_ctx.db.transaction() as session:
        bj = session.get_one(CentralClip, "ca1").branch_id
    officer = add_token(console_ctx, add_user(console_ctx, "co1", "compliance", scope_kind="branches",
                                              branch_ids=(bj,)))
    admin = add_token(console_ctx, add_user(console_ctx, "admin1", "admin"))

    def ids(token: str, query: str = "") -> list[str]:
        answer = client.get(f"/api/clips{query}", headers=bearer(token))
        assert answer.status_code == 200, answer.text
        return [c["id"] for c in answer.json()["clips"]]

    assert ids(admin) == ["ca3", "ca2", "ca1", "cb1"]  # newest first; the same time by id
    assert ids(officer) == ["ca3", "ca2", "ca1"]
    assert ids(officer, "?staff=张") == ["ca3", "ca1"]
    assert ids(officer, "?vip=李先生") == ["ca1"]
    assert ids(officer, "?camera=counter-2") == ["ca2"]
    assert ids(officer, "?date=2026-03-05") == ["ca3"]
    assert ids(admin, "?branch=SH001") == ["cb1"]
    assert client.get("/api/clips?branch=SH001", headers=bearer(officer)).status_code == 403
    listed = client.get("/api/clips?vip=李", headers=bearer(officer)).json()["clips"][0]
    assert (listed["staff_name"], listed["vip_name"], listed["branch"]["code"]) == ("张柜员", "李先生", "BJ001")
    assert "staff_id" not in listed and "vip_id" not in listed
    manager = add_token(console_ctx, add_user(console_ctx, "rm1", "regional_manager"))
    assert client.get("/api/clips", headers=bearer(manager)).status_code == 403


def test_a_clip_plays_once_uploaded_with_ranges_and_one_audit_row(client: TestClient,
                                                                  console_ctx: ConsoleContext) -> None:
    token_a, token_b, data = _two_branches_with_clips(client, console_ctx)
    admin = add_token(console_ctx, add_user(console_ctx, "admin1", "admin"))
    early = client.get("/api/clips/ca1/video", headers=bearer(admin))
    assert (early.status_code, early.json()["error"]) == (404, "not_yet_uploaded")
    # another branch's edge cannot upload it; its own can, once, and again changes nothing
    assert client.put("/api/sync/clips/ca1", content=data, headers=bearer(token_b)).status_code == 404
    assert client.put("/api/sync/clips/ca1", content=data, headers=bearer(token_a)).status_code == 200
    assert client.put("/api/sync/clips/ca1", content=data, headers=bearer(token_a)).status_code == 200
    whole = client.get("/api/clips/ca1/video", headers=bearer(admin))
    assert (whole.status_code, whole.content, whole.headers["accept-ranges"]) == (200, data, "bytes")
    part = client.get("/api/clips/ca1/video", headers={**bearer(admin), "Range": "bytes=100-199"})
    assert (part.status_code, part.content, part.headers["content-range"]) == (206, data[100:200], "bytes 100-199/5000")
    tail = client.get("/api/clips/ca1/video", headers={**bearer(admin), "Range": "bytes=-10"})
    assert tail.content == data[-10:]
    assert client.get("/api/clips/ca1/video", headers={**bearer(admin), "Range": "bytes=9000-"}).status_code == 416
    with console_ctx.db.transaction() as session:
        views = session.scalar(select(func.count()).select_from(AuditRow).where(AuditRow.action == "clip_view",
                                                                               AuditRow.object_id == "ca1"))
    assert views == 1  # the whole-file request; the player's further ranges are the same viewing


def test_verdicts_are_append_only_and_audited(client: TestClient, console_ctx: ConsoleContext) -> None:
    _two_branches_with_clips(client, console_ctx)
    officer = add_token(console_ctx, add_user(console_ctx, "co1", "compliance"))
    first = client.post("/api/clips/ca1/verdicts", json={"verdict": "violation", "notes": "未核验身份"},
                        headers=bearer(officer))
    second = client.post("/api/clips/ca1/verdicts", json={"verdict": "compliant", "notes": "复核后合规"},
                         headers=bearer(officer))
    assert first.status_code == second.status_code == 201
    assert client.post("/api/clips/ca1/verdicts", json={"verdict": "maybe"}, headers=bearer(officer)).status_code == 422
    history = client.get("/api/clips/ca1/verdicts", headers=bearer(officer)).json()["verdicts"]
    assert [(v["verdict"], v["notes"]) for v in history] == [("violation", "未核验身份"), ("compliant", "复核后合规")]
    listed = client.get("/api/clips?branch=BJ001&vip=李", headers=bearer(officer)).json()["clips"][0]
    assert listed["verdict"]["verdict"] == "compliant"
    with console_ctx.db.transaction() as session:
        audited = session.scalar(select(func.count()).select_from(AuditRow).where(AuditRow.action == "verdict_add"))
    assert audited == 2
    # the database itself refuses to change or remove a verdict
    for statement in ("UPDATE clip_verdicts SET verdict = 'compliant'", "DELETE FROM clip_verdicts"):
        with pytest.raises(DBAPIError), console_ctx.db.transaction() as session:
            session.execute(text(statement))
    assert len(client.get("/api/clips/ca1/verdicts", headers=bearer(officer)).json()["verdicts"]) == 2


def test_times_without_zone_are_utc() -> None:
    from console.sync.events import parse_time

    assert parse_time("2026-03-02T01:00:00") == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    assert parse_time("not a time") is None
    assert parse_time(None) is None


def test_the_same_batch_from_two_replicas_at_once_is_stored_once(console_ctx: ConsoleContext) -> None:
    import threading

    from console.sync.auth import EdgeCaller
    from console.sync.events import InEvent, ingest, parse_time

    branch = add_branch(console_ctx, "BJ001")
    add_edge(console_ctx, branch)
    with console_ctx.db.transaction() as session:
        edge_id = session.scalars(select(Edge.id)).one()
    caller = EdgeCaller(edge_id, "box-1", branch, "BJ001", "east")
    events = [InEvent(e["seq"], e["kind"], parse_time(e["at"]) or datetime.now(UTC), e["body"]) for e in KNOWN_DAY]
    start = threading.Barrier(4)
    answers: list[list[int]] = []

    def send() -> None:
        start.wait()
        with console_ctx.db.transaction() as session:
            answers.append(ingest(session, caller, EPOCH, events))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == [list(range(1, 13))] * 4
    assert count(console_ctx, EdgeEvent) == 12
    with console_ctx.db.transaction() as session:
        assert session.scalar(select(func.sum(CentralHour.vip_arrivals))) == 3
        assert session.scalar(select(func.count()).select_from(CentralInteraction)) == 5
