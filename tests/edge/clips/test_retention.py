"""Retention: old clips lose their files (rows stay, audited), held and recent clips are kept."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from edge.clips.retention import RetentionJob, expire_clips, remove_clip_file
from edge.review.store import ReviewStore
from edge.store.tables import SnapshotRow
from tests.edge.review_helpers import T0, clip_written, new_review_store, write_h264

NOW = T0 + timedelta(days=40)


@pytest.fixture()
def review(tmp_path: Path) -> Iterator[ReviewStore]:
    store = new_review_store(tmp_path)
    yield store
    store._store.engine.dispose()


def add(review: ReviewStore, folder: Path, clip_id: str, *, days_ago: float, hold: bool = False) -> Path:
    """A real MP4 whose clip ended ``days_ago`` days before NOW."""
    path = write_h264(folder / "clips" / f"{clip_id}.mp4", frames=2)
    review.add_clip(clip_written(path, clip_id, started_at=NOW - timedelta(days=days_ago, seconds=30),
                                 duration_s=30.0))
    if hold:
        review.set_hold(clip_id=clip_id, hold=True, by="compliance-1")
    return path


def test_old_unheld_clips_expire_and_held_or_recent_ones_are_kept(review: ReviewStore, tmp_path: Path) -> None:
    # given, with 30 days' retention, an old clip, an old held clip and a recent clip
    old = add(review, tmp_path, "old", days_ago=31)
    held = add(review, tmp_path, "held", days_ago=90, hold=True)
    recent = add(review, tmp_path, "recent", days_ago=29)
    # when retention runs
    expired = expire_clips(review, now=NOW, retention_days=30)
    # then only the old, unheld clip lost its file; its row stays, marked expired
    assert expired == ["old"]
    assert not old.exists() and held.exists() and recent.exists()
    clip = review.get_clip("old")
    assert clip is not None and clip.expired_at == NOW and clip.expired
    assert [c.id for c in review.list_clips() if c.expired] == ["old"]
    # and the expiry is audited by "retention"
    [entry] = review.list_audit(clip_id="old")
    assert (entry.actor, entry.action, entry.outcome) == ("retention", "expire", "ok")
    assert str(old) in entry.detail and "deleted" in entry.detail
    # and a second run finds nothing more to do
    assert expire_clips(review, now=NOW, retention_days=30) == []


def test_a_released_hold_lets_the_clip_expire_on_the_next_run(review: ReviewStore, tmp_path: Path) -> None:
    path = add(review, tmp_path, "c1", days_ago=60, hold=True)
    assert expire_clips(review, now=NOW, retention_days=30) == []
    review.set_hold(clip_id="c1", hold=False, by="compliance-1")
    assert expire_clips(review, now=NOW, retention_days=30) == ["c1"]
    assert not path.exists()


def test_an_already_missing_file_is_tolerated(review: ReviewStore, tmp_path: Path) -> None:
    # given an old clip whose file is already gone
    add(review, tmp_path, "gone", days_ago=31).unlink()
    # when retention runs, then the clip is expired anyway and the audit says the file was missing
    assert expire_clips(review, now=NOW, retention_days=30) == ["gone"]
    assert "already missing" in review.list_audit(clip_id="gone")[0].detail


def test_a_file_that_cannot_be_deleted_leaves_its_clip_unexpired_and_the_rest_go_on(
        review: ReviewStore, tmp_path: Path) -> None:
    # given two old clips, the first of which is a directory (unlink fails with an OSError)
    stuck = tmp_path / "clips" / "stuck.mp4"
    stuck.mkdir(parents=True)
    review.add_clip(clip_written(stuck, "stuck", started_at=NOW - timedelta(days=50), duration_s=30.0))
    fine = add(review, tmp_path, "fine", days_ago=31)
    # when retention runs
    expired = expire_clips(review, now=NOW, retention_days=30)
    # then the other clip still expired, the stuck one is unchanged (not expired, no audit row)
    assert expired == ["fine"] and not fine.exists()
    clip = review.get_clip("stuck")
    assert clip is not None and not clip.expired and stuck.exists()
    assert review.list_audit(clip_id="stuck") == []


def test_the_boundary_is_exclusive(review: ReviewStore, tmp_path: Path) -> None:
    # a clip that ended exactly retention_days ago is kept; a microsecond older expires
    add(review, tmp_path, "edge", days_ago=30)
    assert expire_clips(review, now=NOW, retention_days=30) == []
    assert expire_clips(review, now=NOW + timedelta(microseconds=1), retention_days=30) == ["edge"]


def test_an_empty_store_expires_nothing(review: ReviewStore) -> None:
    assert expire_clips(review, now=NOW, retention_days=30) == []


@pytest.mark.parametrize(("now", "days", "reason"), [
    (NOW, 0, "retention_days"),
    (NOW, -3, "retention_days"),
    (NOW.replace(tzinfo=None), 30, "timezone-aware"),
])
def test_bad_arguments_are_refused(review: ReviewStore, tmp_path: Path, now: datetime, days: int,
                                   reason: str) -> None:
    path = add(review, tmp_path, "c1", days_ago=365)
    with pytest.raises(ValueError, match=reason):
        expire_clips(review, now=now, retention_days=days)
    assert path.exists()


def test_remove_clip_file_reports_what_it_did(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    path.write_bytes(b"1234")
    assert remove_clip_file(path) == f"deleted {path} (4 bytes)"
    assert remove_clip_file(path) == f"file already missing: {path}"


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_the_job_runs_at_start_and_then_every_interval(review: ReviewStore, tmp_path: Path) -> None:
    # given an old clip and a job on a fixed clock
    path = add(review, tmp_path, "old", days_ago=31)
    job = RetentionJob(review, retention_days=30, interval_s=0.05, clock=lambda: NOW)
    # when it starts
    job.start()
    try:
        # then the first run expires the clip and later runs keep coming
        wait_for(lambda: job.runs >= 3)
        assert not path.exists() and job.failures == 0
    finally:
        job.stop()
    assert not any(t.name == "retention" for t in threading.enumerate())


class ExplodingReview:
    def expirable_clips(self, *, ended_before: datetime) -> list[Any]:
        raise RuntimeError("disk on fire")


def test_a_failing_run_is_logged_and_the_job_survives(caplog: pytest.LogCaptureFixture) -> None:
    # given a job whose store fails on every run
    job = RetentionJob(cast(ReviewStore, ExplodingReview()), retention_days=30, interval_s=0.01)
    # when it runs a few times
    job.start()
    try:
        wait_for(lambda: job.failures >= 3)
        # then the thread is still alive and each failure was logged with its traceback
        assert any(t.name == "retention" and t.is_alive() for t in threading.enumerate())
    finally:
        job.stop()
    assert "retention run failed" in caplog.text and "disk on fire" in caplog.text


@pytest.mark.parametrize(("kwargs", "reason"), [({"retention_days": 0}, "retention_days"),
                                                ({"retention_days": 30, "interval_s": 0}, "interval_s")])
def test_the_job_refuses_bad_settings(review: ReviewStore, kwargs: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        RetentionJob(review, **kwargs)


def test_the_job_also_removes_stale_part_files_and_old_snapshots(review: ReviewStore, tmp_path: Path) -> None:
    # given a leftover .part from two hours ago, one being written now, and snapshots of 40 and 1 days ago
    clips = tmp_path / "clips" / "counter-1" / "2026-11-02"
    clips.mkdir(parents=True)
    stale, fresh = clips / "a.mp4.part", clips / "b.mp4.part"
    stale_manifest, fresh_manifest = clips / "a.json.part", clips / "b.json.part"
    for path in (stale, fresh, stale_manifest, fresh_manifest):
        path.write_bytes(b"x")
    old_epoch = NOW.timestamp() - 7200
    os.utime(stale, (old_epoch, old_epoch))
    os.utime(fresh, (NOW.timestamp(), NOW.timestamp()))
    store = review._store
    old_id = store.add_snapshot(camera_id="counter-1", jpeg=b"old")
    new_id = store.add_snapshot(camera_id="counter-1", jpeg=b"new")
    with store.session() as s, s.begin():  # backdate the first one
        row = s.get(SnapshotRow, old_id)
        assert row is not None
        row.created_at = NOW - timedelta(days=40)
    with store.session() as s, s.begin():
        row = s.get(SnapshotRow, new_id)
        assert row is not None
        row.created_at = NOW - timedelta(days=1)
    job = RetentionJob(review, retention_days=30, clock=lambda: NOW, clips_dir=tmp_path / "clips",
                       snapshots=store.delete_snapshots, snapshot_days=30)
    # when it runs once
    job.run_once()
    # then the stale part and the old snapshot are gone, the rest stays
    assert not stale.exists() and fresh.exists()
    assert not stale_manifest.exists() and fresh_manifest.exists()
    assert store.snapshot(old_id) is None and store.snapshot(new_id) == b"new"


@pytest.mark.parametrize("days", [0, -1])
def test_a_snapshot_retention_below_one_day_is_refused(review: ReviewStore, days: int) -> None:
    with pytest.raises(ValueError, match="snapshot_days"):
        RetentionJob(review, retention_days=30, snapshot_days=days)
