"""Starting an import (the API's background thread, the CLI's foreground run) and writing its report.

Both ways check the whole CSV and the whole zip before a job exists: a bad file is a
:class:`~console.errors.ConsoleError` (``bad_csv``, ``bad_zip``) and leaves nothing behind. The web upload's zip
is kept in a private temporary file under ``data_dir/imports`` (mode 0600) while its job runs and deleted when
the job ends, whatever the outcome.

The console's background runs are held by one :class:`ImportRunner` per context (``ctx.extras["imports"]``).
Their progress is in the database (:mod:`console.importer.jobs`), so the runner holds nothing a reader needs.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from console.context import ConsoleContext
from console.importer.csvfile import ParsedCsv, parse_csv
from console.importer.jobs import REPORT_COLUMNS, JobRun, RowOutcome, job_json, new_job
from console.importer.photos import PhotoLimits, PhotoSource, ZipPhotos, bad_zip
from console.importer.rows import RowImporter
from console.security import Principal

logger = logging.getLogger(__name__)

IMPORT_ROLES = ("admin", "enroller")
EXTRAS_KEY = "imports"
_EXTRAS_LOCK = threading.Lock()


def photo_limits(ctx: ConsoleContext) -> PhotoLimits:
    """The zip limits, with this console's largest photo as the largest entry."""
    return PhotoLimits(max_entry_bytes=int(ctx.config.face.max_photo_mb * 1024 * 1024))


def create_job(ctx: ConsoleContext, caller: Principal, filename: str, parsed: ParsedCsv) -> dict[str, Any]:
    with ctx.db.transaction() as session:
        return job_json(new_job(session, caller, filename, parsed.total))


def run_in_foreground(ctx: ConsoleContext, caller: Principal, filename: str, parsed: ParsedCsv,
                      photos: PhotoSource, *, on_row: Callable[[RowOutcome], None] | None = None,
                      workers: int | None = None) -> tuple[str, list[RowOutcome]]:
    """Run a whole import on this thread (the CLI; tests): the job's id and its report, in file order."""
    caller.require_role(*IMPORT_ROLES)
    job_id = str(create_job(ctx, caller, filename, parsed)["id"])
    run = JobRun(ctx, job_id, caller, RowImporter(ctx, caller, photos), on_row=on_row,
                 **({"workers": workers} if workers else {}))
    return job_id, run.run(parsed)


class ImportRunner:
    """This console's running imports: one thread a job (each with its own row workers)."""

    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[threading.Thread, JobRun]] = {}

    def start(self, job_id: str, caller: Principal, parsed: ParsedCsv, photos: PhotoSource,
              cleanup: Callable[[], None]) -> None:
        run = JobRun(self.ctx, job_id, caller, RowImporter(self.ctx, caller, photos))

        def body() -> None:
            try:
                run.run(parsed)
            except Exception:  # JobRun has marked the job failed and logged why
                pass
            finally:
                cleanup()
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
    """Check an uploaded CSV and zip, create the job and start it in the background; the new job's JSON."""
    caller.require_role(*IMPORT_ROLES)
    parsed = parse_csv(csv_data)
    folder = ctx.config.data_dir / "imports"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{secrets.token_hex(16)}.zip"
    limits = photo_limits(ctx)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            _copy_at_most(zip_file, out, limits.max_total_bytes)
        photos = ZipPhotos(path, limits)
    except BaseException:
        path.unlink(missing_ok=True)
        raise

    def cleanup() -> None:
        photos.close()
        path.unlink(missing_ok=True)

    try:
        job = create_job(ctx, caller, csv_name, parsed)
    except BaseException:
        cleanup()
        raise
    runner_of(ctx).start(str(job["id"]), caller, parsed, photos, cleanup)
    return job


def _copy_at_most(source: IO[bytes], target: IO[bytes], limit: int) -> None:
    """Copy the upload, refusing it (no job) once it passes ``limit`` bytes: a zip is never larger than the
    photos it holds."""
    copied = 0
    while chunk := source.read(1024 * 1024):
        copied += len(chunk)
        if copied > limit:
            raise bad_zip(f"照片 zip 超过 {limit} 字节 / the photos zip is larger than {limit} bytes")
        target.write(chunk)


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
