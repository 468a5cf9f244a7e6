"""Clip retention: delete the files of clips older than the retention period, unless on review hold.

Rows stay (``expired_at`` set) so that verdicts and the audit trail keep pointing at something; each
expiry writes an audit row with actor ``retention``. The same job deletes the customer crops shown on
alert cards after their own (shorter) retention, and ``.mp4.part`` files (with their manifests) that stopped
being written while the service ran. What a killed process left behind is salvaged at the next start, before
this job runs (:mod:`edge.clips.recovery`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.clips.manifest import PART_SUFFIX, final_path, manifest_path
from edge.review.store import ReviewStore

logger = logging.getLogger(__name__)

RETENTION_ACTOR = "retention"


def remove_clip_file(path: Path) -> str:
    """Delete ``path``; an already-missing file is fine. Returns the audit detail. Other OSErrors
    (permissions, a read-only disk) propagate, so the clip is not marked expired."""
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return f"file already missing: {path}"
    return f"deleted {path} ({size} bytes)"


STALE_PART_S = 3600.0  # an encoder never keeps a clip open this long past its last write


def remove_stale_parts(clips_dir: Path, *, now_epoch: float, older_than_s: float = STALE_PART_S) -> int:
    """Delete unfinished ``*.mp4.part`` files (a stopped encoder) not written for ``older_than_s``, and their
    manifests."""
    removed = 0
    for part in clips_dir.rglob(f"*{PART_SUFFIX}") if clips_dir.is_dir() else ():
        try:
            if now_epoch - part.stat().st_mtime > older_than_s:
                part.unlink()
                manifest_path(final_path(part)).unlink(missing_ok=True)
                removed += 1
        except FileNotFoundError:
            continue
    if removed:
        logger.warning("retention: removed %s unfinished clip file(s) under %s", removed, clips_dir)
    return removed


def expire_clips(review: ReviewStore, *, now: datetime, retention_days: int) -> list[str]:
    """Expire every clip that ended more than ``retention_days`` before ``now`` and is not held.

    Returns the ids expired by this call. A clip whose file cannot be deleted is logged and left
    for the next run; the others still go. Raises ValueError for a naive ``now`` or
    ``retention_days < 1``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if retention_days < 1:
        raise ValueError(f"retention_days must be >= 1, got {retention_days}")
    cutoff = now - timedelta(days=retention_days)
    expired: list[str] = []
    for clip in review.expirable_clips(ended_before=cutoff):
        try:
            done = review.expire_clip(clip_id=clip.id, ended_before=cutoff, at=now, remove=remove_clip_file,
                                      actor=RETENTION_ACTOR)
        except OSError as exc:
            logger.error("retention: cannot delete the file of clip %s (%s); will retry next run", clip.id, exc)
            continue
        if done:
            expired.append(clip.id)
    if expired:
        logger.info("retention: expired %s clip(s) that ended before %s", len(expired), cutoff.isoformat())
    return expired


class RetentionJob:
    """Runs :func:`expire_clips` every ``interval_s`` seconds (first run at start) in a daemon thread.

    An exception in a run is logged and the job carries on with the next run: it never takes the
    service down.
    """

    def __init__(self, review: ReviewStore, *, retention_days: int, interval_s: float = 3600.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), clips_dir: Path | None = None,
                 snapshots: Callable[[datetime], int] | None = None, snapshot_days: int = 30) -> None:
        if retention_days < 1:
            raise ValueError(f"retention_days must be >= 1, got {retention_days}")
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if snapshot_days < 1:
            raise ValueError(f"snapshot_days must be >= 1, got {snapshot_days}")
        self._review = review
        self._retention_days = retention_days
        self._clips_dir = clips_dir
        self._snapshots = snapshots
        self._snapshot_days = snapshot_days
        self._interval_s = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.failures = 0

    def run_once(self) -> list[str]:
        now = self._clock()
        if self._snapshots is not None:
            gone = self._snapshots(now - timedelta(days=self._snapshot_days))
            if gone:
                logger.info("retention: deleted %s alert snapshot(s) older than %s days", gone, self._snapshot_days)
        if self._clips_dir is not None:
            remove_stale_parts(self._clips_dir, now_epoch=now.timestamp())
        return expire_clips(self._review, now=now, retention_days=self._retention_days)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a background job must survive anything: log it and try again next run
                self.failures += 1
                logger.exception("retention run failed; retrying in %s s", self._interval_s)
            self.runs += 1
            self._stop.wait(self._interval_s)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
