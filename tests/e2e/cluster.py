"""The processes of the end-to-end sync test: console replicas (``smartbranch console run``) on one PostgreSQL
database and edge boxes (``smartbranch edge run``), each a real subprocess on a free loopback port, plus what the
test reads of them: an edge's /healthz and alerts over HTTP, its SQLite store and gallery files on disk, and the
console's database.

Camera sources are folders of frames made from real photos (``dir:`` sources that loop): a gap with nobody, a
photo of a person, a gap, the next person. The gap is longer than the face tracker's ``track_max_missed_s``, so
every pass is a new track, embedded and identified again; with the VIP rule's cooldown at 0 every pass of an
enrolled VIP is an alert.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import yaml

from tests.edge.conftest import IT_TOKEN, LOBBY_TOKEN, config_dict
from vision.imageio import decode_image

ROOT = Path(__file__).resolve().parents[2]
FPS = 6.0
SYNC = {"long_poll_s": 5, "status_interval_s": 2}  # long_poll_s is the sync interval of the erasure check


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    """Poll until ``condition()`` is true; fail after ``timeout_s`` (a guard, or the interval the issue sets)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


class Process:
    """One ``smartbranch`` subprocess with its output in a log file; started, stopped (SIGTERM) and killed."""

    def __init__(self, name: str, args: Sequence[str], log: Path) -> None:
        self.name, self.args, self.log = name, list(args), log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "launch.main", *self.args], cwd=ROOT, env=env(),
                                         stdout=out, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code, self.proc = self.proc.returncode, None
        return code

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def wait_http(self, url: str, timeout_s: float = 90.0, headers: dict[str, str] | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                pytest.fail(f"{self.name} exited\n{self.tail()}")
            try:
                if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        pytest.fail(f"{self.name} did not answer {url}\n{self.tail()}")


class ConsoleReplica(Process):
    def __init__(self, name: str, config: Path, folder: Path) -> None:
        self.port = free_port()
        super().__init__(name, ["console", "run", "--config", str(config), "--port", str(self.port)],
                         folder / f"{name}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        self.start()
        self.ready()

    def ready(self) -> None:
        self.wait_http(f"{self.url}/healthz")


class EdgeBox(Process):
    """A branch's box: config, data folder and log under ``folder``; its HTTP API on a free port."""

    def __init__(self, name: str, folder: Path, cameras: list[dict[str, Any]], **extra: Any) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.port, self.config = folder, free_port(), folder / "smartbranch.yaml"
        self.data_dir = folder / "data"
        super().__init__(name, ["edge", "run", "--config", str(self.config)], folder / "edge.log")
        self.write_config(cameras, **extra)

    def write_config(self, cameras: list[dict[str, Any]], **extra: Any) -> None:
        """The box's YAML; a ``sync.console_url`` written by registration is kept."""
        console_url = None
        if self.config.exists():
            console_url = (yaml.safe_load(self.config.read_text(encoding="utf-8")).get("sync") or {}).get(
                "console_url")
        sync = {**SYNC, **({"console_url": console_url} if console_url else {})}
        data = config_dict(self.data_dir, cameras, branch={"id": self.name, "name": self.name},
                           server={"host": "127.0.0.1", "port": self.port},
                           face={"engine_instances": 1, "track_max_missed_s": 0.5},
                           rules={"vip_arrival": {"cooldown_s": 0}}, sync=sync, **extra)
        self.config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        """Start and wait until it serves (its sync caught up with the console before the server started)."""
        self.start()
        self.ready()

    def ready(self) -> None:
        self.wait_http(f"{self.url}/healthz", headers={"Authorization": f"Bearer {IT_TOKEN}"})

    # -- what the test reads ---------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/healthz", headers={"Authorization": f"Bearer {IT_TOKEN}"}, timeout=5)
        return dict(answer.json())

    def version(self) -> int:
        try:
            return int(self.health()["sync"]["gallery_version"])
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            return -1

    def alerts(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/alerts", params={"limit": 500},
                           headers={"Authorization": f"Bearer {LOBBY_TOKEN}"}, timeout=5)
        answer.raise_for_status()
        return list(answer.json())

    def vip_alerts(self, person_id: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts() if a["type"] == "vip_arrival" and a["person_id"] == person_id]

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """Read the box's SQLite store (WAL: a reader beside the running box)."""
        with sqlite3.connect(f"file:{self.data_dir / 'edge.db'}?mode=ro", uri=True, timeout=10) as db:
            return list(db.execute(sql, args))

    def meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", key)
        return str(rows[0][0]) if rows else None

    def gallery_owners(self) -> set[str]:
        """Every person id named by any gallery id map in the data folder (the one in use and any left over)."""
        owners: set[str] = set()
        for path in (self.data_dir / "gallery").rglob("*.ids.json"):
            owners.update(str(v) for v in json.loads(path.read_text(encoding="utf-8"))["owner"].values())
        return owners

    def holds(self, person_id: str) -> dict[str, bool]:
        """Where ``person_id`` is on this box: store rows, photos, plates, gallery files, any file name."""
        return {
            "store": bool(self.query("SELECT 1 FROM persons WHERE id = ?", person_id)),
            "photos": bool(self.query("SELECT 1 FROM person_photos WHERE person_id = ?", person_id)),
            "plates": bool(self.query("SELECT 1 FROM plates WHERE person_id = ?", person_id)),
            "synced": bool(self.query("SELECT 1 FROM synced_persons WHERE person_id = ?", person_id)),
            "gallery": person_id in self.gallery_owners(),
            "files": any(person_id in p.name for p in self.data_dir.rglob("*")),
        }


# -- camera frames ------------------------------------------------------------------------------------------------
def _placed(photo: np.ndarray, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """The photo scaled into a grey frame (faces of about 100-200 px, above the engine's 80 px minimum)."""
    width, height = size
    frame = np.full((height, width, 3), 96, np.uint8)
    scale = min(width / photo.shape[1], height / photo.shape[0])
    resized = cv2.resize(photo, (int(photo.shape[1] * scale), int(photo.shape[0] * scale)))
    y, x = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    frame[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
    return frame


def walk_frames(folder: Path, photos_dir: Path, people: Sequence[str], *, face_frames: int = 8,
                gap_frames: int = 6) -> Path:
    """A looping entrance: for each photo in ``people``, a gap with nobody, then the photo."""
    folder.mkdir(parents=True, exist_ok=True)
    blank = np.full((480, 640, 3), 96, np.uint8)
    n = 0
    for name in people:
        image = _placed(decode_image((photos_dir / name).read_bytes()))
        for frame in [blank] * gap_frames + [image] * face_frames:
            cv2.imwrite(str(folder / f"frame_{n:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
            n += 1
    return folder


def entrance(frames: Path) -> dict[str, Any]:
    return {"id": "entrance-1", "name": "正门", "role": "entrance",
            "source": {"url": f"dir:{frames}", "fps": FPS, "loop": True}}
