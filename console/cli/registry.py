"""The console CLI's subcommands beyond run and migrate, each registered by its own module."""

from __future__ import annotations

import argparse

from console.cli import branches, imports, reembed, users
from console.cli import edges as edge_cli  # (S1)


def register_all(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for module in (branches, users, imports, edge_cli, reembed):
        module.register(sub)
