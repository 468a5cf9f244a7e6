"""Refusal counting, throttling and aggregated audit rows (edge.api.refusals), and photo-check slots
(edge.api.limits.PhotoSlots), on a clock the tests move by hand."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from edge.api.limits import PhotoSlots, SlotsBusy
from edge.api.refusals import OVERFLOW_SOURCE, RefusalLog, RefusalPolicy
from edge.review.store import ReviewStore
from tests.edge.review_helpers import new_review_store

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.now - 1000.0)


@pytest.fixture()
def review(tmp_path: Path) -> ReviewStore:
    return new_review_store(tmp_path)


def make_log(review: ReviewStore, clock: Clock, **policy: Any) -> RefusalLog:
    return RefusalLog(RefusalPolicy(**{"window_s": 60.0, "burst": 5, "block_s": 30.0, **policy}), review.audit,
                      clock=clock, wall=clock.wall)


def refuse(log: RefusalLog, source: str = "10.0.0.9", *, actor: str = "anonymous", status: int = 401,
           action: str = "play", clip_id: str | None = "c1") -> None:
    log.refused(source=source, actor=actor, status=status, reason="missing or invalid token", action=action,
                clip_id=clip_id, where=f"GET /api/clips/{clip_id}/video")


def test_refusals_become_one_row_per_source_actor_status_and_action_per_flush(review: ReviewStore) -> None:
    # given 50 refusals from one address on one clip, 3 from another, and 2 by a token lacking the role
    clock = Clock()
    log = make_log(review, clock, burst=1000)
    for _ in range(50):
        refuse(log)
        clock.now += 0.5
    for _ in range(3):
        refuse(log, "10.0.0.7", clip_id=None, action="list")
    refuse(log, "10.0.0.9", actor="lobby-1", status=403)
    refuse(log, "10.0.0.9", actor="lobby-1", status=403, clip_id="c2")
    assert review.list_audit() == [] and log.pending == 55
    # when the log is flushed
    assert log.flush() == 3
    # then there is one row per bucket, with the count, the span and an example
    rows = {(r.actor, r.action, r.clip_id): r for r in review.list_audit()}
    assert set(rows) == {("anonymous", "play", "c1"), ("anonymous", "list", None), ("lobby-1", "play", None)}
    flood = rows["anonymous", "play", "c1"]
    assert flood.outcome == "refused"
    assert flood.detail.startswith("401 missing or invalid token: 50 request(s) from 10.0.0.9, "
                                   "2026-03-02T01:00:00Z to 2026-03-02T01:00:24Z; e.g. GET /api/clips/c1/video")
    assert "clips: c1 x1, c2 x1" in rows["lobby-1", "play", None].detail
    # and a second flush writes nothing new
    assert log.flush() == 0 and log.pending == 0


def test_a_source_past_the_burst_is_blocked_for_block_s_then_counted_afresh(review: ReviewStore) -> None:
    clock = Clock()
    log = make_log(review, clock)
    # given burst (5) refusals: not blocked yet
    for _ in range(5):
        refuse(log)
    assert log.retry_after("10.0.0.9") is None
    # when one more comes, then the address is blocked for block_s; another address is not
    refuse(log)
    assert log.retry_after("10.0.0.9") == pytest.approx(30.0)
    assert log.retry_after("10.0.0.8") is None
    # and asking while blocked (429) does not extend the block
    clock.now += 10
    refuse(log, status=429)
    assert log.retry_after("10.0.0.9") == pytest.approx(20.0)
    # and after block_s, it is free; refusals in a new window start from zero
    clock.now += 60
    assert log.retry_after("10.0.0.9") is None
    for _ in range(5):
        refuse(log)
    assert log.retry_after("10.0.0.9") is None


def test_refusals_spread_over_windows_are_not_blocked(review: ReviewStore) -> None:
    clock = Clock()
    log = make_log(review, clock)
    for _ in range(30):  # one every 20 s: at most 3 in any 60 s window
        refuse(log)
        clock.now += 20
    assert log.retry_after("10.0.0.9") is None


def test_memory_is_bounded_by_max_keys(review: ReviewStore) -> None:
    # given refusals from many more addresses than the log holds buckets for
    clock = Clock()
    log = make_log(review, clock, max_keys=8)
    for i in range(100):
        refuse(log, f"10.1.{i // 256}.{i % 256}")
    # then the first 8 have their own rows and the rest one overflow row
    log.flush()
    rows = review.list_audit(limit=500)
    assert len(rows) == 9
    [overflow] = [r for r in rows if f"from {OVERFLOW_SOURCE}" in r.detail]
    assert ": 92 request(s)" in overflow.detail and overflow.actor == "*"


def test_a_row_that_cannot_be_written_is_kept_for_the_next_flush(review: ReviewStore) -> None:
    clock = Clock()
    failing = {"on": True}

    def audit(**row: Any) -> None:
        if failing["on"]:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        review.audit(**row)

    log = RefusalLog(RefusalPolicy(), audit, clock=clock, wall=clock.wall)
    refuse(log)
    refuse(log)
    assert log.flush() == 0 and log.pending == 2
    refuse(log)
    failing["on"] = False
    assert log.flush() == 1
    [row] = review.list_audit()
    assert ": 3 request(s)" in row.detail


@pytest.mark.parametrize("policy", [{"window_s": 0}, {"burst": 0}, {"block_s": -1}, {"max_keys": 0}])
def test_a_bad_policy_is_refused(policy: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="bad refusal policy"):
        RefusalPolicy(**policy)  # type: ignore[arg-type]


# -- photo-check slots ----------------------------------------------------------------------------
def test_photo_slots_bound_concurrent_work_and_refuse_after_the_wait() -> None:
    # given one slot, held by a check that waits for a signal
    slots = PhotoSlots(1, wait_s=0.0)
    inside, release = threading.Event(), threading.Event()

    def long_check() -> str:
        inside.set()
        release.wait(30)
        return "checked"

    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(slots.run(long_check)))
    worker.start()
    assert inside.wait(30)
    # when another check asks for a slot, then it is refused at once with a retry hint
    with pytest.raises(SlotsBusy) as info:
        slots.run(lambda: "second")
    assert info.value.retry_after_s >= 1
    # and once the first is done, the slot is free again (also after an exception)
    release.set()
    worker.join(30)
    assert results == ["checked"]
    with pytest.raises(ZeroDivisionError):
        slots.run(lambda: 1 / 0)
    assert slots.run(lambda: "third") == "third"


@pytest.mark.parametrize(("slots", "wait_s"), [(0, 1.0), (1, -1.0)])
def test_bad_photo_slots_are_refused(slots: int, wait_s: float) -> None:
    with pytest.raises(ValueError):
        PhotoSlots(slots, wait_s)
