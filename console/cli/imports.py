"""``smartbranch console import``: the bulk import run in this process, with a progress bar.

It is the web import's own code (:mod:`console.importer`), run on this thread as a named console user (their
role and branch scope apply, and the audit names them). Exit code 0 when every row went in (created, updated
or unchanged), 1 when some row failed (the report says which and why) or the run stopped midway (run the
same file again to go on), 2 when the files or the user are unusable and nothing was imported. With ``sync.mqtt``
configured it announces the new gallery version to the branches it touched (:mod:`console.sync.announce`) and
waits for the broker to take the announcements before it exits.
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
from console.importer.csvfile import parse_csv
from console.importer.jobs import RowOutcome, summary
from console.importer.photos import PhotoLimits, open_photos
from console.importer.service import IMPORT_ROLES, run_in_foreground, write_report
from console.security import Principal, principal_for
from console.sync.announce import install_announcer
from console.tables import User
from vision.errors import VisionError

ANNOUNCE_WAIT_S = 5.0  # how long the command waits for the MQTT broker, at its start and before it exits


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser("import", help="从 CSV 和照片批量导入人员 / bulk import persons from a CSV and photos")
    add_config_arg(cmd)
    cmd.add_argument("--csv", type=Path, required=True, help="人员 CSV（UTF-8）/ the persons CSV (UTF-8)")
    cmd.add_argument("--photos", type=Path, required=True, help="照片 zip 或文件夹 / a zip file or folder of photos")
    cmd.add_argument("--user", required=True, help="以此控制台用户的身份导入 / import as this console user")
    cmd.add_argument("--report", type=Path, default=None, help="逐行结果写入此 CSV / write the per-row report here")
    cmd.set_defaults(func=cmd_import)


def _fail(zh: str, en: str) -> int:
    print(f"{zh} / {en}", file=sys.stderr)
    return 2


def _principal(ctx: ConsoleContext, username: str) -> Principal | None:
    with ctx.db.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None or not user.active:
            return None
        return principal_for(session, user, "cli", ip="cli")


def cmd_import(args: argparse.Namespace) -> int:
    config = config_of(args)
    engine = make_engine(config.database_url)
    try:
        problem = schema_problem(engine)
    finally:
        engine.dispose()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        data = args.csv.read_bytes()
    except OSError as exc:
        return _fail(f"无法读取 CSV 文件 {args.csv}", f"cannot read the CSV file {args.csv}: {exc}")
    ctx = ConsoleContext.open(config)
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


def _run(ctx: ConsoleContext, args: argparse.Namespace, data: bytes) -> int:
    from tqdm import tqdm

    caller = _principal(ctx, args.user)
    if caller is None:
        return _fail(f"没有启用的用户 {args.user}", f"no active console user {args.user!r}")
    if caller.role not in IMPORT_ROLES:
        return _fail(f"用户 {args.user} 的角色 {caller.role} 不能导入（需要 admin 或 enroller）",
                     f"user {args.user} has the role {caller.role}; importing needs admin or enroller")
    try:
        parsed = parse_csv(data)
        photos = open_photos(args.photos, PhotoLimits(max_entry_bytes=int(ctx.config.face.max_photo_mb * 1048576)))
    except ConsoleError as exc:
        return _fail("文件无法导入，未导入任何人员", f"nothing was imported: {exc.message}")
    try:
        with tqdm(total=parsed.total, unit="行", desc="导入 / import", file=sys.stderr) as bar:
            def tick(outcome: RowOutcome) -> None:
                bar.update(1)
                if outcome.status == "failed":
                    failed[0] += 1
                    bar.set_postfix_str(f"失败 / failed {failed[0]}", refresh=False)

            failed = [0]
            job_id, outcomes = run_in_foreground(ctx, caller, args.csv.name, parsed, photos,
                                                 on_row=tick)
    except (SQLAlchemyError, OSError, VisionError) as exc:
        print(f"导入中断；已完成的行已保存，再次运行同一文件即可继续 / the import stopped; the rows done are kept, "
              f"run the same file again to go on: {exc}", file=sys.stderr)
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
