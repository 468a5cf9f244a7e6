"""What every console subcommand shares: the ``--config`` argument, the schema check before anything is
opened, and the name the audit gives the person at the machine."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from sqlalchemy import Engine

from console.config import ConsoleConfig, load_console_config
from console.db import Database, make_engine
from console.migrate import current_revision, head_revision


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="console.yaml（缺省：全部默认值，SQLite 存于 var/console）/ console config file")


def config_of(args: argparse.Namespace) -> ConsoleConfig:
    return load_console_config(args.config)


def schema_problem(engine: Engine) -> str | None:
    """None when the database is at the newest revision; otherwise what to run, in Chinese then English."""
    current, head = current_revision(engine), head_revision(engine)
    if current == head:
        return None
    return (f"数据库版本 {current or '空'} 不是最新的 {head}：请先运行 smartbranch console migrate\n"
            f"The database is at revision {current or 'empty'}, not {head}: run `smartbranch console migrate`.")


def open_database(args: argparse.Namespace) -> Database | None:
    """The configured database when its schema is current; None (after saying why on stderr) otherwise."""
    engine = make_engine(config_of(args).database_url)
    problem = schema_problem(engine)
    if problem:
        engine.dispose()
        print(problem, file=sys.stderr)
        return None
    return Database(engine)


def operator_name() -> str:
    """How the audit names the person running a command at the console's machine: ``cli:<login>``."""
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "cli"
