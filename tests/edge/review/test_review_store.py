"""The review store on a real SQLite file: clips, interactions, verdicts, holds and the append-only audit."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from edge.review.store import ReviewStore
from edge.review.types import ClipExpiredError, DuplicateRecordError, UnknownClipError, UnknownInteractionError
from tests.edge.review_helpers import CLIPS, T0, clip_written, interaction, new_review_store, write_h264


@pytest.fixture()
def review(tmp_path: Path) -> Iterator[ReviewStore]:
    store = new_review_store(tmp_path)
    yield store
    store._store.engine.dispose()


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_h264(tmp_path_factory.mktemp("clips") / "a.mp4")


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_written_clip_is_indexed_with_no_hold_no_expiry_no_verdict(review: ReviewStore, mp4: Path) -> None:
    # given a real clip file and its record
    written = clip_written(mp4, "c1", duration_s=42.5)
    # when it is indexed
    review.add_clip(written)
    # then it reads back with the defaults
    clip = review.get_clip("c1")
    assert clip is not None
    assert (clip.path, clip.sha256, clip.size_bytes, clip.frames) == (mp4.resolve(), written.sha256,
                                                                      mp4.stat().st_size, 8)
    assert clip.participants == written.participants
    assert (clip.started_at, clip.ended_at, clip.duration_s) == (T0, T0 + timedelta(seconds=42.5), 42.5)
    assert (clip.hold, clip.expired_at, clip.expired, clip.verdict) == (False, None, False, None)
    assert review.get_clip("nope") is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        clip.hold = True  # type: ignore[misc]


def _bad(written: Any, **changes: Any) -> Any:
    return dataclasses.replace(written, **changes)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"started_at": T0.replace(tzinfo=None)}, "timezone-aware"),
    ({"ended_at": T0 - timedelta(seconds=1)}, "before"),
    ({"duration_s": -1.0}, "duration_s"),
    ({"duration_s": float("nan")}, "duration_s"),
    ({"path": Path("relative.mp4")}, "absolute"),
    ({"sha256": "XYZ"}, "sha256"),
    ({"sha256": ""}, "sha256"),
    ({"size_bytes": -5}, ">= 0"),
])
def test_a_bad_clip_record_is_refused_and_nothing_is_stored(review: ReviewStore, mp4: Path, tmp_path: Path,
                                                            changes: dict[str, Any], reason: str) -> None:
    # given a clip record with one bad field
    written = _bad(clip_written(mp4, "bad"), **changes)
    # when it is indexed, then it is refused with the reason and no row was written
    with pytest.raises(ValueError, match=reason):
        review.add_clip(written)
    assert _count(tmp_path / "edge.db", "clips") == 0


def test_a_duplicate_clip_id_is_refused(review: ReviewStore, mp4: Path, tmp_path: Path) -> None:
    review.add_clip(clip_written(mp4, "c1"))
    with pytest.raises(DuplicateRecordError):
        review.add_clip(clip_written(mp4, "c1", duration_s=1.0))
    assert _count(tmp_path / "edge.db", "clips") == 1
    clip = review.get_clip("c1")
    assert clip is not None and clip.duration_s == 30.0


# T0 is 2026-03-02 09:00 in Shanghai; c-late starts at 2026-03-02 16:30 UTC = 03-03 00:30 Shanghai.


@pytest.mark.parametrize(("filters", "expected"), [
    ({}, ["c-late", "c-u1", "c-b1", "c-a2", "c-a1"]),  # newest first
    ({"date_from": T0 + timedelta(hours=2)}, ["c-late", "c-u1", "c-b1", "c-a2"]),  # inclusive
    ({"date_to": T0 + timedelta(hours=2)}, ["c-a1"]),  # exclusive
    ({"date_from": T0 + timedelta(hours=2), "date_to": T0 + timedelta(hours=4)}, ["c-b1", "c-a2"]),
    ({"staff_id": "staff-a"}, ["c-a2", "c-a1"]),
    ({"staff_id": "nobody"}, []),
    ({"camera_id": "counter-2"}, ["c-u1", "c-b1"]),
    ({"min_duration_s": 90.0}, ["c-late", "c-b1", "c-a2"]),  # inclusive
    ({"max_duration_s": 30.0}, ["c-u1", "c-a1"]),  # inclusive
    ({"min_duration_s": 31.0, "max_duration_s": 300.0}, ["c-b1", "c-a2"]),
    ({"camera_id": "counter-1", "staff_id": "staff-b"}, ["c-late"]),
    ({"verdict": "violation"}, ["c-b1"]),
    ({"verdict": "compliant"}, ["c-a1"]),  # c-a1's later verdict replaced its first one
    ({"verdict": "needs_follow_up"}, []),
    ({"verdict": "none"}, ["c-late", "c-u1", "c-a2"]),
    ({"limit": 2}, ["c-late", "c-u1"]),
    ({"limit": 2, "offset": 2}, ["c-b1", "c-a2"]),
    ({"offset": 10}, []),
])
def test_list_clips_filters(review: ReviewStore, mp4: Path, filters: dict[str, Any], expected: list[str]) -> None:
    # given five clips, two of them judged (c-a1 twice: violation, then compliant)
    for clip_id, started, duration, camera, staff in CLIPS:
        review.add_clip(clip_written(mp4, clip_id, started_at=started, duration_s=duration, camera_id=camera,
                                     staff_id=staff))
    review.add_verdict(clip_id="c-a1", verdict="violation", notes="", by="r1")
    review.add_verdict(clip_id="c-a1", verdict="compliant", notes="on second look", by="r2")
    review.add_verdict(clip_id="c-b1", verdict="violation", notes="", by="r1")
    # when listed with the filters, then exactly the expected clips come back, in order
    assert [c.id for c in review.list_clips(**filters)] == expected


def test_list_clips_on_an_empty_store_is_empty(review: ReviewStore) -> None:
    assert review.list_clips() == []


@pytest.mark.parametrize("filters", [{"verdict": "great"}, {"limit": 0}, {"offset": -1},
                                     {"date_from": T0.replace(tzinfo=None)}])
def test_list_clips_refuses_bad_filters(review: ReviewStore, filters: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        review.list_clips(**filters)


def test_verdicts_are_a_history_whose_latest_is_current_and_each_is_audited(review: ReviewStore,
                                                                           mp4: Path) -> None:
    # given a clip
    review.add_clip(clip_written(mp4, "c1"))
    # when two reviewers judge it in turn
    first = review.add_verdict(clip_id="c1", verdict="needs_follow_up", notes="ask branch", by="r1")
    second = review.add_verdict(clip_id="c1", verdict="violation", notes="没有唱收唱付", by="r2")
    # then both are kept, the latest is current, and each has an audit row
    assert [v.verdict for v in review.list_verdicts("c1")] == ["needs_follow_up", "violation"]
    assert second.id > first.id
    clip = review.get_clip("c1")
    assert clip is not None and clip.verdict == second
    audit = review.list_audit(clip_id="c1")
    assert [(a.actor, a.action, a.outcome) for a in audit] == [("r2", "verdict", "ok"), ("r1", "verdict", "ok")]
    assert f"id={second.id}" in audit[0].detail


@pytest.mark.parametrize(("clip_id", "verdict", "notes", "error"), [
    ("nope", "compliant", "", UnknownClipError),
    ("c1", "great", "", ValueError),
    ("c1", "", "", ValueError),
    ("c1", "compliant", "x" * 2001, ValueError),
])
def test_a_bad_verdict_is_refused_and_nothing_is_written(review: ReviewStore, mp4: Path, tmp_path: Path,
                                                         clip_id: str, verdict: Any, notes: str,
                                                         error: type[Exception]) -> None:
    review.add_clip(clip_written(mp4, "c1"))
    with pytest.raises(error):
        review.add_verdict(clip_id=clip_id, verdict=verdict, notes=notes, by="r1")
    assert _count(tmp_path / "edge.db", "clip_verdicts") == 0
    assert _count(tmp_path / "edge.db", "review_audit") == 0


def test_notes_of_exactly_2000_characters_are_kept(review: ReviewStore, mp4: Path) -> None:
    review.add_clip(clip_written(mp4, "c1"))
    assert review.add_verdict(clip_id="c1", verdict="compliant", notes="注" * 2000, by="r1").notes == "注" * 2000


@pytest.mark.parametrize(("table", "statement"), [
    ("review_audit", "UPDATE review_audit SET outcome = 'ok', actor = 'someone-else'"),
    ("review_audit", "DELETE FROM review_audit"),
    ("review_audit", "DELETE FROM review_audit WHERE actor = 'r1'"),
    ("clip_verdicts", "UPDATE clip_verdicts SET verdict = 'compliant'"),
    ("clip_verdicts", "DELETE FROM clip_verdicts"),
])
def test_the_audit_and_verdict_tables_refuse_update_and_delete_in_sql(
        review: ReviewStore, mp4: Path, tmp_path: Path, table: str, statement: str) -> None:
    # given a verdict (and so an audit row) and a refused request
    review.add_clip(clip_written(mp4, "c1"))
    review.add_verdict(clip_id="c1", verdict="violation", notes="", by="r1")
    review.audit(actor="anonymous", action="play", clip_id="c1", outcome="refused", detail="401")
    before = _rows(tmp_path / "edge.db", table)
    # when someone changes or deletes rows through plain SQL, then SQLite aborts
    with sqlite3.connect(tmp_path / "edge.db") as conn, pytest.raises(sqlite3.IntegrityError,
                                                                      match="append-only"):
        conn.execute(statement)
    # and so does the app's own engine
    with pytest.raises(IntegrityError, match="append-only"), review._store.engine.begin() as conn:
        conn.execute(text(statement))
    # and the rows are unchanged
    assert _rows(tmp_path / "edge.db", table) == before
    assert before


def _rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(f"SELECT * FROM {table} ORDER BY id"))


def test_reopening_the_store_keeps_data_and_the_triggers(review: ReviewStore, mp4: Path, tmp_path: Path) -> None:
    review.add_clip(clip_written(mp4, "c1"))
    again = ReviewStore(review._store)
    assert again.get_clip("c1") is not None
    with sqlite3.connect(tmp_path / "edge.db") as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert names == {"review_audit_no_update", "review_audit_no_delete", "clip_verdicts_no_update",
                     "clip_verdicts_no_delete"}


def test_hold_and_release_are_audited_and_an_unknown_or_expired_clip_is_refused(review: ReviewStore,
                                                                               mp4: Path) -> None:
    review.add_clip(clip_written(mp4, "c1"))
    held = review.set_hold(clip_id="c1", hold=True, by="r1")
    assert (held.hold, held.hold_by) == (True, "r1")
    released = review.set_hold(clip_id="c1", hold=False, by="r2")
    assert (released.hold, released.hold_by) == (False, "r2")
    assert [(a.action, a.actor) for a in review.list_audit(clip_id="c1")] == [("release", "r2"), ("hold", "r1")]
    with pytest.raises(UnknownClipError):
        review.set_hold(clip_id="nope", hold=True, by="r1")
    assert review.expire_clip(clip_id="c1", ended_before=T0 + timedelta(days=1), at=T0 + timedelta(days=1),
                              remove=lambda _: "test")
    with pytest.raises(ClipExpiredError):
        review.set_hold(clip_id="c1", hold=True, by="r1")
    clip = review.get_clip("c1")
    assert clip is not None and not clip.hold


def test_audit_is_listed_newest_first_with_filters(review: ReviewStore) -> None:
    for i in range(5):
        review.audit(actor=f"a{i % 2}", action="play", clip_id=f"c{i}", outcome="ok", detail=str(i))
    assert [e.detail for e in review.list_audit()] == ["4", "3", "2", "1", "0"]
    assert [e.detail for e in review.list_audit(actor="a0")] == ["4", "2", "0"]
    assert [e.detail for e in review.list_audit(clip_id="c3")] == ["3"]
    assert [e.detail for e in review.list_audit(limit=2, offset=1)] == ["3", "2"]
    assert review.list_audit(clip_id="none") == []


def test_overlong_audit_fields_are_cut_not_refused(review: ReviewStore) -> None:
    review.audit(actor="", action="play", clip_id="x" * 500, outcome="refused", detail="d" * 5000)
    [entry] = review.list_audit()
    assert (entry.actor, len(entry.clip_id or ""), len(entry.detail)) == ("anonymous", 64, 2000)


def test_an_interaction_is_stored_at_start_and_ended_later(review: ReviewStore) -> None:
    # given an interaction that has just started
    review.add_interaction(interaction("i1", T0, duration_s=None, wait_s=12.5))
    started = review.get_interaction("i1")
    assert started is not None and (started.ended_at, started.duration_s, started.wait_s) == (None, None, 12.5)
    # when it ends
    review.end_interaction(interaction_id="i1", ended_at=T0 + timedelta(seconds=95), duration_s=95.0)
    # then its end and duration are stored
    ended = review.get_interaction("i1")
    assert ended is not None and (ended.ended_at, ended.duration_s) == (T0 + timedelta(seconds=95), 95.0)
    assert ended.participants.staff_id == "staff-a"
    assert review.get_interaction("nope") is None


@pytest.mark.parametrize(("record", "error"), [
    (interaction("i1", T0), DuplicateRecordError),
    (interaction("i2", T0.replace(tzinfo=None)), ValueError),
    (interaction("i3", T0, duration_s=-1.0), ValueError),
    (interaction("i4", T0, wait_s=float("inf")), ValueError),
])
def test_a_bad_interaction_is_refused(review: ReviewStore, tmp_path: Path, record: Any,
                                      error: type[Exception]) -> None:
    review.add_interaction(interaction("i1", T0))
    with pytest.raises(error):
        review.add_interaction(record)
    assert _count(tmp_path / "edge.db", "interactions") == 1


@pytest.mark.parametrize(("interaction_id", "ended_at", "duration_s", "error"), [
    ("nope", T0, 1.0, UnknownInteractionError),
    ("i1", T0.replace(tzinfo=None), 1.0, ValueError),
    ("i1", T0, -0.5, ValueError),
])
def test_ending_an_unknown_or_with_bad_values_is_refused(review: ReviewStore, interaction_id: str,
                                                         ended_at: datetime, duration_s: float,
                                                         error: type[Exception]) -> None:
    review.add_interaction(interaction("i1", T0, duration_s=None))
    with pytest.raises(error):
        review.end_interaction(interaction_id=interaction_id, ended_at=ended_at, duration_s=duration_s)
    stored = review.get_interaction("i1")
    assert stored is not None and stored.ended_at is None


def test_interactions_and_unattended_events_are_listed_by_time_and_camera(review: ReviewStore) -> None:
    review.add_interaction(interaction("i1", T0))
    review.add_interaction(interaction("i2", T0 + timedelta(hours=1), camera_id="counter-2"))
    review.add_unattended(camera_id="counter-1", customer_track=7, vip_id="vip-1", zone="waiting",
                          waited_s=65.0, at=T0 + timedelta(minutes=5), alert_id="a1")
    review.add_unattended(camera_id="counter-2", customer_track=8, vip_id=None, zone="waiting",
                          waited_s=70.0, at=T0 + timedelta(hours=2), alert_id=None)
    assert [r.participants.interaction_id for r in review.list_interactions()] == ["i1", "i2"]
    assert [r.participants.interaction_id for r in review.list_interactions(camera_id="counter-2")] == ["i2"]
    assert [r.participants.interaction_id for r in
            review.list_interactions(started_from=T0, started_before=T0 + timedelta(hours=1))] == ["i1"]
    [first] = review.list_unattended(at_before=T0 + timedelta(hours=1))
    assert (first.customer_track, first.vip_id, first.waited_s, first.alert_id) == (7, "vip-1", 65.0, "a1")
    assert [u.customer_track for u in review.list_unattended(camera_id="counter-2")] == [8]
    with pytest.raises(ValueError):
        review.add_unattended(camera_id="c", customer_track=1, vip_id=None, zone="w", waited_s=-1.0, at=T0,
                              alert_id=None)


@pytest.mark.parametrize(("filters", "expected"), [
    ({"staff_ids": {"staff-a", "staff-b"}}, ["c-late", "c-b1", "c-a2", "c-a1"]),
    ({"staff_ids": set()}, []),  # a name that matched nobody
    ({"vip_ids": {"vip-1"}}, ["c-b1"]),
    ({"camera_ids": {"counter-2"}, "staff_ids": {"staff-b"}}, ["c-b1"]),
    ({"camera_ids": {"counter-1", "counter-2"}, "vip_ids": {"vip-1", "vip-2"}}, ["c-b1", "c-a1"]),
])
def test_list_clips_filters_on_sets_of_ids(review: ReviewStore, mp4: Path, filters: dict[str, Any],
                                           expected: list[str]) -> None:
    # given five clips, two of them with a VIP customer
    vips = {"c-a1": "vip-2", "c-b1": "vip-1"}
    for clip_id, started, duration, camera, staff in CLIPS:
        review.add_clip(clip_written(mp4, clip_id, started_at=started, duration_s=duration, camera_id=camera,
                                     staff_id=staff, vip_id=vips.get(clip_id)))
    # when listed with the ids a name filter resolved to, then exactly those clips come back, newest first
    assert [c.id for c in review.list_clips(**filters)] == expected
