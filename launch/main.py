"""``smartbranch console ...`` goes to the central console's CLI, everything else to the edge box's CLI.

Neither service imports the other; this launcher is the only module that knows both, and it imports only
the one a command needs (an edge box does not load the console's packages, and the reverse).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["console"]:
        from console.cli.main import main as console_main

        return console_main(args[1:])
    if "demo" in _command(args):
        from launch.demo import run

        return run(args)
    from edge.cli.main import main as edge_main

    return edge_main(args)


def _command(args: list[str]) -> list[str]:
    """The first word that is not one of the edge CLI's global options (``--lang X``, ``-v``)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] == "--lang" else 1
    return args[i:i + 1]


if __name__ == "__main__":  # python -m launch.main
    raise SystemExit(main())
