"""Erasure reaches the events, on both backends: an erased VIP's name, tier, photo URL and plate leave every
event body and projection that named them while the bank view's counts and service times stay; an event that
arrives after the erasure (an edge that was offline) is stored scrubbed, and one being stored while the erasure
runs is scrubbed by it; the audit is never touched; events stored before revision 0005 are indexed and scrubbed
by the migration."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from alerts.envelope import (
    Alert,
    AlertType,
    CustomerUnattendedPayload,
    InteractionPayload,
    VipArrivalPayload,
    VipVehicleArrivalPayload,
)
from alerts.erasure import ERASED_NAME
from console.context import ConsoleContext
from console.db import make_engine
from console.migrate import upgrade
from console.sync.auth import EdgeCaller
from console.sync.events import InEvent, ingest
from console.tables import (
    AuditRow,
    Branch,
    CentralClip,
    CentralInteraction,
    Edge,
    EdgeEvent,
    EdgeEventPerson,
    ImportJob,
    Tombstone,
)
from tests.console.test_persons_api import PhotoBytes, enrol, make_bank
from tests.console.test_sync_events import add_edge, post, z

VIP, STAFF = "Barack Obama", "Joe Biden"
PHOTO = "/api/persons/{pid}/photo"
DAY = "from=2026-03-02&to=2026-03-02&branch=SH001"


def _at(hms: str) -> datetime:
    return datetime.fromisoformat(z(hms)).astimezone(UTC)


def envelope(seq: int, kind: AlertType, person_id: str | None, payload: Any, hms: str) -> dict[str, Any]:
    """An alert as an edge's outbox carries it (the stored envelope, as JSON)."""
    alert = Alert(id=f"alert{seq:027d}", seq=seq, created_at=_at(hms), type=kind, branch_id="SH001",
                  camera_id="cam", person_id=person_id, title="VIP 到店", captured_at=_at(hms), payload=payload)
    return {"seq": seq, "kind": "alert", "at": z(hms), "body": alert.model_dump(mode="json")}


def day_events(vip: str, staff: str, first: int = 1) -> list[dict[str, Any]]:
    """A morning at SH001 naming the VIP and the staff member: arrival by face and by car, an unattended wait, a
    service (its start alert, the episode and its clip)."""
    photo = PHOTO.format(pid=vip)
    arrival = VipArrivalPayload(person_id=vip, name=VIP, tier="钻石", photo_url=photo, score=0.9, margin=0.2,
                                votes=3, track_id=1, camera_name="大门", first_seen_at=_at("01:00:00"))
    car = VipVehicleArrivalPayload(person_id=vip, name=VIP, tier="钻石", photo_url=photo, plate="沪A12345",
                                   plate_read="沪A12345", distance=0, score=0.9, reads=4, track_id=2,
                                   camera_name="停车场", first_seen_at=_at("00:58:00"))
    waiting = CustomerUnattendedPayload(camera_name="柜台", zone="等候区", customer_track=3, waited_s=200,
                                        waiting_since=_at("01:02:00"), crop_url="/api/snapshots/" + "c" * 32,
                                        escalated=True, person_id=vip, name=VIP, tier="钻石", photo_url=photo)
    started = InteractionPayload(kind="interaction_started", interaction_id="i1", camera_name="柜台",
                                 staff_id=staff, staff_name=STAFF, staff_track=4, customer_track=3, vip_id=vip,
                                 vip_name=VIP, vip_tier="钻石", started_at=_at("01:10:00"), wait_s=40)
    people = {"staff_id": staff, "staff_name": STAFF, "vip_id": vip, "vip_name": VIP}
    episode = {"id": "i1", "camera": "counter-1", **people, "started_at": z("01:10:00"), "ended_at": z("01:15:00"),
               "duration_s": 300.0, "wait_s": 40.0, "interrupted": False, "clip_id": None}
    clip = {"id": "c1", "interaction_id": "i1", "camera": "counter-1", **people, "started_at": z("01:10:00"),
            "ended_at": z("01:15:00"), "duration_s": 300.0, "size": 10, "sha256": hashlib.sha256(b"x").hexdigest()}
    return [envelope(first, AlertType.VIP_ARRIVAL, vip, arrival, "01:00:00"),
            envelope(first + 1, AlertType.VIP_VEHICLE_ARRIVAL, vip, car, "00:58:00"),
            envelope(first + 2, AlertType.CUSTOMER_UNATTENDED, vip, waiting, "01:05:00"),
            envelope(first + 3, AlertType.INTERACTION_STARTED, vip, started, "01:10:00"),
            {"seq": first + 4, "kind": "interaction", "at": z("01:15:00"), "body": episode},
            {"seq": first + 5, "kind": "clip", "at": z("01:15:00"), "body": clip}]


def stored_text(ctx: ConsoleContext) -> str:
    """Every event body and projection row the console holds, as one text to search."""
    with ctx.db.transaction() as session:
        bodies = list(session.scalars(select(EdgeEvent.body)))
        rows = [list(r) for model in (CentralInteraction, CentralClip)
                for r in session.execute(select(model.staff_id, model.staff_name, model.vip_id, model.vip_name))]
    return json.dumps([bodies, rows], ensure_ascii=False)


def names(ctx: ConsoleContext) -> list[tuple[str | None, str | None]]:
    with ctx.db.transaction() as session:
        return [(r[0], r[1]) for model in (CentralInteraction, CentralClip)
                for r in session.execute(select(model.staff_name, model.vip_name))]


def vip_payloads(ctx: ConsoleContext) -> list[dict[str, Any]]:
    with ctx.db.transaction() as session:
        bodies = session.scalars(select(EdgeEvent.body).where(EdgeEvent.kind == "alert").order_by(EdgeEvent.seq))
        return [b["payload"] for b in bodies]


def enrol_two(client: TestClient, ctx: ConsoleContext, photo_bytes: PhotoBytes) -> tuple[Any, str, str]:
    bank = make_bank(ctx)
    vip = enrol(client, bank.admin, photo_bytes("obama.jpg"), VIP, tier="钻石", plates="沪A12345")
    staff = enrol(client, bank.admin, photo_bytes("biden.jpg"), STAFF, role="staff")
    assert vip.status_code == staff.status_code == 201, (vip.text, staff.text)
    return bank, vip.json()["id"], staff.json()["id"]


def test_erasing_a_vip_scrubs_their_name_from_every_event_and_projection_and_keeps_the_counts(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: PhotoBytes) -> None:
    bank, vip, staff = enrol_two(client, console_ctx, photo_bytes)
    token = add_edge(console_ctx, bank.a)
    assert post(client, token, day_events(vip, staff)).status_code == 200
    report = [{"row": 2, "external_id": "E123", "name": VIP, "status": "created", "code": "", "reason": "",
               "person_id": vip},
              {"row": 3, "external_id": "E124", "name": STAFF, "status": "created", "code": "", "reason": "",
               "person_id": staff}]
    with console_ctx.db.transaction() as session:  # a bulk import listed both
        session.add(ImportJob(id="j" * 32, created_by="admin", filename="vips.csv", status="done", total=2, done=2,
                              ok=2, report=report))
    before = client.get(f"/api/stats/daily?{DAY}", headers=bank.admin).json()["rows"]
    assert before[0]["vip_arrivals"] == 1 and before[0]["service_p50_s"] == 300.0 and before[0]["wait_p50_s"] == 40
    assert VIP in stored_text(console_ctx) and "沪A12345" in stored_text(console_ctx)

    assert client.delete(f"/api/persons/{vip}", headers=bank.admin).status_code == 200

    text = stored_text(console_ctx)
    assert VIP not in text and "钻石" not in text and "沪A12345" not in text and PHOTO.format(pid=vip) not in text
    assert text.count(vip) > 0  # the events keep the (tombstoned) id: they still count
    assert names(console_ctx) == [(STAFF, ERASED_NAME), (STAFF, ERASED_NAME)]  # only the erased person goes
    arrival, car, waiting, started = vip_payloads(console_ctx)
    assert (arrival["name"], arrival["tier"], arrival["photo_url"]) == (ERASED_NAME, "", "")
    assert (car["plate"], car["plate_read"]) == ("", "")
    assert (waiting["name"], waiting["crop_url"]) == (ERASED_NAME, None)
    assert (started["vip_name"], started["vip_tier"], started["staff_name"]) == (ERASED_NAME, None, STAFF)
    # the envelopes still validate as alerts, and the bank view is unchanged
    with console_ctx.db.transaction() as session:
        for body in session.scalars(select(EdgeEvent.body).where(EdgeEvent.kind == "alert")):
            Alert.model_validate(body)
        assert session.scalar(select(func.count()).select_from(EdgeEventPerson)
                              .where(EdgeEventPerson.person_id == vip)) == 0
        erase = session.scalars(select(AuditRow).where(AuditRow.action == "erase")).one()
        enrolled = session.scalars(select(AuditRow).where(AuditRow.action == "enrol",
                                                          AuditRow.object_id == vip)).one()
    assert client.get(f"/api/stats/daily?{DAY}", headers=bank.admin).json()["rows"] == before
    assert erase.detail is not None
    assert erase.detail["scrubbed"] == {"events": 6, "interactions": 1, "clips": 1, "imports": 1}
    with console_ctx.db.transaction() as session:
        lines = session.get_one(ImportJob, "j" * 32).report
    assert lines is not None
    assert [(r["name"], r["external_id"], r["person_id"]) for r in lines] == [(ERASED_NAME, "", vip),
                                                                              (STAFF, "E124", staff)]
    assert enrolled.object_id == vip  # the audit rows are never touched

    # erasing the staff member too leaves no name at all
    assert client.delete(f"/api/persons/{staff}", headers=bank.admin).status_code == 200
    assert STAFF not in stored_text(console_ctx)
    assert names(console_ctx) == [(ERASED_NAME, ERASED_NAME), (ERASED_NAME, ERASED_NAME)]
    assert client.get(f"/api/stats/daily?{DAY}", headers=bank.admin).json()["rows"] == before


def test_an_event_that_arrives_after_the_erasure_is_stored_scrubbed(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: PhotoBytes) -> None:
    bank, vip, staff = enrol_two(client, console_ctx, photo_bytes)
    token = add_edge(console_ctx, bank.a)
    assert client.delete(f"/api/persons/{vip}", headers=bank.admin).status_code == 200
    # an edge that was offline sends the morning's events only now
    answer = post(client, token, day_events(vip, staff))
    assert answer.status_code == 200 and answer.json()["acked"] == [1, 2, 3, 4, 5, 6]
    text = stored_text(console_ctx)
    assert VIP not in text and "沪A12345" not in text and PHOTO.format(pid=vip) not in text
    assert STAFF in text  # the staff member was not erased
    assert names(console_ctx) == [(STAFF, ERASED_NAME), (STAFF, ERASED_NAME)]
    rows = client.get(f"/api/stats/daily?{DAY}", headers=bank.admin).json()["rows"]
    assert rows[0]["vip_arrivals"] == 1 and rows[0]["service_p50_s"] == 300.0 and rows[0]["interactions"] == 1
    with console_ctx.db.transaction() as session:  # indexed under the staff member only
        linked = set(session.scalars(select(EdgeEventPerson.person_id)))
    assert linked == {staff}
    # the staff member's later erasure still finds those events
    assert client.delete(f"/api/persons/{staff}", headers=bank.admin).status_code == 200
    assert STAFF not in stored_text(console_ctx)


def test_the_migration_indexes_stored_events_and_scrubs_persons_erased_before_it(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0004")
        erased, kept = "e" * 32, "k" * 32
        body = {"id": "i1", "camera": "c", "staff_id": kept, "staff_name": STAFF, "vip_id": erased, "vip_name": VIP}
        now = datetime(2026, 3, 2, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(insert(Branch).values(
                id=1, code="SH001", name="上海", region="east", timezone="Asia/Shanghai"))
            conn.execute(insert(Edge).values(
                id=1, branch_id=1, name="box", token_hash="h" * 64, created_at=now))
            conn.execute(insert(EdgeEvent).values(id=1, edge_id=1, branch_id=1, epoch="x", seq=1,
                                                            kind="interaction", at=now, body=body, received_at=now))
            conn.execute(insert(CentralInteraction).values(
                id="i1", branch_id=1, edge_id=1, camera="c", staff_id=kept, staff_name=STAFF, vip_id=erased,
                vip_name=VIP, started_at=now, interrupted=False))
            conn.execute(insert(Tombstone).values(person_id=erased, erased_by="admin", seq=1,
                                                            erased_at=now, home_branch_id=1))
        upgrade(engine)
        with engine.begin() as conn:
            stored = conn.execute(select(EdgeEvent.body)).scalar_one()
            row = conn.execute(select(CentralInteraction.staff_name, CentralInteraction.vip_name)).one()
            links = set(conn.execute(select(EdgeEventPerson.person_id, EdgeEventPerson.event_id)).all())
        assert (stored["vip_name"], stored["staff_name"], stored["vip_id"]) == (ERASED_NAME, STAFF, erased)
        assert tuple(row) == (STAFF, ERASED_NAME)
        assert links == {(kept, 1)}  # nothing will look for the erased id again
    finally:
        engine.dispose()


def test_an_ingest_in_flight_during_the_erasure_is_scrubbed_by_it(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: PhotoBytes) -> None:
    # an edge's batch naming the VIP is being stored (its transaction open, not committed) when the VIP is erased
    bank, vip, staff = enrol_two(client, console_ctx, photo_bytes)
    add_edge(console_ctx, bank.a)
    with console_ctx.db.transaction() as session:
        edge_row = session.scalars(select(Edge)).one()
        caller = EdgeCaller(edge_row.id, edge_row.name, bank.a, "SH001", "east")
    events = [InEvent(e["seq"], e["kind"], datetime.fromisoformat(e["at"]), e["body"])
              for e in day_events(vip, staff)]
    stored, release = threading.Event(), threading.Event()

    def in_flight() -> None:
        with console_ctx.db.transaction() as session:
            ingest(session, caller, "x" * 32, events)
            stored.set()
            release.wait(30)

    ingesting = threading.Thread(target=in_flight)
    ingesting.start()
    assert stored.wait(30)
    answers: list[int] = []
    erasing = threading.Thread(target=lambda: answers.append(
        client.delete(f"/api/persons/{vip}", headers=bank.admin).status_code))
    erasing.start()
    erasing.join(1.0)  # the erasure waits for the ingest's transaction (it would miss its rows otherwise)
    release.set()
    ingesting.join(30)
    erasing.join(30)
    assert answers == [200]
    assert VIP not in stored_text(console_ctx) and STAFF in stored_text(console_ctx)
    assert names(console_ctx) == [(STAFF, ERASED_NAME), (STAFF, ERASED_NAME)]
