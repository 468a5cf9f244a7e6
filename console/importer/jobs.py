"""An import job: its row in ``import_jobs``, its counters, its report, and the loop that runs its rows.

Progress lives in the database, not in this process: each finished row bumps the job's counters with an atomic
``UPDATE … SET done = done + 1`` (in the transaction that writes its ``import_create``/``import_update`` audit
row), so any console replica and the SSE stream read the same numbers. The person itself is written by the
enrolment service in its own transactions just before; a crash in between leaves the person written but not
counted. Re-running the same file after a crash resumes it: rows already done come back ``unchanged`` without
any face work.

Rows run on :data:`WORKERS` threads because the face engine pool has two owner threads; a worker takes one row
from reading its photos to its commit. Rows are handed out in file order, a few at a time, and the report keeps
file order whatever order they finish in. The face work of neighbouring rows overlaps, but their writes take
turns in file order (:class:`Turnstile`): the result is the one a single worker would give, so when two rows
hold the same face it is always the first that is enrolled and the second that is reported as its duplicate.

The report (a JSON list) is written to the job every :data:`REPORT_EVERY_S` seconds (less often as it grows)
and at the end, not per row: rewriting a 100,000-row list after every row would cost more than the rows.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from console import audit
from console.context import ConsoleContext
from console.db import utcnow
from console.errors import ConsoleError, not_found
from console.importer.csvfile import ImportRow, ParsedCsv, RowProblem
from console.security import Principal
from console.tables import ImportJob

logger = logging.getLogger(__name__)

WORKERS = 2
AHEAD = 4  # rows handed out beyond the ones running: keeps both workers busy, bounds the memory of photos
REPORT_EVERY_S = 2.0
REPORT_S_PER_ROW = 0.01  # a long report is saved less often: 100,000 rows once in about 17 minutes
STATUSES = ("created", "updated", "unchanged", "failed")
REPORT_COLUMNS = ("row", "external_id", "name", "status", "code", "reason", "person_id")


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """One line of the report."""

    row: int
    external_id: str
    name: str
    status: str  # created | updated | unchanged | failed
    code: str = ""
    reason: str = ""
    person_id: str | None = None

    @classmethod
    def failed(cls, row: ImportRow | RowProblem, code: str, reason: str, name: str | None = None) -> RowOutcome:
        shown = name if name is not None else (row.name or "")
        return cls(row.line, row.external_id, shown, "failed", code, reason)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


# one row's work: read and check it, call the third argument (it waits for the row's turn) right before its
# first write, write and count it (committing), then say how it went
RowProcessor = Callable[[ImportRow, str, Callable[[], None]], RowOutcome]


class Turnstile:
    """Rows write in file order: row ``i`` may write once rows ``0 .. i-1`` have finished. A worker only ever
    waits for rows handed out before its own, which are running or finished, so it cannot deadlock."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._low = 0  # rows 0 .. low-1 have finished
        self._finished: set[int] = set()

    def wait(self, index: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._low >= index)

    def finish(self, index: int) -> None:
        with self._cond:
            self._finished.add(index)
            while self._low in self._finished:
                self._finished.remove(self._low)
                self._low += 1
            self._cond.notify_all()


def new_job(session: Session, caller: Principal, filename: str, total: int) -> ImportJob:
    job = ImportJob(id=secrets.token_hex(8), created_by=caller.username, filename=filename[:200], status="queued",
                    total=total, done=0, ok=0, failed=0, unchanged=0, report=[], created_at=utcnow())
    session.add(job)
    session.flush()
    return job


def job_json(job: ImportJob) -> dict[str, Any]:
    """The API's ImportJob shape."""
    return {"id": job.id, "status": job.status, "filename": job.filename, "total": job.total, "done": job.done,
            "ok": job.ok, "failed": job.failed, "unchanged": job.unchanged, "created_by": job.created_by,
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None, "error": job.error}


def visible_job(session: Session, caller: Principal, job_id: str) -> ImportJob:
    """Job ``job_id`` when the caller may see it (its creator, or an admin); 404 otherwise, so that nobody learns
    of other people's jobs."""
    job = session.get(ImportJob, job_id)
    if job is None or not (caller.role == "admin" or job.created_by == caller.username):
        raise not_found("import job", job_id)
    return job


def recent_jobs(session: Session, caller: Principal, limit: int = 50) -> list[ImportJob]:
    """The caller's own jobs, newest first (an admin's list too: it is a list of one's own imports)."""
    query = select(ImportJob).where(ImportJob.created_by == caller.username)
    return list(session.scalars(query.order_by(ImportJob.created_at.desc(), ImportJob.id).limit(limit)))


def count_row(session: Session, job_id: str, outcome: RowOutcome) -> None:
    """Add one finished row to the job's counters, in the caller's transaction (an atomic increment, so two
    workers and a reader on another replica never see a lost update)."""
    col = ImportJob.__table__.c
    session.execute(update(ImportJob).where(col.id == job_id).values(
        done=col.done + 1,
        ok=col.ok + (1 if outcome.status in ("created", "updated") else 0),
        unchanged=col.unchanged + (1 if outcome.status == "unchanged" else 0),
        failed=col.failed + (1 if outcome.status == "failed" else 0)))


def summary(report: list[dict[str, Any]]) -> dict[str, int]:
    """How many rows of each status a report holds."""
    counts = dict.fromkeys(STATUSES, 0)
    for line in report:
        counts[line["status"]] = counts.get(line["status"], 0) + 1
    return counts


class JobRun:
    """Runs one job's rows (see the module docstring). ``on_row`` (the CLI's progress bar) is called on the
    calling thread, once per finished row, in file order."""

    def __init__(self, ctx: ConsoleContext, job_id: str, caller: Principal, process: RowProcessor, *,
                 workers: int = WORKERS, on_row: Callable[[RowOutcome], None] | None = None) -> None:
        self.ctx, self.job_id, self.caller, self.process = ctx, job_id, caller, process
        self.workers, self.on_row = workers, on_row
        self.stop = threading.Event()

    def run(self, parsed: ParsedCsv) -> list[RowOutcome]:
        self._begin()
        outcomes: list[RowOutcome] = []
        try:
            self._rows(parsed, outcomes)
        except Exception as exc:  # the job must end as failed, whatever broke; the finished rows stay done
            logger.exception("import job %s failed", self.job_id)
            self._end(outcomes, error=f"{type(exc).__name__}: {exc}")
            raise
        self._end(outcomes, error="stopped: the console is shutting down" if self.stop.is_set() else None)
        return outcomes

    def _rows(self, parsed: ParsedCsv, outcomes: list[RowOutcome]) -> None:
        pending: deque[Future[RowOutcome]] = deque()
        flushed = time.monotonic()
        turns = Turnstile()
        with ThreadPoolExecutor(self.workers, thread_name_prefix=f"import-{self.job_id}") as pool:
            rows = enumerate(parsed.rows)
            while True:
                while len(pending) < self.workers + AHEAD and not self.stop.is_set():
                    item = next(rows, None)
                    if item is None:
                        break
                    pending.append(pool.submit(self._one, item[0], item[1], turns))
                if not pending:
                    return
                outcome = pending.popleft().result()
                outcomes.append(outcome)
                if self.on_row is not None:
                    self.on_row(outcome)
                if time.monotonic() - flushed >= max(REPORT_EVERY_S, REPORT_S_PER_ROW * len(outcomes)):
                    self._save_report(outcomes)
                    flushed = time.monotonic()

    def _one(self, index: int, row: ImportRow | RowProblem, turns: Turnstile) -> RowOutcome:
        try:
            if isinstance(row, RowProblem):
                outcome = RowOutcome(row.line, row.external_id, row.name, "failed", row.code, row.reason)
                with self.ctx.db.transaction() as session:
                    count_row(session, self.job_id, outcome)
                return outcome
            return self.process(row, self.job_id, lambda: turns.wait(index))
        finally:
            turns.finish(index)

    def _begin(self) -> None:
        with self.ctx.db.transaction() as session:
            job = session.get(ImportJob, self.job_id)
            if job is None:
                raise ConsoleError("not_found", f"no import job {self.job_id}", 404)
            job.status = "running"
            audit.record(session, self.caller, "import_start", object_type="import", object_id=job.id,
                         detail={"filename": job.filename, "rows": job.total})

    def _save_report(self, outcomes: list[RowOutcome]) -> None:
        with self.ctx.db.transaction() as session:
            job = session.get_one(ImportJob, self.job_id)
            job.report = [o.as_json() for o in outcomes]

    def _end(self, outcomes: list[RowOutcome], *, error: str | None) -> None:
        report = [o.as_json() for o in outcomes]
        with self.ctx.db.transaction() as session:
            job = session.get_one(ImportJob, self.job_id)
            job.report = report
            job.status = "failed" if error else "done"
            job.error = error
            job.finished_at = utcnow()
            audit.record(session, self.caller, "import_done", object_type="import", object_id=job.id,
                         detail={"filename": job.filename, "status": job.status, **summary(report),
                                 **({"error": error} if error else {})})
