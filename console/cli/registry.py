"""The console CLI's subcommands beyond run and migrate, each registered by its own module."""

from __future__ import annotations

import argparse


def register_all(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from console.cli import branches as _branches  # H2b
    _branches.register(sub)
    from console.cli import imports as _imports  # H3
    _imports.register(sub)
    from console.cli import users as _users  # H1
    _users.register(sub)
    pass
