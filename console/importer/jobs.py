"""An import job: its row in ``import_jobs``, its counters, its report, and the loop that runs its rows.

Progress lives in the database, not in this process. Each finished row is one transaction: the person's
change (for a new person, the enrolment's own transaction; for a changed one, its last write), its
``import_create``/``import_update`` audit row, a line in ``import_job_rows`` (the row's number and status) and
the job's counters (an atomic ``UPDATE … SET done = done + 1``) commit together or not at all. So the counters
never disagree with the persons, any console replica and the SSE stream read the same numbers, and a resume
(:meth:`JobRun.run` on an ``interrupted`` job) skips exactly the rows that are done. The counter's UPDATE
also checks that the job is still this process's (:mod:`console.importer.lease`): a runner that lost its job
rolls the row back instead of writing it twice.

Rows run on :data:`WORKERS` threads because the face engine pool has two owner threads; a worker takes one row
from reading its photos to its commit. Rows are handed out in file order, a few at a time, and the report keeps
file order whatever order they finish in. The face work of neighbouring rows overlaps, but their writes take
turns in file order (:class:`Turnstile`): the result is the one a single worker would give, so when two rows
hold the same face it is always the first that is enrolled and the second that is reported as its duplicate.

The report (a JSON list with names and reasons, which an erasure scrubs) is written to the job every
:data:`REPORT_EVERY_S` seconds (less often as it grows) and at the end, not per row: rewriting a 100,000-row
list after every row would cost more than the rows. A row done after the last save of a crashed run is put
back into the report by the resume, from the CSV and its ``import_job_rows`` line.
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
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from console import audit
from console.context import ConsoleContext
from console.db import utcnow
from console.errors import ConsoleError, not_found
from console.importer.csvfile import ImportRow, ParsedCsv, RowProblem
from console.importer.lease import HEARTBEAT_S, runner_id
from console.security import Principal
from console.tables import ImportJob, ImportJobRow

logger = logging.getLogger(__name__)

WORKERS = 2
AHEAD = 4  # rows handed out beyond the ones running: keeps both workers busy, bounds the memory of photos
REPORT_EVERY_S = 2.0
REPORT_S_PER_ROW = 0.01  # a long report is saved less often: 100,000 rows once in about 17 minutes
STATUSES = ("created", "updated", "unchanged", "failed")
CLAIMABLE = ("queued", "interrupted")
DONE_BEFORE = "（中断前已完成，原因未保存 / done before the interruption; its reason was not kept）"


class JobLost(RuntimeError):
    """The job is no longer this process's (another console recovered and resumed it, or it was abandoned)."""
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


def new_job(session: Session, caller: Principal, filename: str, total: int, *, csv_sha256: str | None = None,
            source: str = "cli") -> ImportJob:
    job = ImportJob(id=secrets.token_hex(8), created_by=caller.username, filename=filename[:200], status="queued",
                    total=total, done=0, ok=0, failed=0, unchanged=0, report=[], created_at=utcnow(),
                    csv_sha256=csv_sha256, source=source)
    session.add(job)
    session.flush()
    return job


def job_json(job: ImportJob) -> dict[str, Any]:
    """The API's ImportJob shape. ``resumable``: interrupted, and (for a web upload) its files are still kept;
    a CLI job is resumed by running the same command with ``--resume``."""
    return {"id": job.id, "status": job.status, "filename": job.filename, "total": job.total, "done": job.done,
            "ok": job.ok, "failed": job.failed, "unchanged": job.unchanged, "created_by": job.created_by,
            "created_at": job.created_at.isoformat(), "source": job.source,
            "heartbeat_at": job.heartbeat_at.isoformat() if job.heartbeat_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None, "error": job.error,
            "resumable": job.status == "interrupted"}


def claim(session: Session, job_id: str) -> ImportJob:
    """Make this process the runner of a queued or interrupted job (409 ``job_busy`` when it is running
    elsewhere or finished; 404 when there is none)."""
    col = ImportJob.__table__.c
    result = session.execute(update(ImportJob).where(col.id == job_id, col.status.in_(CLAIMABLE)).values(
        status="running", runner=runner_id(), heartbeat_at=utcnow(), error=None, finished_at=None))
    job = session.get(ImportJob, job_id, populate_existing=True)
    if job is None:
        raise ConsoleError("not_found", f"no import job {job_id}", 404)
    if getattr(result, "rowcount", 0) != 1:
        raise ConsoleError("job_busy", f"导入任务 {job_id} 状态为 {job.status}，不能继续 / import job {job_id} is "
                                       f"{job.status}; only a queued or interrupted job can be run", 409)
    return job


def done_rows(session: Session, job_id: str) -> dict[int, ImportJobRow]:
    return {r.line: r for r in session.scalars(select(ImportJobRow).where(ImportJobRow.job_id == job_id))}


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
    """Record one finished row in the caller's transaction: its ``import_job_rows`` line and the job's counters
    (an atomic increment, so two workers and a reader on another replica never see a lost update). Raises
    :class:`JobLost`, rolling the row back with the caller's transaction, when the job is no longer this
    process's."""
    session.add(ImportJobRow(job_id=job_id, line=outcome.row, status=outcome.status, code=outcome.code[:40],
                             person_id=outcome.person_id))
    col = ImportJob.__table__.c
    result = session.execute(update(ImportJob).where(col.id == job_id, col.runner == runner_id(),
                                                     col.status == "running").values(
        done=col.done + 1,
        ok=col.ok + (1 if outcome.status in ("created", "updated") else 0),
        unchanged=col.unchanged + (1 if outcome.status == "unchanged" else 0),
        failed=col.failed + (1 if outcome.status == "failed" else 0)))
    if getattr(result, "rowcount", 0) != 1:
        raise JobLost(job_id)
    session.flush()


def summary(report: list[dict[str, Any]]) -> dict[str, int]:
    """How many rows of each status a report holds."""
    counts = dict.fromkeys(STATUSES, 0)
    for line in report:
        counts[line["status"]] = counts.get(line["status"], 0) + 1
    return counts


class JobRun:
    """Runs one job's rows (see the module docstring): a new job, or an interrupted one whose finished rows it
    skips. ``on_row`` (the CLI's progress bar) is called on the calling thread, once per row run here, in file
    order. After :meth:`run`, ``status`` is how the job ended here: done, interrupted, or lost (another
    process has it)."""

    def __init__(self, ctx: ConsoleContext, job_id: str, caller: Principal, process: RowProcessor, *,
                 workers: int = WORKERS, on_row: Callable[[RowOutcome], None] | None = None) -> None:
        self.ctx, self.job_id, self.caller, self.process = ctx, job_id, caller, process
        self.workers, self.on_row = workers, on_row
        self.stop = threading.Event()
        self.status = "queued"
        self.skipped = 0  # rows done by an earlier run
        self._prior: list[RowOutcome] = []
        self._lost = threading.Event()
        self._done: set[int] | None = None

    def begin(self, parsed: ParsedCsv) -> None:
        """Claim the job now (409 ``job_busy`` when it is not queued or interrupted), on the caller's thread;
        :meth:`run` then goes on from here."""
        self._done = self._begin(parsed)

    def run(self, parsed: ParsedCsv) -> list[RowOutcome]:
        """Run the rows not yet done; the whole job's report (earlier runs' rows too), in file order."""
        done = self._done if self._done is not None else self._begin(parsed)
        outcomes: list[RowOutcome] = []
        beat = threading.Thread(target=self._heartbeat, name=f"import-{self.job_id}-lease", daemon=True)
        halt = threading.Event()
        self._halt = halt
        beat.start()
        try:
            self._rows(parsed, outcomes, done)
        except JobLost:
            self._lost.set()
        except KeyboardInterrupt:  # Ctrl-C at the CLI: the rows in flight have finished; it can resume
            halt.set()
            self._end(outcomes, error="已由操作员停止 / stopped by the operator (Ctrl-C)")
            raise
        except Exception as exc:  # the job stops, interrupted; the finished rows stay done and it can resume
            logger.exception("import job %s stopped", self.job_id)
            halt.set()
            self._end(outcomes, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            halt.set()
            beat.join()
        if self._lost.is_set():
            self.status = "lost"
            logger.warning("import job %s is no longer this process's; it stopped here", self.job_id)
            return self._merged(outcomes)
        self._end(outcomes, error="已停止：控制台正在关闭 / stopped: the console is shutting down"
                  if self.stop.is_set() else None)
        return self._merged(outcomes)

    def _merged(self, outcomes: list[RowOutcome]) -> list[RowOutcome]:
        return sorted([*self._prior, *outcomes], key=lambda o: o.row)

    def _rows(self, parsed: ParsedCsv, outcomes: list[RowOutcome], done: set[int]) -> None:
        pending: deque[Future[RowOutcome]] = deque()
        flushed = time.monotonic()
        turns = Turnstile()
        todo = [r for r in parsed.rows if r.line not in done]
        with ThreadPoolExecutor(self.workers, thread_name_prefix=f"import-{self.job_id}") as pool:
            rows = enumerate(todo)
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
            if self._lost.is_set():
                raise JobLost(self.job_id)
            if isinstance(row, RowProblem):
                outcome = RowOutcome(row.line, row.external_id, row.name, "failed", row.code, row.reason)
                with self.ctx.db.transaction() as session:
                    count_row(session, self.job_id, outcome)
                return outcome
            return self.process(row, self.job_id, lambda: turns.wait(index))
        finally:
            turns.finish(index)

    def _begin(self, parsed: ParsedCsv) -> set[int]:
        """Claim the job; the lines an earlier run finished (their report lines become ``_prior``)."""
        with self.ctx.db.transaction() as session:
            job = claim(session, self.job_id)
            ledger = done_rows(session, self.job_id)
            saved = {int(line["row"]): line for line in job.report or [] if int(line["row"]) in ledger}
            audit.record(session, self.caller, "import_resume" if ledger else "import_start", object_type="import",
                         object_id=job.id, detail={"filename": job.filename, "rows": job.total,
                                                   **({"done": len(ledger)} if ledger else {})})
        by_line = {r.line: r for r in parsed.rows}
        for line, entry in sorted(ledger.items()):
            if line in saved:
                self._prior.append(RowOutcome(**{k: saved[line].get(k) for k in REPORT_COLUMNS}))
                continue
            row = by_line.get(line)  # done after the crashed run's last report save
            self._prior.append(RowOutcome(line, row.external_id if row else "", (row.name or "") if row else "",
                                          entry.status, entry.code, DONE_BEFORE if entry.status == "failed" else "",
                                          entry.person_id))
        self.skipped = len(ledger)
        self.status = "running"
        return set(ledger)

    def _heartbeat(self) -> None:
        """Renew this runner's lease until the run ends; a lease another process took stops the run."""
        col = ImportJob.__table__.c
        while not self._halt.wait(HEARTBEAT_S):
            try:
                with self.ctx.db.transaction() as session:
                    result = session.execute(update(ImportJob).where(
                        col.id == self.job_id, col.runner == runner_id(), col.status == "running")
                        .values(heartbeat_at=utcnow()))
            except SQLAlchemyError as exc:  # the next beat tries again; the lease is several beats long
                logger.warning("import job %s: cannot renew its lease: %s", self.job_id, exc)
                continue
            if getattr(result, "rowcount", 0) != 1:
                self._lost.set()
                self.stop.set()
                return

    def _save_report(self, outcomes: list[RowOutcome]) -> None:
        with self.ctx.db.transaction() as session:
            job = session.get_one(ImportJob, self.job_id)
            if job.runner == runner_id():
                job.report = [o.as_json() for o in self._merged(outcomes)]

    def _end(self, outcomes: list[RowOutcome], *, error: str | None) -> None:
        report = [o.as_json() for o in self._merged(outcomes)]
        with self.ctx.db.transaction() as session:
            job = session.get_one(ImportJob, self.job_id, populate_existing=True)
            if job.runner != runner_id() or job.status != "running":
                self.status = "lost"
                return
            job.report = report
            job.status = "interrupted" if error else "done"
            job.error = error
            job.runner = None
            job.finished_at = None if error else utcnow()
            self.status = job.status
            audit.record(session, self.caller, "import_interrupted" if error else "import_done",
                         object_type="import", object_id=job.id,
                         detail={"filename": job.filename, "status": job.status, **summary(report),
                                 **({"error": error} if error else {})})
