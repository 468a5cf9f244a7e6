"""The edge outbox: events written in the same transaction as what they report; the sender's reading side."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from alerts.envelope import AlertDraft, AlertType, VipArrivalPayload
from edge.review.store import ReviewStore
from edge.store.db import Store
from edge.store.tables import AlertRow, ClipUploadRow, OutboxRow
from edge.sync.outbox import Outbox, stage_camera_health, stage_hourly_stats
from tests.edge.review_helpers import clip_written, interaction

SHANGHAI = ZoneInfo("Asia/Shanghai")


def draft(n: int) -> AlertDraft:
    now = datetime.now(UTC)
    return AlertDraft(type=AlertType.VIP_ARRIVAL, branch_id="b1", camera_id="c1", person_id=f"p{n}",
                      title="VIP 到店", captured_at=now,
                      payload=VipArrivalPayload(person_id=f"p{n}", name=f"客户{n}", tier="金卡", photo_url="/p",
                                                score=0.97, margin=0.1, votes=1, track_id=n, camera_name="正门",
                                                first_seen_at=now))


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "edge.db", branch_id="b1", cipher=Fernet(Fernet.generate_key()))


def outbox_rows(store: Store) -> list[OutboxRow]:
    with store.session() as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.seq)))


def count(store: Store, table: type[AlertRow] | type[OutboxRow]) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def test_every_persisted_alert_has_its_outbox_event_with_the_envelope(store: Store) -> None:
    # when two alerts are persisted
    first, second = store.append(draft(1)), store.append(draft(2))
    # then the outbox holds one "alert" event each, in order, carrying the envelope as stored
    rows = outbox_rows(store)
    assert [r.kind for r in rows] == ["alert", "alert"]
    assert [json.loads(r.body)["id"] for r in rows] == [first.id, second.id]
    assert json.loads(rows[1].body)["seq"] == second.seq
    assert not any(r.sent for r in rows)


@pytest.mark.parametrize("refused", ["alerts", "outbox"])
def test_a_failed_write_leaves_neither_the_alert_nor_its_event(store: Store, refused: str) -> None:
    # given the database refusing every new row of one of the two tables (a real SQLite trigger)
    with store.engine.begin() as conn:
        conn.execute(text(f"CREATE TRIGGER refuse BEFORE INSERT ON {refused} "
                          "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"))
    # when an alert is persisted
    with pytest.raises(IntegrityError):
        store.append(draft(1))
    # then neither row is there: they share one transaction
    assert count(store, AlertRow) == 0
    assert count(store, OutboxRow) == 0


def test_an_ack_is_an_event_once(store: Store) -> None:
    alert = store.append(draft(1))
    store.ack(alert.id, "王经理")
    store.ack(alert.id, "李经理")  # a second ack keeps the first: no second event
    acks = [json.loads(r.body) for r in outbox_rows(store) if r.kind == "ack"]
    assert [(a["alert_id"], a["acked_by"]) for a in acks] == [(alert.id, "王经理")]


def test_a_finished_episode_and_a_clip_are_events_with_names(tmp_path: Path, store: Store) -> None:
    review = ReviewStore(store)
    with store.session() as s, s.begin():
        s.execute(text("INSERT INTO persons (id, name, tier, role, consent, photo, photo_sha256, model_id, created_at)"
                       " VALUES ('staff-a', '张柜员', '', 'staff', 'c', x'00', 'x', 'm', '2026-01-01 00:00:00')"))
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    # when an episode starts (nothing to tell the console yet), ends, and its clip is indexed
    review.add_interaction(interaction("i-1", start, duration_s=None, wait_s=12.5))
    assert [r.kind for r in outbox_rows(store)] == []
    review.end_interaction(interaction_id="i-1", ended_at=start + timedelta(seconds=90), duration_s=90.0)
    written = clip_written(tmp_path / "c1.mp4", "c1", started_at=start, duration_s=95.0, plain=b"mp4 bytes")
    review.add_clip(written)
    # then one interaction and one clip event, with the staff member's name, and the clip is owed to the console
    rows = outbox_rows(store)
    assert [r.kind for r in rows] == ["interaction", "clip"]
    episode, clip = json.loads(rows[0].body), json.loads(rows[1].body)
    assert (episode["id"], episode["staff_name"], episode["duration_s"], episode["wait_s"]) == ("i-1", "张柜员",
                                                                                                90.0, 12.5)
    assert (clip["id"], clip["staff_name"], clip["sha256"], clip["size"]) == ("c1", "张柜员", written.sha256, 9)
    assert Outbox(store).clips_to_upload() == ["c1"]
    with store.session() as s:
        assert s.get_one(ClipUploadRow, "c1").state == "pending"


def test_pending_batches_mark_sent_and_prune(store: Store) -> None:
    for n in range(7):
        store.append(draft(n))
    outbox = Outbox(store)
    # the oldest first, at most the limit
    batch = outbox.pending(limit=5)
    assert [e.seq for e in batch] == [1, 2, 3, 4, 5]
    assert outbox.mark_sent([1, 2, 3]) == 3
    assert outbox.mark_sent([1, 2, 3]) == 0  # already sent: nothing changes
    assert [e.seq for e in outbox.pending()] == [4, 5, 6, 7]
    # sent rows go after the retention; unsent rows never
    assert outbox.prune(sent_before=datetime.now(UTC) - timedelta(days=1)) == 0
    assert outbox.prune(sent_before=datetime.now(UTC) + timedelta(seconds=1)) == 3
    assert outbox.unsent() == 4
    # a pruned seq is never handed out again (AUTOINCREMENT): the console would take it for a duplicate
    outbox.mark_sent([4, 5, 6, 7])
    outbox.prune(sent_before=datetime.now(UTC) + timedelta(seconds=1))
    store.append(draft(99))
    assert [e.seq for e in outbox.pending()] == [8]


def test_hourly_stats_one_event_per_closed_local_hour_across_a_restart(tmp_path: Path, store: Store) -> None:
    review = ReviewStore(store)
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    # the first call only remembers the hour it runs in
    assert stage_hourly_stats(store, review, SHANGHAI, t0 + timedelta(minutes=5)) == 0
    review.add_interaction(interaction("i-1", t0 + timedelta(minutes=10), duration_s=60.0, wait_s=30.0))
    review.add_interaction(interaction("i-2", t0 + timedelta(minutes=20), duration_s=120.0, wait_s=None))
    review.add_unattended(camera_id="counter-1", customer_track=3, vip_id=None, zone="wait", waited_s=200.0,
                          at=t0 + timedelta(minutes=30), alert_id=None)
    before = len(outbox_rows(store))
    # when the box runs on past 11:00 (two hours closed), then again in the same hour (a restart)
    assert stage_hourly_stats(store, review, SHANGHAI, t0 + timedelta(hours=2, minutes=1)) == 2
    assert stage_hourly_stats(store, review, SHANGHAI, t0 + timedelta(hours=2, minutes=30)) == 0
    rows = [json.loads(r.body) for r in outbox_rows(store)[before:] if r.kind == "stats_hourly"]
    # then 09:00 carries its numbers and 10:00 is an empty hour
    assert [r["hour"] for r in rows] == [t0.isoformat(), (t0 + timedelta(hours=1)).isoformat()]
    assert (rows[0]["interactions"], rows[0]["median_service_s"], rows[0]["median_wait_s"],
            rows[0]["unattended"]) == (2, 90.0, 30.0, 1)
    assert (rows[1]["interactions"], rows[1]["unattended"]) == (0, 0)


def test_camera_health_is_one_event(store: Store) -> None:
    stage_camera_health(store, [{"id": "c1", "state": "ok", "fps": 12.0}], datetime.now(UTC))
    rows = outbox_rows(store)
    assert [r.kind for r in rows] == ["camera_health"]
    assert json.loads(rows[0].body) == {"cameras": [{"id": "c1", "state": "ok", "fps": 12.0}]}


def test_a_box_without_a_console_drops_only_old_unsent_events(store: Store) -> None:
    store.append(draft(1))
    store.append(draft(2))
    outbox = Outbox(store)
    assert outbox.drop_unsent(older_than=datetime.now(UTC) - timedelta(days=30)) == 0
    outbox.mark_sent([1])
    assert outbox.drop_unsent(older_than=datetime.now(UTC) + timedelta(seconds=1)) == 1  # seq 2; sent rows stay
    assert [r.seq for r in outbox_rows(store)] == [1]
