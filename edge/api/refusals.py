"""Refused requests (401, 403, 429): counted per source, throttled, and audited in aggregate.

The rule: a client that keeps getting refused costs the box a counter, not a database row. Each
refusal adds one to a bucket keyed by (source address, actor, status, action); :meth:`RefusalLog.flush`
writes one audit row per bucket, with the count, the time span, a sample path and the clips asked
for, and empties the buckets. The app flushes every ``window_s`` and once more at shutdown, so a
flood of refusals leaves a few rows a minute instead of one per request; a crash loses at most one
window of refusal counts (granted requests are audited at once, as before).

A source that is refused more than ``burst`` times within ``window_s`` is *blocked* for ``block_s``:
every guarded request from it is answered 429 with ``Retry-After`` before its token is looked at.
Memory stays bounded: at most ``max_keys`` buckets and sources are held; beyond that, refusals are
counted in one overflow bucket per status (source ``other``) and new sources are not tracked.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

logger = logging.getLogger(__name__)

OVERFLOW_SOURCE = "other"
MAX_CLIP_SAMPLES = 10


@dataclass(frozen=True, slots=True)
class RefusalPolicy:
    window_s: float = 60.0  # one audit row per bucket per window; also the span ``burst`` is counted over
    burst: int = 20  # refusals one source may get in a window before it is blocked
    block_s: float = 60.0  # how long a blocked source is answered 429
    max_keys: int = 1024  # buckets (and tracked sources) held at once

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.block_s <= 0 or self.burst < 1 or self.max_keys < 1:
            raise ValueError(f"bad refusal policy {self}")


@dataclass(slots=True)
class _Bucket:
    reason: str
    first: datetime
    last: datetime
    count: int = 0
    sample: str = ""
    clips: Counter[str] = field(default_factory=Counter)
    no_clip: int = 0


@dataclass(slots=True)
class _Strikes:
    since: float
    count: int = 0
    blocked_until: float = 0.0


BucketKey = tuple[str, str, int, str]  # source, actor, status, action


class RefusalLog:
    """Thread-safe: the guards call it from request threads, the app's flusher from another."""

    def __init__(self, policy: RefusalPolicy, audit: Callable[..., None], *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], datetime] | None = None) -> None:
        self.policy = policy
        self._audit = audit
        self._clock = clock
        self._wall = wall or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._buckets: dict[BucketKey, _Bucket] = {}
        self._strikes: dict[str, _Strikes] = {}

    def retry_after(self, source: str) -> float | None:
        """Seconds until ``source`` is unblocked; None when it is not blocked."""
        now = self._clock()
        with self._lock:
            strikes = self._strikes.get(source)
            if strikes is None or strikes.blocked_until <= now:
                return None
            return strikes.blocked_until - now

    def refused(self, *, source: str, actor: str, status: int, reason: str, action: str,
                clip_id: str | None = None, where: str = "") -> None:
        """Count one refusal (a 429 too) and add a strike against ``source`` (not for a 429: a blocked
        source is not blocked longer for asking)."""
        now, at = self._clock(), self._wall()
        with self._lock:
            self._count(source, actor, status, action, reason, clip_id, where, at)
            if status != 429:
                self._strike(source, now)

    def flush(self) -> int:
        """Write one audit row per bucket and empty them; returns the rows written. A row that fails to
        be written goes back into its bucket for the next flush."""
        with self._lock:
            buckets, self._buckets = self._buckets, {}
            self._forget_stale_sources(self._clock())
        written = 0
        for key, bucket in buckets.items():
            source, actor, status, action = key
            try:
                self._audit(actor=actor, action=action, clip_id=_single_clip(bucket),
                            outcome="throttled" if status == 429 else "refused",
                            detail=_detail(source, status, bucket))
            except SQLAlchemyError:
                logger.exception("could not write the refusal audit row for %s (%s x%s); kept for the next "
                                 "flush", source, status, bucket.count)
                with self._lock:
                    self._merge_back(key, bucket)
                continue
            written += 1
        return written

    @property
    def pending(self) -> int:
        """Refusals counted but not written yet."""
        with self._lock:
            return sum(b.count for b in self._buckets.values())

    # -- under the lock ---------------------------------------------------------------------------
    def _count(self, source: str, actor: str, status: int, action: str, reason: str, clip_id: str | None,
               where: str, at: datetime) -> None:
        key: BucketKey = (source, actor, status, action)
        bucket = self._buckets.get(key)
        if bucket is None and len(self._buckets) >= self.policy.max_keys:
            key = (OVERFLOW_SOURCE, "*", status, "*")
            bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(reason=reason, first=at, last=at, sample=where[:200])
        bucket.count += 1
        bucket.last = at
        if clip_id is None:
            bucket.no_clip += 1
        elif clip_id in bucket.clips or len(bucket.clips) < MAX_CLIP_SAMPLES:
            bucket.clips[clip_id[:64]] += 1

    def _strike(self, source: str, now: float) -> None:
        strikes = self._strikes.get(source)
        if strikes is None:
            if len(self._strikes) >= self.policy.max_keys:
                self._forget_stale_sources(now)
                if len(self._strikes) >= self.policy.max_keys:
                    return
            strikes = self._strikes[source] = _Strikes(since=now)
        if now - strikes.since >= self.policy.window_s:
            strikes.since, strikes.count = now, 0
        strikes.count += 1
        if strikes.count > self.policy.burst and strikes.blocked_until <= now:
            strikes.blocked_until = now + self.policy.block_s
            logger.warning("blocking %s for %.0f s: %s refused requests within %.0f s", source,
                           self.policy.block_s, strikes.count, self.policy.window_s)

    def _forget_stale_sources(self, now: float) -> None:
        stale = [s for s, k in self._strikes.items()
                 if k.blocked_until <= now and now - k.since >= self.policy.window_s]
        for source in stale:
            del self._strikes[source]

    def _merge_back(self, key: BucketKey, old: _Bucket) -> None:
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = old
            return
        bucket.count += old.count
        bucket.first = min(bucket.first, old.first)
        bucket.no_clip += old.no_clip
        bucket.clips.update(old.clips)


def _single_clip(bucket: _Bucket) -> str | None:
    """The clip every refusal of the bucket asked for, if they all asked for the same one."""
    if bucket.no_clip or len(bucket.clips) != 1:
        return None
    return next(iter(bucket.clips))


def _detail(source: str, status: int, bucket: _Bucket) -> str:
    span = f"{bucket.first:%Y-%m-%dT%H:%M:%S}Z" if bucket.first == bucket.last else (
        f"{bucket.first:%Y-%m-%dT%H:%M:%S}Z to {bucket.last:%Y-%m-%dT%H:%M:%S}Z")
    text = f"{status} {bucket.reason}: {bucket.count} request(s) from {source}, {span}; e.g. {bucket.sample}"
    if len(bucket.clips) > 1 or (bucket.clips and bucket.no_clip):
        text += "; clips: " + ", ".join(f"{c} x{n}" for c, n in bucket.clips.most_common())
    return text


async def flush_every(log: RefusalLog, interval_s: float) -> None:
    """Flush ``log`` every ``interval_s`` seconds until cancelled (the app runs this while it serves)."""
    while True:
        await asyncio.sleep(interval_s)
        await asyncio.to_thread(log.flush)
