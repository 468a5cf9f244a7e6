"""The persons list served by ``smartbranch console run`` with ``server.workers`` processes (a separate row of
bench.console): a fresh server per run on the bench's database and data folder, so each worker starts with an
empty answer cache (each keeps its own, so a run has up to ``workers`` times the misses of one process), and
the same load as the one-process row (:mod:`bench.console_load`, its first client)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.common import percentile
from bench.console_load import LoadPlan, run_load
from console.context import ConsoleContext

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure_workers(ctx: ConsoleContext, workers: int, token: str, clients: int, requests: int, seed: int,
                    client: str, paths: tuple[str, ...]) -> dict[str, Any]:
    """``workers{N}_list_p50_ms`` / ``_p95_ms`` / ``_requests_per_s`` of one run on a fresh server."""
    port = _free_port()
    config = {"data_dir": str(ctx.config.data_dir), "server": {"port": port, "workers": workers},
              "database": {"url": ctx.config.database_url, "pool_size": ctx.config.database.pool_size}}
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        path = Path(tmp) / "console.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        log = (Path(tmp) / "run.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "launch.main", "console", "run", "--migrate", "--config",
                                 str(path)],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_up(proc, f"http://127.0.0.1:{port}/healthz", Path(tmp) / "run.log")
            latencies, errors, wall = run_load(LoadPlan(f"http://127.0.0.1:{port}", token, clients, requests, paths,
                                                        seed, client))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log.close()
    if errors:
        raise SystemExit(f"{len(errors)} list requests to {workers} workers failed, e.g. {errors[:3]}")
    prefix = f"workers{workers}_list"
    return {f"{prefix}_p50_ms": percentile(latencies, 0.5), f"{prefix}_p95_ms": percentile(latencies, 0.95),
            f"{prefix}_requests_per_s": len(latencies) / wall}


def _wait_up(proc: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"console run exited: {log.read_text(encoding='utf-8', errors='replace')[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                time.sleep(2.0)  # a moment for the other workers to start as well (no way to ask which answered)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"console run did not answer {url} in {timeout_s:.0f} s")
