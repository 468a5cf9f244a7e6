"""Hourly statistics without HTTP: hour buckets in the branch zone, medians per staff and hour."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from edge.counter.stats import GroupStats, hour_bucket, hourly_stats, median
from tests.edge.review_helpers import interaction

SHANGHAI = ZoneInfo("Asia/Shanghai")


def utc(hour: int, minute: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(("at", "expected"), [
    (utc(1, 30), "2026-03-02T09:00:00+08:00"),
    (utc(1, 0), "2026-03-02T09:00:00+08:00"),  # on the hour: that hour
    (utc(15, 59), "2026-03-02T23:00:00+08:00"),
    (utc(16, 0), "2026-03-03T00:00:00+08:00"),  # UTC afternoon is the next local day
    (datetime(2026, 3, 2, 9, 45, tzinfo=SHANGHAI), "2026-03-02T09:00:00+08:00"),  # already local
])
def test_hour_bucket_is_the_branch_local_hour(at: datetime, expected: str) -> None:
    assert hour_bucket(at, SHANGHAI).isoformat() == expected


def test_hour_bucket_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        hour_bucket(datetime(2026, 3, 2, 9), SHANGHAI)


def test_hour_bucket_uses_the_zone_offset_not_whole_utc_hours() -> None:
    # India is UTC+05:30: 03:45 UTC is 09:15 local, in the 09:00 local hour (03:30 UTC)
    bucket = hour_bucket(utc(3, 45), ZoneInfo("Asia/Kolkata"))
    assert bucket.isoformat() == "2026-03-02T09:00:00+05:30"
    assert bucket.astimezone(UTC) == utc(3, 30)


@pytest.mark.parametrize(("values", "expected"), [
    ([], None),
    ([7.0], 7.0),
    ([5.0, 1.0, 3.0], 3.0),
    ([1.0, 2.0, 3.0, 4.0], 2.5),
    ([0.0, 0.0], 0.0),
])
def test_median(values: list[float], expected: float | None) -> None:
    assert median(values) == expected


def test_empty_input_gives_an_empty_report() -> None:
    report = hourly_stats([], [], SHANGHAI)
    assert (report.by_staff_hour, report.by_hour, report.by_staff) == ([], [], [])


def test_medians_and_hour_buckets_per_staff_and_hour_in_shanghai() -> None:
    # given interactions of two staff and of unidentified staff across two Shanghai hours
    records = [
        interaction("a1", utc(1, 5), staff_id="staff-a", duration_s=60.0, wait_s=10.0),  # 09:05
        interaction("a2", utc(1, 20), staff_id="staff-a", duration_s=120.0, wait_s=None),  # 09:20
        interaction("a3", utc(1, 50), staff_id="staff-a", duration_s=300.0, wait_s=30.0),  # 09:50
        interaction("b1", utc(1, 10), staff_id="staff-b", duration_s=200.0, wait_s=40.0),  # 09:10
        interaction("u1", utc(1, 40), staff_id=None, duration_s=30.0, wait_s=None),  # 09:40
        interaction("a4", utc(2, 15), staff_id="staff-a", duration_s=None, wait_s=5.0),  # 10:15, ongoing
        interaction("b2", utc(2, 30), staff_id="staff-b", duration_s=100.0, wait_s=20.0),  # 10:30
    ]
    # and unattended customers at 09:59, 10:00 and 12:10 local
    unattended = [utc(1, 59), utc(2, 0), utc(4, 10)]
    # when the report is made
    report = hourly_stats(records, unattended, SHANGHAI)
    # then per staff and hour
    assert [(r.staff_id, r.hour.isoformat(), r.stats) for r in report.by_staff_hour] == [
        ("staff-a", "2026-03-02T09:00:00+08:00", GroupStats(3, 120.0, 20.0)),
        ("staff-b", "2026-03-02T09:00:00+08:00", GroupStats(1, 200.0, 40.0)),
        (None, "2026-03-02T09:00:00+08:00", GroupStats(1, 30.0, None)),  # unidentified staff sort last
        ("staff-a", "2026-03-02T10:00:00+08:00", GroupStats(1, None, 5.0, ongoing=1)),  # no service time yet
        ("staff-b", "2026-03-02T10:00:00+08:00", GroupStats(1, 100.0, 20.0)),
    ]
    # and per hour, with the unattended count, including an hour with no interaction
    assert [(r.hour.isoformat(), r.stats, r.unattended) for r in report.by_hour] == [
        ("2026-03-02T09:00:00+08:00", GroupStats(5, 120.0, 30.0), 1),  # services 30,60,120,200,300
        ("2026-03-02T10:00:00+08:00", GroupStats(2, 100.0, 12.5, ongoing=1), 1),
        ("2026-03-02T12:00:00+08:00", GroupStats(0, None, None), 1),
    ]
    # and per staff over the range
    assert [(r.staff_id, r.stats) for r in report.by_staff] == [
        ("staff-a", GroupStats(4, 120.0, 10.0, ongoing=1)),
        ("staff-b", GroupStats(2, 150.0, 30.0)),
        (None, GroupStats(1, 30.0, None)),
    ]
    # and every hour carries the branch's offset
    assert {r.hour.utcoffset() for r in report.by_hour} == {timedelta(hours=8)}


def test_an_interrupted_interaction_counts_but_is_neither_ongoing_nor_a_service_time() -> None:
    # given two services of one clerk in one hour, one of them cut short by a killed process (closed at the
    # next start with the last time it was seen), and one still going on
    cut = replace(interaction("a2", utc(1, 20), duration_s=4.0), interrupted=True)
    records = [interaction("a1", utc(1, 5), duration_s=60.0), cut, interaction("a3", utc(1, 40), duration_s=None)]
    # when the report is made, then all three count, one is ongoing and one interrupted, and the interrupted
    # one's lower-bound duration is left out of the median service time
    [total] = hourly_stats(records, [], SHANGHAI).by_staff
    assert total.stats == GroupStats(3, 60.0, None, ongoing=1, interrupted=1)


def test_a_daylight_saving_fall_back_keeps_the_two_repeated_hours_apart() -> None:
    # given New York's 2025-11-02, when 01:00-01:59 happens twice (EDT, then EST)
    new_york = ZoneInfo("America/New_York")
    first = datetime(2025, 11, 2, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second = datetime(2025, 11, 2, 6, 30, tzinfo=UTC)  # 01:30 EST
    # when bucketed
    report = hourly_stats([interaction("x", first), interaction("y", second)], [], new_york)
    # then they are two hours, in order, each with its own offset
    assert [(r.hour.isoformat(), r.stats.interactions) for r in report.by_hour] == [
        ("2025-11-02T01:00:00-04:00", 1), ("2025-11-02T01:00:00-05:00", 1)]
