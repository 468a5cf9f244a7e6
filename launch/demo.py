"""``smartbranch demo``: the edge box's demo with the central console beside it.

The console starts first, on SQLite in ``<workdir>/console`` (its own data folder and key), with an admin
sign-in and the demo's branch and people enrolled there from the same real photos; its URL and the admin's
user name and password are printed. Then the edge box's demo runs: it registers at the console with a one-time
code made here in-process and receives the VIP and the clerk through sync (nobody is enrolled on the box), then
greets the VIP as he walks in. The console stops with the
demo, or keeps serving with it under ``--serve``. ``--console-port N`` moves it (default 8090);
``--no-console`` runs the edge box's demo alone.
"""

from __future__ import annotations

from pathlib import Path

CONSOLE_PORT = 8090


def split_args(args: list[str]) -> tuple[list[str], int | None, str, Path]:
    """(the edge CLI's arguments, the console's port or None for no console, language, workdir)."""
    edge_args: list[str] = []
    port: int | None = CONSOLE_PORT
    lang, workdir = "zh", Path("var/demo")
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--no-console":
            port = None
        elif arg == "--console-port" and i + 1 < len(args):
            port, i = int(args[i + 1]), i + 1
        elif arg.startswith("--console-port="):
            port = int(arg.split("=", 1)[1])
        else:
            edge_args.append(arg)
            if arg == "--lang" and i + 1 < len(args):
                lang = args[i + 1]
            elif arg.startswith("--lang="):
                lang = arg.split("=", 1)[1]
            elif arg == "--workdir" and i + 1 < len(args):
                workdir = Path(args[i + 1])
            elif arg.startswith("--workdir="):
                workdir = Path(arg.split("=", 1)[1])
        i += 1
    return edge_args, port, lang, workdir


def run(args: list[str]) -> int:
    from edge.cli.main import main as edge_main

    edge_args, port, lang, workdir = split_args(args)
    if port is None:
        return edge_main(edge_args)
    from console.demo import DemoPerson, start_console_demo
    from edge.demo.assets import ensure_face_photos
    from edge.demo.counter_demo import STAFF_ENROL_PHOTO, STAFF_NAME, STAFF_TIER
    from edge.demo.run import VIP_ENROL_PHOTO, VIP_NAME, VIP_TIER

    photos = ensure_face_photos()
    people = [DemoPerson(VIP_NAME, VIP_TIER, "vip", (photos / VIP_ENROL_PHOTO).read_bytes()),
              DemoPerson(STAFF_NAME, STAFF_TIER, "staff", (photos / STAFF_ENROL_PHOTO).read_bytes())]
    console = start_console_demo(workdir / "console", port=port, people=people, lang=lang)
    try:
        return edge_main([*edge_args, "--console", console.url.rstrip("/"), "--code", console.edge_code()])
    finally:
        console.stop()
