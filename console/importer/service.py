"""Starting, resuming and abandoning an import (the API's background thread, the CLI's foreground run) and
writing its report.

Both ways check the whole CSV and the whole zip before a job exists: a bad file is a
:class:`~console.errors.ConsoleError` (``bad_csv``, ``bad_zip``) and leaves nothing behind. The web upload's CSV
and zip are kept encrypted (:mod:`console.importer.sealed`) while its job may need them: until it is done, or,
once interrupted, until it is resumed to the end or abandoned. A CLI job reads its files where they are; its
resume is the same command with ``--resume JOB`` and the same CSV (checked by its sha256).

The console's background runs are held by one :class:`ImportRunner` per context (``ctx.extras["imports"]``).
Their progress is in the database (:mod:`console.importer.jobs`), so the runner holds nothing a reader needs.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from console import audit
from console.context import ConsoleContext
from console.db import utcnow
from console.errors import ConsoleError
from console.importer import sealed
from console.importer.csvfile import ParsedCsv, parse_csv
from console.importer.jobs import REPORT_COLUMNS, JobRun, RowOutcome, job_json, new_job, visible_job
from console.importer.photos import PhotoLimits, PhotoSource
from console.importer.rows import RowImporter
from console.security import Principal
from console.tables import ImportJob

logger = logging.getLogger(__name__)

IMPORT_ROLES = ("admin", "enroller")
EXTRAS_KEY = "imports"
_EXTRAS_LOCK = threading.Lock()


def photo_limits(ctx: ConsoleContext) -> PhotoLimits:
    """The zip limits, with this console's largest photo as the largest entry."""
    return PhotoLimits(max_entry_bytes=int(ctx.config.face.max_photo_mb * 1024 * 1024))


def create_job(ctx: ConsoleContext, caller: Principal, filename: str, parsed: ParsedCsv, *,
               source: str = "cli") -> dict[str, Any]:
    with ctx.db.transaction() as session:
        return job_json(new_job(session, caller, filename, parsed.total, csv_sha256=parsed.sha256 or None,
                                source=source))


def run_in_foreground(ctx: ConsoleContext, caller: Principal, filename: str, parsed: ParsedCsv,
                      photos: PhotoSource, *, on_row: Callable[[RowOutcome], None] | None = None,
                      workers: int | None = None, resume: str | None = None) -> tuple[str, list[RowOutcome]]:
    """Run a whole import on this thread (the CLI; tests): the job's id and its report, in file order.
    ``resume``: the id of an interrupted job of the same CSV to go on with (its finished rows are skipped)."""
    caller.require_role(*IMPORT_ROLES)
    if resume is None:
        job_id = str(create_job(ctx, caller, filename, parsed)["id"])
    else:
        job_id = resume
        with ctx.db.transaction() as session:
            job = visible_job(session, caller, resume)
            if job.csv_sha256 and job.csv_sha256 != parsed.sha256:
                raise ConsoleError("not_same_file", f"导入任务 {resume} 的 CSV 与此文件不同 / import job {resume} was "
                                                    "run with another CSV file; resume it with the same file", 409)
    run = JobRun(ctx, job_id, caller, RowImporter(ctx, caller, photos), on_row=on_row,
                 **({"workers": workers} if workers else {}))
    return job_id, run.run(parsed)


class ImportRunner:
    """This console's running imports: one thread a job (each with its own row workers)."""

    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[threading.Thread, JobRun]] = {}

    def start(self, job_id: str, caller: Principal, parsed: ParsedCsv, photos: PhotoSource, *,
              claim_now: bool = False) -> None:
        """Run job ``job_id`` (queued, or interrupted: a resume) on a thread; its sealed upload is deleted once
        it is done, and kept when it stops interrupted (to resume) or another process took it over.
        ``claim_now``: claim it on this thread first (a resume answers ``running``, or 409 when it is not
        interrupted any more)."""
        run = JobRun(self.ctx, job_id, caller, RowImporter(self.ctx, caller, photos))
        with self._lock:
            busy = job_id in self._runs  # its last run here is still finishing
        try:
            if busy:
                raise ConsoleError("job_busy", f"导入任务 {job_id} 正在运行 / import job {job_id} is running", 409)
            if claim_now:
                run.begin(parsed)
        except BaseException:
            photos.close()
            raise

        def body() -> None:
            try:
                run.run(parsed)
            except Exception:  # JobRun has marked the job interrupted and logged why
                pass
            finally:
                photos.close()
                if run.status == "done":
                    sealed.delete_upload(self.ctx, job_id)
                with self._lock:
                    self._runs.pop(job_id, None)

        thread = threading.Thread(target=body, name=f"import-{job_id}", daemon=True)
        with self._lock:
            self._runs[job_id] = (thread, run)
        thread.start()

    def join(self, job_id: str, timeout: float | None = None) -> bool:
        """Wait for job ``job_id`` here; True when it is no longer running in this process."""
        with self._lock:
            entry = self._runs.get(job_id)
        if entry is not None:
            entry[0].join(timeout)
            return not entry[0].is_alive()
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Ask every run to stop after its rows in flight, then wait for them (they end as failed, resumable)."""
        with self._lock:
            entries = list(self._runs.values())
        for _thread, run in entries:
            run.stop.set()
        for thread, _run in entries:
            thread.join(timeout)


def runner_of(ctx: ConsoleContext) -> ImportRunner:
    with _EXTRAS_LOCK:
        runner = ctx.extras.get(EXTRAS_KEY)
        if not isinstance(runner, ImportRunner):
            runner = ctx.extras[EXTRAS_KEY] = ImportRunner(ctx)
        return runner


def start_upload(ctx: ConsoleContext, caller: Principal, csv_name: str, csv_data: bytes,
                 zip_file: IO[bytes]) -> dict[str, Any]:
    """Check an uploaded CSV and zip, create the job and start it in the background; the new job's JSON. The
    zip is encrypted as it is received, and the CSV beside it (:mod:`console.importer.sealed`)."""
    caller.require_role(*IMPORT_ROLES)
    parsed = parse_csv(csv_data)
    limits = photo_limits(ctx)
    incoming = sealed.seal_stream(ctx, zip_file, limits.max_total_bytes)
    try:
        sealed.open_zip(ctx, incoming, limits).close()  # the whole zip is checked before a job exists
        job = create_job(ctx, caller, csv_name, parsed, source="upload")
    except BaseException:
        incoming.unlink(missing_ok=True)
        raise
    job_id = str(job["id"])
    try:
        sealed.seal_bytes(ctx, csv_data, sealed.csv_path(ctx, job_id))
        path = sealed.move_into_place(incoming, job_id, ctx)
        photos = sealed.open_zip(ctx, path, limits)
    except BaseException:
        incoming.unlink(missing_ok=True)
        sealed.delete_upload(ctx, job_id)
        _abandon_row(ctx, caller, job_id, "上传未能保存 / the upload could not be stored")
        raise
    runner_of(ctx).start(job_id, caller, parsed, photos)
    return job


def resume_upload(ctx: ConsoleContext, caller: Principal, job_id: str) -> dict[str, Any]:
    """Go on with an interrupted web import from its sealed files, in the background (409 when it is not
    interrupted, or is a CLI job: that one is resumed with the CLI and its files)."""
    caller.require_role(*IMPORT_ROLES)
    with ctx.db.transaction() as session:
        job = visible_job(session, caller, job_id)
        status, source = job.status, job.source
    if status != "interrupted":
        raise ConsoleError("job_busy", f"导入任务 {job_id} 状态为 {status}，只有中断的任务可以继续 / import job "
                                       f"{job_id} is {status}; only an interrupted job can be resumed", 409)
    if source != "upload" or not sealed.has_upload(ctx, job_id):
        raise ConsoleError("no_upload", "此任务的文件不在控制台上，请用命令行 smartbranch console import "
                                        "--resume 继续 / this job's files are not kept by the console; resume it with "
                                        "`smartbranch console import --resume` and the same files", 409)
    parsed = parse_csv(sealed.read_csv(ctx, job_id))
    photos = sealed.open_zip(ctx, sealed.zip_path(ctx, job_id), photo_limits(ctx))
    runner_of(ctx).start(job_id, caller, parsed, photos, claim_now=True)
    with ctx.db.transaction() as session:
        return job_json(visible_job(session, caller, job_id))


def abandon(ctx: ConsoleContext, caller: Principal, job_id: str) -> dict[str, Any]:
    """Give up an interrupted job: it becomes ``abandoned`` and its sealed upload is deleted (409 otherwise)."""
    caller.require_role(*IMPORT_ROLES)
    with ctx.db.transaction() as session:
        job = visible_job(session, caller, job_id)
        if job.status != "interrupted":
            raise ConsoleError("job_busy", f"导入任务 {job_id} 状态为 {job.status}，只有中断的任务可以放弃 / import "
                                           f"job {job_id} is {job.status}; only an interrupted job can be abandoned",
                               409)
    _abandon_row(ctx, caller, job_id, "用户放弃 / abandoned by the user")
    sealed.delete_upload(ctx, job_id)
    with ctx.db.transaction() as session:
        return job_json(visible_job(session, caller, job_id))


def _abandon_row(ctx: ConsoleContext, caller: Principal, job_id: str, reason: str) -> None:
    with ctx.db.transaction() as session:
        job = session.get(ImportJob, job_id)
        if job is None or job.status not in ("queued", "interrupted"):
            return
        job.status, job.finished_at, job.error = "abandoned", utcnow(), job.error or reason
        audit.record(session, caller, "import_abandoned", object_type="import", object_id=job_id,
                     detail={"reason": reason, "done": job.done, "total": job.total})


def _cell(value: object) -> str:
    """A report cell; text a spreadsheet would run as a formula (= + - @) is prefixed with '."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def report_csv(report: list[dict[str, Any]]) -> bytes:
    """The report as CSV in UTF-8 with a BOM (Excel then shows Chinese), one line per row of the import."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REPORT_COLUMNS)
    for line in report:
        writer.writerow([_cell(line.get(c)) for c in REPORT_COLUMNS])
    return out.getvalue().encode("utf-8-sig")


def write_report(path: Path, outcomes: list[RowOutcome]) -> None:
    path.write_bytes(report_csv([o.as_json() for o in outcomes]))
