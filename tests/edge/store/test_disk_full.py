"""A full disk refuses writes with a clear 507 and leaves nothing half-written; the box keeps serving."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from edge.api.app import create_app
from edge.api.errors import is_disk_full
from edge.config import load_config
from edge.runtime import EdgeRuntime
from tests.edge.conftest import ENROLLER_TOKEN, LOBBY_TOKEN, config_dict
from vision.engines.owner import EnginePool

AUTH = {"Authorization": f"Bearer {ENROLLER_TOKEN}"}
FORM = {"name": "王五", "tier": "白金", "consent": "2026-11-28 柜面书面同意"}


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 32 MiB tmpfs (needs root and mount rights; skipped with the reason otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk``; returns the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


def test_enrolment_on_a_full_disk_is_507_and_nothing_is_half_written(
        small_disk: Path, tmp_path: Path, engine_pool: EnginePool, photo_bytes: Callable[[str], bytes]) -> None:
    # given an edge box whose data folder is on a small disk, with one person enrolled
    cfg = tmp_path / "smartbranch.yaml"
    cfg.write_text(yaml.safe_dump(config_dict(small_disk / "data"), allow_unicode=True), encoding="utf-8")
    runtime = EdgeRuntime(load_config(cfg), engine=engine_pool)
    try:
        with TestClient(create_app(runtime, start_cameras=False)) as client:
            first = client.post("/api/persons", headers=AUTH, data=FORM,
                                files={"photo": ("obama.jpg", photo_bytes("obama.jpg"), "image/jpeg")})
            assert first.status_code == 201, first.text
            gallery_before = sorted(p.name for p in runtime.gallery_dir.iterdir())
            # when the disk fills up and another person is enrolled
            filler = fill(small_disk)
            full = client.post("/api/persons", headers=AUTH, data={**FORM, "name": "拜登"},
                               files={"photo": ("biden.jpg", photo_bytes("biden.jpg"), "image/jpeg")})
            # then the answer is a 507 naming the cause, and no part of the new person exists anywhere
            assert full.status_code == 507, full.text
            assert full.json()["detail"]["code"] == "disk_full"
            assert [p.name for p in runtime.store.list_persons()] == ["王五"]
            assert runtime.gallery.persons == {first.json()["id"]}
            assert sorted(p.name for p in runtime.gallery_dir.iterdir()) == gallery_before
            # and the box still serves what it has
            photo = client.get(first.json()["photo_url"], headers={"Authorization": f"Bearer {LOBBY_TOKEN}"})
            assert photo.status_code == 200
            # when space comes back, the same enrolment goes through
            os.unlink(filler)
            again = client.post("/api/persons", headers=AUTH, data={**FORM, "name": "拜登"},
                                files={"photo": ("biden.jpg", photo_bytes("biden.jpg"), "image/jpeg")})
            assert again.status_code == 201, again.text
            assert len(runtime.gallery) == 2
    finally:
        runtime.stop()


@pytest.mark.parametrize(("exc", "full"), [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
    (OSError(errno.EACCES, "Permission denied"), False),
    (OperationalError("INSERT", {}, Exception("database or disk is full")), True),
    (OperationalError("INSERT", {}, Exception("database is locked")), False),
    (ValueError("no"), False),
])
def test_disk_full_is_recognised_from_the_os_and_from_sqlite(exc: BaseException, full: bool) -> None:
    assert is_disk_full(exc) is full
