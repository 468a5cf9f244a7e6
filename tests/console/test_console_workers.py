"""``smartbranch console run`` with ``server.workers`` (or ``--workers``): that many console processes serve one
port, each a replica with its own caches, on the same database; a bad value is refused naming the field."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from console.config import ConsoleConfigError, load_console_config
from console.context import ConsoleContext
from tests.console.conftest import add_token, add_user
from tests.waiting import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launch.main", "console", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


def _workers(pid: int) -> list[int]:
    """The spawned worker processes under ``pid`` (multiprocessing's resource tracker left out)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ")]


def test_a_worker_count_out_of_range_is_refused_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "console.yaml"
    config.write_text("server:\n  workers: 0\n", encoding="utf-8")
    with pytest.raises(ConsoleConfigError, match=r"server\.workers"):
        load_console_config(config)


def test_two_worker_processes_serve_one_port(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "console.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nserver:\n  port: {port}\n  workers: 2\n", encoding="utf-8")
    assert _cli("migrate", "--config", str(config)).returncode == 0
    ctx = ConsoleContext.open(load_console_config(config))
    try:
        bearer = {"Authorization": f"Bearer {add_token(ctx, add_user(ctx, 'script', 'admin'))}"}
    finally:
        ctx.close()
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "launch.main", "console", "run", "--config", str(config)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 90, "the console to answer")
        wait_for(lambda: len(_workers(proc.pid)) == 2, 60, "two worker processes")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=bearer) as client:
            for _ in range(6):  # kept-alive and new connections alike: each worker answers the same
                assert client.get("/api/persons").json() == {"items": [], "total": 0, "total_exact": True}
                assert httpx.get(f"http://127.0.0.1:{port}/api/persons", headers=bearer).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
    assert "(2 个进程 / processes)" in (tmp_path / "run.log").read_text(encoding="utf-8")
