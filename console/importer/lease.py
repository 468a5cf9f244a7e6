"""Who runs an import job, and what happens to a job whose runner is gone.

A job is run by one process at a time: starting (or resuming) a job *claims* it, setting ``runner`` (host,
pid and a random token of this process) and ``heartbeat_at``, in one UPDATE that succeeds only when the job
is ``queued`` or ``interrupted``. While it runs, a heartbeat thread renews ``heartbeat_at`` every
:data:`HEARTBEAT_S` seconds, and every row's commit checks that the job is still this runner's (see
:func:`console.importer.jobs.count_row`), so a runner that lost its job writes no further row.

A console that starts (and the CLI before an import) recovers the jobs whose runner is gone
(:func:`recover_jobs`) and marks them ``interrupted`` (中断) with the reason:

- on this host, a runner whose process no longer exists (a ``kill -9``, a power cut): at once (replicas in
  containers need hostnames of their own, as Docker and Kubernetes give them, since pids are per container);
- on any host, a runner whose lease is older than :data:`LEASE_S` (its replica died, or hangs): so a live
  replica's job, whose heartbeat is fresh, is never taken from it. The replicas' clocks are assumed to agree
  within a few seconds (NTP), far less than the lease.

An interrupted job can be resumed (the rows already done are skipped) or abandoned; one left
:data:`ABANDON_AFTER` is abandoned at the next start and its encrypted upload deleted.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from console import audit
from console.context import ConsoleContext
from console.db import utcnow
from console.importer import sealed
from console.tables import ImportJob

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
LEASE_S = 30.0
ABANDON_AFTER = timedelta(days=7)
ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "abandoned")
_IDENTITY: dict[int, str] = {}


def runner_id() -> str:
    """This process as a job's runner: ``host:pid:token`` (the token tells a reused pid from this process)."""
    pid = os.getpid()
    if pid not in _IDENTITY:  # a forked child is another runner
        _IDENTITY.clear()
        _IDENTITY[pid] = f"{socket.gethostname()[:80]}:{pid}:{secrets.token_hex(4)}"
    return _IDENTITY[pid]


def _process_gone(runner: str) -> bool:
    """Whether ``runner`` was a process of this host that no longer exists."""
    host, _, rest = runner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname()[:80] or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def why_gone(job: ImportJob, now: datetime) -> str | None:
    """Why ``job`` (queued or running) has no live runner, in Chinese then English; None while it has one."""
    if job.runner and job.runner != runner_id() and _process_gone(job.runner):
        return (f"运行此任务的进程已退出（{job.runner}）/ the process that ran this job is gone ({job.runner})")
    beat = job.heartbeat_at or job.created_at
    if now - beat > timedelta(seconds=LEASE_S) and job.runner != runner_id():
        return (f"运行此任务的控制台已 {int((now - beat).total_seconds())} 秒无心跳 / the console that ran this job "
                f"has not renewed its lease since {beat.isoformat(timespec='seconds')}")
    return None


def recover_jobs(ctx: ConsoleContext) -> list[str]:
    """Mark the jobs whose runner is gone ``interrupted``; abandon interrupted jobs older than
    :data:`ABANDON_AFTER`; delete the upload files no job needs. The ids of the jobs marked interrupted."""
    now = utcnow()
    marked: list[str] = []
    with ctx.db.transaction() as session:
        jobs = list(session.scalars(select(ImportJob).where(ImportJob.status.in_(ACTIVE))))
    for job in jobs:
        reason = why_gone(job, now)
        if reason is None:
            continue
        col = ImportJob.__table__.c
        same_lease = or_(col.heartbeat_at.is_(None), col.heartbeat_at == job.heartbeat_at) \
            if job.heartbeat_at is not None else col.heartbeat_at.is_(None)
        with ctx.db.transaction() as session:  # only when the runner has not renewed it meanwhile
            result = session.execute(update(ImportJob).where(col.id == job.id, col.status == job.status, same_lease)
                                     .values(status="interrupted", error=reason, runner=None))
            if getattr(result, "rowcount", 0) == 1:
                audit.record(session, "console", "import_interrupted", object_type="import", object_id=job.id,
                                    detail={"reason": reason, "done": job.done, "total": job.total})
                marked.append(job.id)
                logger.warning("import job %s interrupted: %s", job.id, reason)
    _abandon_old(ctx, now)
    with ctx.db.transaction() as session:
        keep = set(session.scalars(select(ImportJob.id).where(ImportJob.status.in_((*ACTIVE, "interrupted")))))
    sealed.sweep(ctx, keep)
    return marked


def _abandon_old(ctx: ConsoleContext, now: datetime) -> None:
    with ctx.db.transaction() as session:
        old = [j for j in session.scalars(select(ImportJob).where(ImportJob.status == "interrupted"))
               if (j.heartbeat_at or j.created_at) < now - ABANDON_AFTER]
        for job in old:
            job.status, job.finished_at = "abandoned", now
            audit.record(session, "console", "import_abandoned", object_type="import", object_id=job.id,
                                detail={"reason": f"interrupted for more than {ABANDON_AFTER.days} days"})
    for job in old:
        sealed.delete_upload(ctx, job.id)
