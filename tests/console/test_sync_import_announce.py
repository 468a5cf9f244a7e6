"""A bulk import run from the command line, outside the console's process, announces the new gallery version on
the real Mosquitto (127.0.0.1:1883) like an import through the console does."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import yaml

from console.context import ConsoleContext
from tests.console.conftest import add_branch, add_user
from tests.console.sync_helpers import BROKER, gallery_listener, version_of
from tests.console.test_import import CONSENT, csv_bytes


def test_the_cli_import_announces_the_new_version_to_the_branch(
        console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes], tmp_path: Path) -> None:
    from console.cli.main import main

    add_branch(console_ctx, "SH001")
    add_user(console_ctx, "importer", "enroller")
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "obama.jpg").write_bytes(photo_bytes("obama.jpg"))
    (tmp_path / "people.csv").write_bytes(csv_bytes(f"E1,奥巴马,vip,gold,SH001,,,obama.jpg,,{CONSENT}"))
    prefix = f"sbtest-{secrets.token_hex(4)}"
    config = tmp_path / "console.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(console_ctx.config.data_dir),
                                      "database": {"url": console_ctx.config.database_url},
                                      "sync": {"mqtt": {"host": BROKER[0], "port": BROKER[1],
                                                        "topic_prefix": prefix}}}))
    with gallery_listener(f"{prefix}/gallery/#") as received:
        assert main(["import", "--config", str(config), "--csv", str(tmp_path / "people.csv"), "--photos",
                     str(folder), "--user", "importer"]) == 0
        # the command has returned: what it announced was handed to the broker before it exited
        assert received.get(timeout=10) == (f"{prefix}/gallery/SH001", {"version": version_of(console_ctx)})
