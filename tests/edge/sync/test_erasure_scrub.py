"""Erasure reaches the box's alerts and outbox: when the sync apply erases a console person, the alerts, the
terminal's replay and the outbox events (sent or not) that named them lose the name, tier, photo URL and plate,
and stay (the review rows keep their service times); an open terminal is sent the scrubbed cards; a store written
before the erasure index is indexed once.

A real box (EdgeRuntime: store, hub, review store, gallery) and the real dlib engine; alerts go through the hub
as the rules publish them, episodes and clips through the review store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from alerts.envelope import (
    AlertDraft,
    AlertPayload,
    AlertType,
    CustomerUnattendedPayload,
    HubMessage,
    InteractionPayload,
    VipArrivalPayload,
    VipVehicleArrivalPayload,
)
from alerts.erasure import ERASED_NAME
from edge.clips.types import ClipParticipants, ClipWritten, InteractionRecord
from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from edge.store.db import Store
from edge.store.mentions import META_INDEXED, AlertPersonRow, OutboxPersonRow
from edge.store.tables import MetaRow, OutboxRow
from edge.sync.changes import parse_answer
from edge.sync.outbox import Outbox
from tests.edge.sync.helpers import answer, person_entry
from tests.edge.sync.test_gallery_apply import apply
from vision.engines.owner import EnginePool

VIP, STAFF = "奥巴马", "拜登"
VIP_ID, STAFF_ID = "a" * 32, "b" * 32


@pytest.fixture()
def box(make_config: Callable[..., EdgeConfig], engine_pool: EnginePool) -> Iterator[EdgeRuntime]:
    runtime = EdgeRuntime(make_config(), engine=engine_pool)
    yield runtime
    runtime.stop()


def a_morning(box: EdgeRuntime, photo_bytes: Callable[[str], bytes]) -> None:
    """Both persons synced from the console; the VIP arrives on foot and by car, waits, is served by the staff
    member, and the episode and its clip are stored."""
    apply(box, answer(1, [person_entry(VIP_ID, VIP, [photo_bytes("obama.jpg")], plates=["沪A12345"]),
                          person_entry(STAFF_ID, STAFF, [photo_bytes("biden.jpg")], role="staff", tier="")]))
    now = datetime.now(UTC)
    photo = f"/api/persons/{VIP_ID}/photo"
    snap = box.store.add_snapshot(camera_id="counter", jpeg=photo_bytes("obama2.jpg"))
    branch = box.config.branch.id
    payloads: list[tuple[AlertType, AlertPayload]] = [
        (AlertType.VIP_ARRIVAL, VipArrivalPayload(person_id=VIP_ID, name=VIP, tier="钻石", photo_url=photo,
                                                  score=0.9, margin=0.2, votes=3, track_id=1, camera_name="大门",
                                                  first_seen_at=now)),
        (AlertType.VIP_VEHICLE_ARRIVAL, VipVehicleArrivalPayload(
            person_id=VIP_ID, name=VIP, tier="钻石", photo_url=photo, plate="沪A12345", plate_read="沪A12345",
            distance=0, score=0.9, reads=3, track_id=2, camera_name="停车场", first_seen_at=now)),
        (AlertType.CUSTOMER_UNATTENDED, CustomerUnattendedPayload(
            camera_name="柜台", zone="等候区", customer_track=3, waited_s=200, waiting_since=now,
            crop_url=f"/api/snapshots/{snap}", escalated=True, person_id=VIP_ID, name=VIP, tier="钻石",
            photo_url=photo)),
        (AlertType.INTERACTION_STARTED, InteractionPayload(
            kind="interaction_started", interaction_id="i1", camera_name="柜台", staff_id=STAFF_ID, staff_name=STAFF,
            staff_track=4, customer_track=3, vip_id=VIP_ID, vip_name=VIP, vip_tier="钻石", started_at=now)),
    ]
    for kind, payload in payloads:
        box.hub.publish(AlertDraft(type=kind, branch_id=branch, camera_id="counter", person_id=VIP_ID,
                                   title="VIP 到店", captured_at=now, payload=payload))
    who = ClipParticipants("i1", "counter", 4, 3, STAFF_ID, VIP_ID)
    box.review.add_interaction(InteractionRecord(who, now, None, None, 40.0))
    box.review.end_interaction(interaction_id="i1", ended_at=now + timedelta(seconds=300), duration_s=300.0)
    box.review.add_clip(ClipWritten("c1", who, Path("/clips/c1.mp4.enc"), "0" * 64, 10, now,
                                    now + timedelta(seconds=300), 300.0, 10, 2))


def outbox_text(store: Store) -> str:
    with store.session() as s:
        return json.dumps([json.loads(b) for b in s.scalars(select(OutboxRow.body))], ensure_ascii=False)


def alerts_text(box: EdgeRuntime) -> str:
    replay = box.hub.replay(0, box.hub.epoch)
    assert len(replay.alerts) == 4
    return json.dumps([a.model_dump(mode="json") for a in replay.alerts], ensure_ascii=False)


def test_the_apply_s_erasure_scrubs_alerts_replay_and_outbox_and_keeps_the_record(
        box: EdgeRuntime, photo_bytes: Callable[[str], bytes]) -> None:
    a_morning(box, photo_bytes)
    outbox = Outbox(box.store)
    sent = [e.seq for e in outbox.pending()[:2]]
    outbox.mark_sent(sent)  # some events already went to the console, the rest wait (a WAN outage)
    assert VIP in alerts_text(box) and VIP in outbox_text(box.store) and "沪A12345" in outbox_text(box.store)

    apply(box, answer(2, erased=[VIP_ID]))

    replayed, queued = alerts_text(box), outbox_text(box.store)
    for text in (replayed, queued):
        assert VIP not in text and "钻石" not in text and "沪A12345" not in text and f"{VIP_ID}/photo" not in text
        assert STAFF in text and ERASED_NAME in text and VIP_ID in text  # the events stay, only nameless
    arrival, car, waiting, started = [a.payload.model_dump() for a in box.store.since(0)]
    assert (arrival["name"], arrival["tier"], arrival["photo_url"]) == (ERASED_NAME, "", "")
    assert (car["plate"], car["plate_read"]) == ("", "")
    assert waiting["crop_url"] is None and waiting["name"] == ERASED_NAME
    assert (started["vip_name"], started["vip_tier"], started["staff_name"]) == (ERASED_NAME, None, STAFF)
    episode = [e.body for e in outbox.pending() if e.kind == "interaction"]
    assert [(b["vip_name"], b["staff_name"], b["duration_s"]) for b in episode] == [(ERASED_NAME, STAFF, 300.0)]
    # what was sent stays sent, what waits still waits; the review rows keep their service times
    assert {e.seq for e in outbox.pending()}.isdisjoint(sent) and outbox.unsent() == 6 - len(sent)
    record = box.review.get_interaction("i1")
    assert record is not None and (record.participants.vip_id, record.duration_s) == (VIP_ID, 300.0)
    with box.store.session() as s:
        assert s.scalars(select(AlertPersonRow).where(AlertPersonRow.person_id == VIP_ID)).all() == []

    # the staff member's erasure leaves no name at all
    apply(box, answer(3, erased=[STAFF_ID]))
    assert STAFF not in alerts_text(box) and STAFF not in outbox_text(box.store)


def test_a_store_written_before_the_index_is_indexed_once_at_start(
        box: EdgeRuntime, photo_bytes: Callable[[str], bytes], make_config: Callable[..., EdgeConfig],
        engine_pool: EnginePool) -> None:
    a_morning(box, photo_bytes)
    with box.store.session() as s, s.begin():  # as a store of the version before the index left it
        s.execute(delete(AlertPersonRow))
        s.execute(delete(OutboxPersonRow))
        s.execute(delete(MetaRow).where(MetaRow.key == META_INDEXED))
    database = box.store.engine.url.database
    assert database is not None
    reopened = Store(Path(database), branch_id=box.config.branch.id, cipher=box.store.cipher)
    try:
        with reopened.session() as s:
            alerts = set(s.scalars(select(AlertPersonRow.person_id)))
            events = len(s.scalars(select(OutboxPersonRow.seq).where(OutboxPersonRow.person_id == VIP_ID)).all())
        assert alerts == {VIP_ID, STAFF_ID} and events == 6  # 4 alerts, the episode, the clip
        assert reopened.meta(META_INDEXED) == "1"
    finally:
        reopened.engine.dispose()
    apply(box, answer(2, erased=[VIP_ID]))
    assert VIP not in alerts_text(box) and VIP not in outbox_text(box.store)


def test_an_open_terminal_is_sent_the_scrubbed_cards_after_the_erasure(
        make_config: Callable[..., EdgeConfig], engine_pool: EnginePool,
        photo_bytes: Callable[[str], bytes]) -> None:
    # a box with a console (not registered yet: its sync applies what it is given) and a tablet connected
    runtime = EdgeRuntime(make_config(sync={"console_url": "http://127.0.0.1:9"}), engine=engine_pool)
    try:
        assert runtime.sync is not None
        a_morning(runtime, photo_bytes)
        changes, _ = parse_answer(answer(2, erased=[VIP_ID]))

        async def tablet() -> list[HubMessage]:
            sub, replay = await runtime.hub.subscribe("tablet", 0, runtime.hub.epoch)
            assert VIP in json.dumps([a.model_dump(mode="json") for a in replay.alerts], ensure_ascii=False)
            assert runtime.sync is not None
            await asyncio.to_thread(runtime.sync.applier.apply, changes)  # the puller's thread applies it
            return [await asyncio.wait_for(sub.queue.get(), 5) for _ in range(4)]

        pushed = asyncio.run(tablet())
    finally:
        runtime.stop()
    alerts = [m.alert for m in pushed if m.type == "alert" and m.alert is not None]
    assert len(alerts) == 4 and {a.id for a in alerts} == {a.id for a in runtime.store.since(0)}
    text = json.dumps([a.model_dump(mode="json") for a in alerts], ensure_ascii=False)
    assert VIP not in text and "沪A12345" not in text and ERASED_NAME in text
