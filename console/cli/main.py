"""``smartbranch console run|migrate|…``: the console's command line (Chinese first, then English)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from console.cli.common import add_config_arg, config_of, schema_problem
from console.cli.registry import register_all
from console.config import ConsoleConfigError, load_console_config
from console.db import make_engine
from console.migrate import current_revision, downgrade, upgrade
from vault.errors import KeyMaterialError

if TYPE_CHECKING:
    from fastapi import FastAPI


def cmd_migrate(args: argparse.Namespace) -> int:
    config = config_of(args)
    engine = make_engine(config.database_url)
    try:
        before = current_revision(engine)
        if args.downgrade:
            downgrade(engine, args.downgrade)
        else:
            upgrade(engine, args.revision)
        after = current_revision(engine)
    finally:
        engine.dispose()
    print(f"数据库版本 / database revision: {before or '空 / empty'} -> {after or '空 / empty'}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    from console.app import create_app

    config = config_of(args)
    engine = make_engine(config.database_url)
    try:
        if args.migrate:
            upgrade(engine)
        problem = schema_problem(engine)
    finally:
        engine.dispose()
    if problem:
        print(problem + " (or `console run --migrate`)", file=sys.stderr)
        return 2
    host, port = args.host or config.server.host, args.port or config.server.port
    workers = args.workers or config.server.workers
    print(f"中心控制台 / central console: http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/"
          + (f" ({workers} 个进程 / processes)" if workers > 1 else ""))
    allowed = config.server.forwarded_allow_ips
    if workers == 1:
        uvicorn.run(create_app(config), host=host, port=port, log_level="warning", proxy_headers=True,
                    forwarded_allow_ips=allowed)
        return 0
    # each worker process builds its own app from the same file (uvicorn starts them from an import string)
    os.environ[WORKER_CONFIG_ENV] = str(args.config.resolve()) if args.config else ""
    uvicorn.run("console.cli.main:worker_app", factory=True, workers=workers, host=host, port=port,
                log_level="warning", proxy_headers=True, forwarded_allow_ips=allowed)
    return 0


WORKER_CONFIG_ENV = "SMARTBRANCH_CONSOLE_WORKER_CONFIG"


def worker_app() -> FastAPI:
    """The app of one of ``console run``'s worker processes, on the config file the parent was given."""
    from console.app import create_app

    path = os.environ.get(WORKER_CONFIG_ENV, "")
    return create_app(load_console_config(Path(path) if path else None))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smartbranch console", description="smartbranch 中心控制台 / central console")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="运行控制台 / run the console")
    add_config_arg(run)
    run.add_argument("--host", default=None)
    run.add_argument("--port", type=int, default=None)
    run.add_argument("--migrate", action="store_true", help="先升级数据库 / upgrade the database first")
    run.add_argument("--workers", type=int, default=None, choices=range(1, 33), metavar="N",
                     help="进程数（缺省 server.workers）/ server processes (default: server.workers)")
    run.set_defaults(func=cmd_run)
    mig = sub.add_parser("migrate", help="升级（或降级）数据库 / upgrade (or downgrade) the database")
    add_config_arg(mig)
    mig.add_argument("--revision", default="head", help="目标版本 / target revision (default head)")
    mig.add_argument("--downgrade", default=None, metavar="REV", help="降级到此版本（base：清空）/ downgrade to REV")
    mig.set_defaults(func=cmd_migrate)
    register_all(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except (ConsoleConfigError, KeyMaterialError) as exc:
        print(f"配置错误 / config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
