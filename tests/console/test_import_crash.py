"""A bulk import whose process is killed (``kill -9``, a real process) mid-run: the next console start marks it
interrupted with the reason, the CLI lists it, and its resume imports every row exactly once; and a job whose
runner is another live console (fresh lease) is never taken from it. On SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from console.app import create_app
from console.context import ConsoleContext
from console.db import utcnow
from console.importer.lease import LEASE_S, recover_jobs
from console.tables import AuditRow, ImportJob, ImportJobRow, Person
from tests.console.conftest import add_branch, add_token, add_user
from tests.console.test_import import CONSENT, blurred, csv_bytes

ROOT = Path(__file__).resolve().parents[2]
KILL_WAIT_S = 300.0  # how long the test waits for the child to finish its first rows (a busy machine is slow)


def _job(ctx: ConsoleContext) -> ImportJob | None:
    with ctx.db.transaction() as session:
        return session.scalars(select(ImportJob)).first()


def _files(tmp_path: Path, ctx: ConsoleContext, photo_bytes: Callable[[str], bytes]) -> tuple[Path, Path, Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "obama.jpg").write_bytes(photo_bytes("obama3.jpg"))  # 2.3 MP: the slow one
    (folder / "biden.jpg").write_bytes(photo_bytes("biden.jpg"))
    (folder / "hanks.png").write_bytes(photo_bytes("tom_hanks.png"))
    (folder / "soft.jpg").write_bytes(blurred(photo_bytes("obama3.jpg")))
    rows = [f"E1,奥巴马,vip,gold,SH001,,,obama.jpg,,{CONSENT}", f"E2,拜登,vip,gold,SH001,,,biden.jpg,,{CONSENT}",
            *[f"S{i},某人{i},vip,gold,SH001,,,soft.jpg,,{CONSENT}" for i in range(6)],
            f"E3,汉克斯,vip,gold,SH001,,,hanks.png,,{CONSENT}", f"X1,无门店,vip,gold,NOPE,,,biden.jpg,,{CONSENT}"]
    (tmp_path / "people.csv").write_bytes(csv_bytes(*rows))
    config = tmp_path / "console.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(ctx.config.data_dir),
                                      "database": {"url": ctx.config.database_url}}))
    return config, tmp_path / "people.csv", folder


def test_a_job_killed_mid_run_is_interrupted_at_the_next_start_and_its_resume_imports_each_row_once(
        console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from console.cli.main import main

    add_branch(console_ctx, "SH001")
    user_id = add_user(console_ctx, "importer", "enroller")
    config, people, folder = _files(tmp_path, console_ctx, photo_bytes)
    args = ["import", "--config", str(config), "--csv", str(people), "--photos", str(folder), "--user", "importer"]
    # given an import running in a process of its own
    child = subprocess.Popen([sys.executable, "-m", "console.cli.main", *args], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + KILL_WAIT_S
        while time.monotonic() < deadline and child.poll() is None:
            job = _job(console_ctx)
            if job is not None and job.done >= 2:
                break
            time.sleep(0.05)
        # when it is killed after its first rows, with no chance to say anything
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    killed = _job(console_ctx)
    assert killed is not None and killed.status == "running" and 2 <= killed.done < killed.total == 10
    with console_ctx.db.transaction() as session:  # the counters and the ledger agree: one transaction a row
        lines = session.scalars(select(ImportJobRow.line).where(ImportJobRow.job_id == killed.id)).all()
        assert len(lines) == killed.done
        assert session.scalar(select(func.count()).select_from(Person)) == killed.ok
    # then the console, started again, marks it interrupted with the reason, in the API and in the CLI
    client = TestClient(create_app(console_ctx.config, context=console_ctx))
    shown = client.get(f"/api/imports/{killed.id}",
                       headers={"Authorization": f"Bearer {add_token(console_ctx, user_id)}"}).json()
    assert shown["status"] == "interrupted" and shown["resumable"] and str(child.pid) in shown["error"]
    assert main(["import-jobs", "--config", str(config), "--user", "importer"]) == 0
    listed = capsys.readouterr().out
    assert killed.id in listed and "interrupted" in listed and "进程已退出" in listed
    # when it is resumed with the same files, the rows not yet done are run
    # (the blurred photos, Hanks' small face and the unknown branch fail, as they should)
    assert main([*args, "--resume", killed.id]) == 1
    out = capsys.readouterr().out
    assert "新建 2，更新 0，未变 0，失败 8" in out
    # then every row is in the job exactly once and each person was enrolled once
    with console_ctx.db.transaction() as session:
        job = session.get_one(ImportJob, killed.id, populate_existing=True)
        assert (job.status, job.done, job.ok, job.failed, job.unchanged) == ("done", 10, 2, 8, 0)
        assert [r["row"] for r in job.report] == list(range(2, 12))
        ledger = session.scalars(select(ImportJobRow.line).where(ImportJobRow.job_id == job.id)).all()
        assert sorted(ledger) == list(range(2, 12))
        assert sorted(session.scalars(select(Person.external_id))) == ["E1", "E2"]
        enrolled = session.scalars(select(AuditRow.object_id).where(AuditRow.action == "enrol")).all()
        created = session.scalars(select(AuditRow.object_id).where(AuditRow.action == "import_create")).all()
        assert len(enrolled) == len(set(enrolled)) == 2 and sorted(created) == sorted(enrolled)
        actions = session.scalars(select(AuditRow.action).where(AuditRow.object_id == job.id)
                                  .order_by(AuditRow.id)).all()
        assert actions == ["import_start", "import_interrupted", "import_resume", "import_done"]


def test_a_job_with_a_live_runners_lease_is_left_alone_and_one_whose_lease_ran_out_is_interrupted(
        console_ctx: ConsoleContext) -> None:
    now = utcnow()
    with console_ctx.db.transaction() as session:  # two jobs of other replicas: one renewed its lease just now
        for job_id, beat in (("live", now), ("stale", now - timedelta(seconds=LEASE_S + 5))):
            session.add(ImportJob(id=job_id, created_by="importer", filename="p.csv", status="running", total=5,
                                  done=1, runner=f"replica-{job_id}.example:4242:abcd", heartbeat_at=beat,
                                  created_at=now - timedelta(minutes=5), report=[]))
    assert recover_jobs(console_ctx) == ["stale"]
    with console_ctx.db.transaction() as session:
        states = dict(session.execute(select(ImportJob.id, ImportJob.status)).all())
        stale = session.get_one(ImportJob, "stale")
        assert states == {"live": "running", "stale": "interrupted"}
        assert stale.error is not None and "lease" in stale.error and stale.runner is None
        # the live replica's heartbeat goes on; its job stays its own
        session.execute(update(ImportJob).where(ImportJob.id == "live").values(heartbeat_at=utcnow()))
    assert recover_jobs(console_ctx) == []


def test_a_rows_person_and_its_count_commit_together_so_a_runner_that_lost_its_job_writes_nothing(
        console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes]) -> None:
    import io

    from console.importer.csvfile import parse_csv
    from console.importer.jobs import JobRun
    from console.importer.photos import ZipPhotos
    from console.importer.rows import RowImporter
    from console.importer.service import create_job
    from tests.console.test_import import _admin, zip_bytes

    add_branch(console_ctx, "SH001")
    admin = _admin(console_ctx)
    parsed = parse_csv(csv_bytes(f"E1,奥巴马,vip,gold,SH001,,,obama.jpg,,{CONSENT}"))
    photos = ZipPhotos(io.BytesIO(zip_bytes({"obama.jpg": photo_bytes("obama.jpg")})))
    job_id = str(create_job(console_ctx, admin, "people.csv", parsed)["id"])
    run = JobRun(console_ctx, job_id, admin, RowImporter(console_ctx, admin, photos))
    run.begin(parsed)
    # given another console took the job over (its lease had run out) after this one claimed it
    with console_ctx.db.transaction() as session:
        session.execute(update(ImportJob).where(ImportJob.id == job_id).values(runner="other.example:1:abcd"))
    # when this runner finishes its row, the row's count finds the job is not its own any more
    run.run(parsed)
    photos.close()
    # then the person it enrolled in the same transaction was rolled back with the count: nothing is written
    assert run.status == "lost"
    with console_ctx.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Person)) == 0
        assert session.scalar(select(func.count()).select_from(ImportJobRow)) == 0
        job = session.get_one(ImportJob, job_id)
        assert (job.status, job.done, job.runner) == ("running", 0, "other.example:1:abcd")
        assert session.scalar(select(func.count()).select_from(AuditRow).where(AuditRow.action == "enrol")) == 0
    # and the photo stored for it before the transaction is deleted again
    assert [f for f in (console_ctx.config.data_dir / "blobs").rglob("*") if f.is_file()] == []


def test_a_job_interrupted_for_a_week_is_abandoned_at_start_and_no_upload_outlives_its_job(
        console_ctx: ConsoleContext) -> None:
    from console.importer import sealed

    now = utcnow()
    with console_ctx.db.transaction() as session:
        for job_id, beat in (("old", now - timedelta(days=8)), ("recent", now - timedelta(hours=1))):
            session.add(ImportJob(id=job_id, created_by="importer", filename="p.csv", status="interrupted", total=5,
                                  done=1, heartbeat_at=beat, created_at=beat, report=[], source="upload"))
    for job_id in ("old", "recent"):
        sealed.seal_bytes(console_ctx, b"external_id\r\nE1\r\n", sealed.csv_path(console_ctx, job_id))
        sealed.seal_bytes(console_ctx, b"PK not really a zip", sealed.zip_path(console_ctx, job_id))
    folder = sealed.upload_folder(console_ctx)
    (folder / "0123456789abcdef.zip").write_bytes(b"PK a plain zip an older console left")
    (folder / "done-job.zip.sealed").write_bytes(b"a finished job's upload")
    hours_ago = time.time() - 2 * 3600
    for name in ("0123456789abcdef.zip", "done-job.zip.sealed"):
        os.utime(folder / name, (hours_ago, hours_ago))
    (folder / "incoming-abc.zip.sealed").write_bytes(b"an upload another replica is receiving now")
    (folder / "new-job.zip.sealed").write_bytes(b"a job another replica is making now")
    # when a console starts
    assert recover_jobs(console_ctx) == []
    # then the job interrupted a week ago is abandoned and its upload deleted, with the plain zip and the
    # finished job's file of hours ago; the recent job keeps its upload for a resume, and files written just
    # now (an upload in progress, a job another replica is making) are left
    with console_ctx.db.transaction() as session:
        assert dict(session.execute(select(ImportJob.id, ImportJob.status)).all()) == {
            "old": "abandoned", "recent": "interrupted"}
        assert session.scalars(select(AuditRow.action).where(AuditRow.object_id == "old")).all() == [
            "import_abandoned"]
    assert sorted(p.name for p in folder.iterdir()) == ["incoming-abc.zip.sealed", "new-job.zip.sealed",
                                                       "recent.csv.sealed", "recent.zip.sealed"]


def test_ctrl_c_at_the_cli_stops_the_import_as_interrupted_after_the_rows_in_flight(
        console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes], tmp_path: Path) -> None:
    add_branch(console_ctx, "SH001")
    add_user(console_ctx, "importer", "enroller")
    config, people, folder = _files(tmp_path, console_ctx, photo_bytes)
    child = subprocess.Popen([sys.executable, "-m", "console.cli.main", "import", "--config", str(config), "--csv",
                              str(people), "--photos", str(folder), "--user", "importer"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + KILL_WAIT_S
        while time.monotonic() < deadline and child.poll() is None:
            job = _job(console_ctx)
            if job is not None and job.done >= 1:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _out, err = child.communicate(timeout=KILL_WAIT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err.decode()
    assert "--resume" in err.decode()
    job = _job(console_ctx)
    assert job is not None and job.status == "interrupted" and job.runner is None and job.done < job.total
    assert job.error is not None and "Ctrl-C" in job.error
    with console_ctx.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(ImportJobRow)) == job.done


def test_a_changed_rows_fields_plates_and_count_commit_together(
        console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes]) -> None:
    import io

    from console.importer.csvfile import parse_csv
    from console.importer.jobs import JobRun
    from console.importer.photos import ZipPhotos
    from console.importer.rows import RowImporter
    from console.importer.service import create_job
    from console.tables import GalleryChange
    from tests.console.test_import import _admin, _run, zip_bytes

    add_branch(console_ctx, "SH001")
    admin = _admin(console_ctx)
    photos = {"obama.jpg": photo_bytes("obama.jpg")}
    assert [o.status for o in _run(console_ctx, admin, csv_bytes(
        f"E1,奥巴马,vip,gold,SH001,,,obama.jpg,,{CONSENT}"), photos)] == ["created"]
    with console_ctx.db.transaction() as session:
        changes = session.scalar(select(func.count()).select_from(GalleryChange))
    # a row that changes the tier and adds a plate, run by a console that lost its job before its commit
    parsed = parse_csv(csv_bytes("E1,platinum,沪A12345", header="external_id,tier,plates"))
    source = ZipPhotos(io.BytesIO(zip_bytes(photos)))
    job_id = str(create_job(console_ctx, admin, "people.csv", parsed)["id"])
    run = JobRun(console_ctx, job_id, admin, RowImporter(console_ctx, admin, source))
    run.begin(parsed)
    with console_ctx.db.transaction() as session:
        session.execute(update(ImportJob).where(ImportJob.id == job_id).values(runner="other.example:1:abcd"))
    run.run(parsed)
    source.close()
    # nothing of the row is written: not the tier, not the plate, no gallery change, no count
    assert run.status == "lost"
    with console_ctx.db.transaction() as session:
        person = session.scalars(select(Person).where(Person.external_id == "E1")).one()
        assert person.tier == "gold" and person.plates == []
        assert session.scalar(select(func.count()).select_from(GalleryChange)) == changes
        assert session.get_one(ImportJob, job_id).done == 0
    # and the same row, run by a console that holds its job, updates both at once
    report = _run(console_ctx, admin, csv_bytes("E1,platinum,沪A12345", header="external_id,tier,plates"), photos)
    assert [(o.status, o.reason) for o in report] == [("updated", "tier, plates")]
