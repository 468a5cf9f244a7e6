"""The bank view: per branch and per (branch-local) day, from the events the edges sent up.

- ``vip_arrivals``: VIP arrival alerts (face), ``unattended_events``: customer-unattended alerts; both counted
  per hour as the alerts arrive (``central_hours``).
- ``wait_p50_s``, ``wait_p90_s``: percentiles of the waits before service of the day's episodes that had a wait;
  ``service_p50_s``, ``service_mean_s``: of their service times, leaving out episodes a killed process cut short
  (their duration is only a lower bound). Percentiles interpolate linearly between the nearest ranks (the
  median of an even count is the mean of the middle two).
- ``staffed_ratio`` (counter staffing): of the day's active counter hours (an hour with a service, an
  unattended customer or an unstaffed counter), the share in which no counter stood unstaffed past its limit
  (no ``counter_unstaffed`` alert); empty for a day without active hours.

Every day with some data is one row; days without any are left out.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.errors import ConsoleError, not_found
from console.security import Principal
from console.sync.events import branch_zone
from console.tables import Branch, CentralHour, CentralInteraction

STATS_READERS = ("admin", "regional_manager", "compliance")
MAX_DAYS = 366
COLUMNS = ("date", "branch", "branch_name", "vip_arrivals", "wait_p50_s", "wait_p90_s", "service_p50_s",
           "service_mean_s", "unattended_events", "staffed_ratio", "interactions")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) with linear interpolation between the nearest ranks; None for no values."""
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return data[low] + (data[high] - data[low]) * (pos - low)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class _Day:
    vip_arrivals: int = 0
    unattended: int = 0
    active_hours: int = 0
    unstaffed_hours: int = 0
    waits: list[float] = field(default_factory=list)
    services: list[float] = field(default_factory=list)
    interactions: int = 0


@dataclass(frozen=True, slots=True)
class DayRow:
    date: str
    branch: str
    branch_name: str
    vip_arrivals: int
    wait_p50_s: float | None
    wait_p90_s: float | None
    service_p50_s: float | None
    service_mean_s: float | None
    unattended_events: int
    staffed_ratio: float | None
    interactions: int


def _branches(session: Session, caller: Principal, code: str | None) -> list[Branch]:
    caller.require_role(*STATS_READERS)
    if code:
        branch = session.scalar(select(Branch).where(Branch.code == code))
        if branch is None:
            raise not_found("branch", code)
        caller.require_branch(branch.id)
        return [branch]
    return [b for b in session.scalars(select(Branch).order_by(Branch.code)) if caller.sees_branch(b.id)]


def daily_stats(session: Session, caller: Principal, start: date, end: date, branch: str | None = None) -> list[DayRow]:
    """Rows for the days ``start`` .. ``end`` (both included, each branch's local days), by day then branch."""
    if end < start:
        raise ConsoleError("invalid", "'to' is before 'from'", 422)
    if (end - start).days + 1 > MAX_DAYS:
        raise ConsoleError("invalid", f"at most {MAX_DAYS} days at once", 422)
    branches = _branches(session, caller, branch)
    zones: dict[str, list[Branch]] = {}
    for b in branches:
        zones.setdefault(b.timezone, []).append(b)
    days: dict[tuple[int, date], _Day] = {}
    for zone_name, members in zones.items():
        tz = branch_zone(zone_name)
        first = datetime.combine(start, time(), tz)
        after = datetime.combine(end + timedelta(days=1), time(), tz)
        ids = [b.id for b in members]
        for hour in session.scalars(select(CentralHour).where(CentralHour.branch_id.in_(ids),
                                                              CentralHour.hour >= first, CentralHour.hour < after)):
            day = days.setdefault((hour.branch_id, hour.hour.astimezone(tz).date()), _Day())
            day.vip_arrivals += hour.vip_arrivals
            day.unattended += hour.unattended
            if hour.interactions or hour.unattended or hour.unstaffed:
                day.active_hours += 1
                day.unstaffed_hours += 1 if hour.unstaffed else 0
        for episode in session.scalars(select(CentralInteraction).where(
                CentralInteraction.branch_id.in_(ids), CentralInteraction.started_at >= first,
                CentralInteraction.started_at < after)):
            day = days.setdefault((episode.branch_id, episode.started_at.astimezone(tz).date()), _Day())
            day.interactions += 1
            if episode.wait_s is not None:
                day.waits.append(episode.wait_s)
            if episode.duration_s is not None and not episode.interrupted:
                day.services.append(episode.duration_s)
    by_id = {b.id: b for b in branches}
    rows = []
    for (branch_id, day_date), day in sorted(days.items(), key=lambda item: (item[0][1], by_id[item[0][0]].code)):
        b = by_id[branch_id]
        mean = sum(day.services) / len(day.services) if day.services else None
        staffed = (day.active_hours - day.unstaffed_hours) / day.active_hours if day.active_hours else None
        rows.append(DayRow(day_date.isoformat(), b.code, b.name, day.vip_arrivals,
                           _round(percentile(day.waits, 0.5)), _round(percentile(day.waits, 0.9)),
                           _round(percentile(day.services, 0.5)), _round(mean), day.unattended,
                           _round(staffed, 4), day.interactions))
    return rows


def rows_json(rows: Iterable[DayRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def rows_csv(rows: Iterable[DayRow]) -> str:
    """The rows as CSV (UTF-8 text; an empty cell for no value)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        values = asdict(row)
        writer.writerow(["" if values[c] is None else values[c] for c in COLUMNS])
    return out.getvalue()
