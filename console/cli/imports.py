"""``smartbranch console import`` and ``import-jobs``: the bulk import run in this process, with a progress bar,
and the list of import jobs (with the interrupted ones, their reason, and a way to give one up).

It is the web import's own code (:mod:`console.importer`), run on this thread as a named console user (their
role and branch scope apply, and the audit names them). Exit code 0 when every row went in (created, updated
or unchanged), 1 when some row failed (the report says which and why) or the run stopped midway (the job is
then interrupted: ``--resume JOB`` with the same files goes on with the rows not yet done), 2 when the files or
the user are unusable and nothing was imported. Both commands first mark the jobs whose console died as
interrupted (:func:`console.importer.lease.recover_jobs`). With ``sync.mqtt`` configured it announces the new
gallery version to the branches it touched (:mod:`console.sync.announce`) and waits for the broker to take the
announcements before it exits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from console.cli.common import add_config_arg, config_of, schema_problem
from console.context import ConsoleContext
from console.db import make_engine
from console.errors import ConsoleError
from console.importer import sealed
from console.importer.csvfile import parse_csv
from console.importer.jobs import RowOutcome, summary
from console.importer.lease import recover_jobs
from console.importer.photos import PhotoLimits, PhotoSource, open_photos
from console.importer.service import IMPORT_ROLES, abandon, run_in_foreground, write_report
from console.security import Principal, principal_for
from console.sync.announce import install_announcer
from console.tables import ImportJob, User
from vision.errors import VisionError

ANNOUNCE_WAIT_S = 5.0  # how long the command waits for the MQTT broker, at its start and before it exits


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser("import", help="从 CSV 和照片批量导入人员 / bulk import persons from a CSV and photos")
    add_config_arg(cmd)
    cmd.add_argument("--csv", type=Path, default=None, help="人员 CSV（UTF-8）/ the persons CSV (UTF-8)")
    cmd.add_argument("--photos", type=Path, default=None, help="照片 zip 或文件夹 / a zip file or folder of photos")
    cmd.add_argument("--user", required=True, help="以此控制台用户的身份导入 / import as this console user")
    cmd.add_argument("--report", type=Path, default=None, help="逐行结果写入此 CSV / write the per-row report here")
    cmd.add_argument("--resume", default=None, metavar="JOB",
                     help="继续中断的任务（同一 CSV 与照片；网页上传的任务可省略文件）/ go on with an interrupted job "
                          "(the same CSV and photos; a web upload's job needs none)")
    cmd.set_defaults(func=cmd_import)
    jobs = sub.add_parser("import-jobs", help="导入任务列表（含中断的任务）/ the import jobs, interrupted ones too")
    add_config_arg(jobs)
    jobs.add_argument("--user", required=True, help="以此控制台用户的身份 / as this console user")
    jobs.add_argument("--abandon", default=None, metavar="JOB",
                      help="放弃中断的任务并删除其加密上传 / give up an interrupted job, deleting its upload")
    jobs.set_defaults(func=cmd_jobs)


def _fail(zh: str, en: str) -> int:
    print(f"{zh} / {en}", file=sys.stderr)
    return 2


def _principal(ctx: ConsoleContext, username: str) -> Principal | None:
    with ctx.db.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None or not user.active:
            return None
        return principal_for(session, user, "cli", ip="cli")


def _open(args: argparse.Namespace) -> ConsoleContext | None:
    """The console's context when its schema is current, after recovering the jobs whose console died."""
    config = config_of(args)
    engine = make_engine(config.database_url)
    try:
        problem = schema_problem(engine)
    finally:
        engine.dispose()
    if problem:
        print(problem, file=sys.stderr)
        return None
    ctx = ConsoleContext.open(config)
    for job_id in recover_jobs(ctx):
        print(f"导入任务 {job_id} 已中断，可用 --resume {job_id} 继续 / import job {job_id} was interrupted; "
              f"--resume {job_id} goes on with it", file=sys.stderr)
    return ctx


def cmd_jobs(args: argparse.Namespace) -> int:
    ctx = _open(args)
    if ctx is None:
        return 2
    try:
        caller = _principal(ctx, args.user)
        if caller is None or caller.role not in IMPORT_ROLES:
            return _fail(f"用户 {args.user} 不能查看导入任务", f"user {args.user!r} is not an active importer")
        if args.abandon:
            try:
                gone = abandon(ctx, caller, args.abandon)
            except ConsoleError as exc:
                return _fail("无法放弃该任务", exc.message)
            print(f"导入任务 {gone['id']} 已放弃 / import job {gone['id']} abandoned")
            return 0
        with ctx.db.transaction() as session:
            query = select(ImportJob).order_by(ImportJob.created_at.desc()).limit(50)
            if caller.role != "admin":
                query = query.where(ImportJob.created_by == caller.username)
            for job in session.scalars(query):
                print(f"{job.id}  {job.status:<11}  {job.done}/{job.total}  {job.created_at:%Y-%m-%d %H:%M}  "
                      f"{job.source:<6}  {job.filename}" + (f"  {job.error}" if job.error else ""))
        return 0
    finally:
        ctx.close()


def cmd_import(args: argparse.Namespace) -> int:
    data: bytes | None = None
    if args.csv is not None:
        try:
            data = args.csv.read_bytes()
        except OSError as exc:
            return _fail(f"无法读取 CSV 文件 {args.csv}", f"cannot read the CSV file {args.csv}: {exc}")
    elif args.resume is None:
        return _fail("需要 --csv 和 --photos", "--csv and --photos are required")
    ctx = _open(args)
    if ctx is None:
        return 2
    announcer = install_announcer(ctx)  # the edges hear of the import as they do of one run in the console
    if announcer is not None and not announcer.wait_connected(ANNOUNCE_WAIT_S):
        print("MQTT 代理未连接，边缘设备将在下次轮询时获取导入结果 / the MQTT broker is not reachable; the edges get "
              "the import at their next poll", file=sys.stderr)
    try:
        return _run(ctx, args, data)
    finally:
        if announcer is not None:
            announcer.flush(ANNOUNCE_WAIT_S)
        ctx.close()


def _files(ctx: ConsoleContext, args: argparse.Namespace, data: bytes | None) -> tuple[bytes, PhotoSource]:
    """The CSV's bytes and the photos: the files named, or a resumed web upload's sealed ones."""
    limits = PhotoLimits(max_entry_bytes=int(ctx.config.face.max_photo_mb * 1048576))
    if data is not None and args.photos is not None:
        return data, open_photos(args.photos, limits)
    if args.resume is None or data is not None or args.photos is not None:
        raise ConsoleError("missing_files", "--csv and --photos go together", 422)
    try:
        return sealed.read_csv(ctx, args.resume), sealed.open_zip(ctx, sealed.zip_path(ctx, args.resume), limits)
    except sealed.UploadGone:
        raise ConsoleError("no_upload", f"import job {args.resume} keeps no upload: give --csv and --photos",
                           422) from None


def _done_before(ctx: ConsoleContext, job_id: str | None) -> int:
    if job_id is None:
        return 0
    with ctx.db.transaction() as session:
        job = session.get(ImportJob, job_id)
        return job.done if job is not None else 0


def _run(ctx: ConsoleContext, args: argparse.Namespace, data: bytes | None) -> int:
    from tqdm import tqdm

    caller = _principal(ctx, args.user)
    if caller is None:
        return _fail(f"没有启用的用户 {args.user}", f"no active console user {args.user!r}")
    if caller.role not in IMPORT_ROLES:
        return _fail(f"用户 {args.user} 的角色 {caller.role} 不能导入（需要 admin 或 enroller）",
                     f"user {args.user} has the role {caller.role}; importing needs admin or enroller")
    try:
        data, photos = _files(ctx, args, data)
        parsed = parse_csv(data)
    except ConsoleError as exc:
        return _fail("文件无法导入，未导入任何人员", f"nothing was imported: {exc.message}")
    try:
        with tqdm(total=parsed.total, initial=_done_before(ctx, args.resume), unit="行", desc="导入 / import",
                  file=sys.stderr) as bar:
            def tick(outcome: RowOutcome) -> None:
                bar.update(1)
                if outcome.status == "failed":
                    failed[0] += 1
                    bar.set_postfix_str(f"失败 / failed {failed[0]}", refresh=False)

            failed = [0]
            job_id, outcomes = run_in_foreground(ctx, caller, args.csv.name if args.csv else "import.csv", parsed,
                                                 photos, on_row=tick, resume=args.resume)
    except ConsoleError as exc:
        return _fail("无法继续该任务", exc.message)
    except KeyboardInterrupt:
        print("导入已停止，任务标记为中断；import-jobs 列出其编号，用 --resume 继续 / the import stopped and its job "
              "is interrupted; import-jobs lists its id, --resume goes on with it", file=sys.stderr)
        return 130
    except (SQLAlchemyError, OSError, VisionError) as exc:
        print(f"导入中断；已完成的行已保存，用 --resume 继续 / the import stopped; the rows done are kept, "
              f"--resume with the same files goes on: {exc}", file=sys.stderr)
        return 1
    finally:
        photos.close()
    counts = summary([o.as_json() for o in outcomes])
    print(f"导入完成（任务 {job_id}）：新建 {counts['created']}，更新 {counts['updated']}，未变 {counts['unchanged']}，"
          f"失败 {counts['failed']}")
    print(f"Import finished (job {job_id}): created {counts['created']}, updated {counts['updated']}, "
          f"unchanged {counts['unchanged']}, failed {counts['failed']}")
    for outcome in [o for o in outcomes if o.status == "failed"][:10]:
        print(f"  第 {outcome.row} 行 / row {outcome.row} {outcome.external_id}: {outcome.code}: {outcome.reason}")
    if args.report is not None:
        write_report(args.report, outcomes)
        print(f"逐行结果 / report: {args.report}")
    return 0 if counts["failed"] == 0 else 1
