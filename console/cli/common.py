"""What every console subcommand shares: the ``--config`` argument and reading it."""

from __future__ import annotations

import argparse
from pathlib import Path

from console.config import ConsoleConfig, load_console_config


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="console.yaml（缺省：全部默认值，SQLite 存于 var/console）/ console config file")


def config_of(args: argparse.Namespace) -> ConsoleConfig:
    return load_console_config(args.config)
