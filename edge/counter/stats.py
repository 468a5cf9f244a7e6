"""Hourly service statistics, pure: hour buckets in the branch's time zone and medians per group.

``staff_id`` None stands for "unidentified staff": someone in the staff zone whose face was not
recognised. All of them share one group, because they cannot be told apart.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from edge.clips.types import InteractionRecord


@dataclass(frozen=True, slots=True)
class GroupStats:
    """One group's numbers. Medians are None when the group has no value for them."""

    interactions: int
    median_service_s: float | None  # over interactions that have ended (a duration), not interrupted ones
    median_wait_s: float | None  # over interactions whose customer waited (wait_s not None)
    ongoing: int = 0  # of the interactions, those not ended yet
    interrupted: int = 0  # of the interactions, those a killed process left open, closed at the next start


@dataclass(frozen=True, slots=True)
class StaffHour:
    staff_id: str | None
    hour: datetime  # start of the branch-local hour, aware, in the branch zone
    stats: GroupStats


@dataclass(frozen=True, slots=True)
class Hour:
    hour: datetime
    stats: GroupStats
    unattended: int


@dataclass(frozen=True, slots=True)
class StaffTotal:
    staff_id: str | None
    stats: GroupStats


@dataclass(frozen=True, slots=True)
class StatsReport:
    by_staff_hour: list[StaffHour]  # sorted by hour, then staff (identified first, by id; unidentified last)
    by_hour: list[Hour]  # every hour with an interaction or an unattended event, sorted
    by_staff: list[StaffTotal]  # totals over the whole range, sorted like by_staff_hour


def hour_bucket(at: datetime, tz: ZoneInfo) -> datetime:
    """The start of the branch-local hour that contains ``at`` (an aware datetime).

    ``astimezone`` sets the fold, so the two 01:00 hours of a daylight-saving fall-back are told
    apart when converted back to UTC (which is how :func:`hourly_stats` keys them: aware datetimes in
    one zone compare equal across a fold).
    """
    if at.tzinfo is None:
        raise ValueError("naive datetime: statistics need aware (UTC) times")
    return at.astimezone(tz).replace(minute=0, second=0, microsecond=0)


def median(values: Iterable[float]) -> float | None:
    """The median, None for no values (the mean of the two middle ones for an even count)."""
    data = list(values)
    return float(statistics.median(data)) if data else None


def group_stats(records: Sequence[InteractionRecord]) -> GroupStats:
    return GroupStats(
        interactions=len(records),
        median_service_s=median(r.duration_s for r in records if r.duration_s is not None and not r.interrupted),
        median_wait_s=median(r.wait_s for r in records if r.wait_s is not None),
        ongoing=sum(1 for r in records if r.ended_at is None),
        interrupted=sum(1 for r in records if r.interrupted),
    )


def _staff_order(staff_id: str | None) -> tuple[bool, str]:
    return (staff_id is None, staff_id or "")


def hourly_stats(interactions: Sequence[InteractionRecord], unattended: Sequence[datetime],
                 tz: ZoneInfo) -> StatsReport:
    """Group interactions by (staff, local hour of ``started_at``), by hour and by staff; count the
    unattended events (their times) per local hour. Ongoing interactions count, but have no
    service time yet; so do interrupted ones (a killed process left them open; their duration is only a
    lower bound)."""
    # keyed by the hour's start in UTC: distinct and ordered even across a daylight-saving fold
    by_pair: dict[tuple[str | None, datetime], list[InteractionRecord]] = {}
    by_hour: dict[datetime, list[InteractionRecord]] = {}
    by_staff: dict[str | None, list[InteractionRecord]] = {}
    for record in interactions:
        hour = hour_bucket(record.started_at, tz).astimezone(UTC)
        staff = record.participants.staff_id
        by_pair.setdefault((staff, hour), []).append(record)
        by_hour.setdefault(hour, []).append(record)
        by_staff.setdefault(staff, []).append(record)
    unattended_per_hour: dict[datetime, int] = {}
    for at in unattended:
        hour = hour_bucket(at, tz).astimezone(UTC)
        unattended_per_hour[hour] = unattended_per_hour.get(hour, 0) + 1
    hours = sorted(set(by_hour) | set(unattended_per_hour))
    return StatsReport(
        by_staff_hour=[StaffHour(staff, hour.astimezone(tz), group_stats(records)) for (staff, hour), records in
                       sorted(by_pair.items(), key=lambda item: (item[0][1], _staff_order(item[0][0])))],
        by_hour=[Hour(hour.astimezone(tz), group_stats(by_hour.get(hour, [])), unattended_per_hour.get(hour, 0))
                 for hour in hours],
        by_staff=[StaffTotal(staff, group_stats(records)) for staff, records in
                  sorted(by_staff.items(), key=lambda item: _staff_order(item[0]))],
    )
