"""A live edge service for the load and fault benchmarks: ``smartbranch edge run`` as a real child process.

The bench writes a config into a temporary folder and starts the service on 127.0.0.1 with its own data
key. It waits for ``/healthz`` and then watches the process: its exit status, its log (Python tracebacks,
fatal errors such as segfaults) and its resident memory (``VmRSS`` in ``/proc/PID/status``). The cameras
play the demo's scenes (:mod:`edge.demo`): people cut out of real photos walking into a lobby, and the
service counter scene when the person detector is installed.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import httpx
import yaml
from cryptography.fernet import Fernet

from edge.config import hash_token
from edge.demo.assets import ensure_face_photos
from edge.demo.counter_demo import CLIP_SETTINGS, COUNTER_SETTINGS, render_counter_frames
from edge.demo.run import write_entrance_video
from edge.demo.scene import SceneBuilder, faces_of
from vault.keys import KEY_ENV
from vision.engines.base import DlibEngineConfig, FaceEngine
from vision.engines.registry import build_engine
from vision.imageio import decode_image

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
ADMIN = "bench-admin"
CRASH_MARKERS = ("Traceback (most recent call last)", "Fatal Python error", "Segmentation fault",
                 "malloc(): ", "double free", "core dumped")
VIP_PHOTO = "obama.jpg"  # enrolled before the start; walks in as obama3.jpg in the demo scene


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


def service_executable() -> list[str]:
    """The installed ``smartbranch`` command of this interpreter's environment (``-m edge.cli.main`` otherwise)."""
    script = Path(sys.executable).with_name("smartbranch")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "edge.cli.main"]


@dataclass(frozen=True, slots=True)
class Scene:
    """The demo's camera files in a work folder and the real photos they are made of."""

    photos: Path
    entrance_video: Path
    counter_frames: Path | None  # None: the person detector is not installed


def build_scene(workdir: Path, *, counter: bool) -> Scene:
    """Render the demo's walk-in video (and its counter scene when asked and possible) into ``workdir``."""
    photos = ensure_face_photos()
    workdir.mkdir(parents=True, exist_ok=True)
    video = workdir / "entrance.mp4"
    write_entrance_video(SceneBuilder(build_engine(DlibEngineConfig(min_face_px=40)), photos), video)
    frames: Path | None = None
    if counter and render_counter_frames(workdir / "counter", photos, build_engine(DlibEngineConfig())):
        frames = workdir / "counter"
    return Scene(photos, video, frames)


def entrance_camera(index: int, video: Path) -> dict[str, Any]:
    return {"id": f"entrance-{index}", "name": f"正门{index}", "role": "entrance",
            "source": {"url": f"file:{video}", "fps": 10, "loop": True}}


def counter_settings() -> dict[str, Any]:
    """The demo's counter and clip settings (config sections), for a config with the counter camera."""
    return {"counter": COUNTER_SETTINGS, "clips": CLIP_SETTINGS}


def enrolment_photos(photos: Path, engine: FaceEngine) -> list[tuple[str, bytes]]:
    """Real photos to enrol during a run: Biden, each face of the group photo ``t1.jpg`` cut out with a margin
    (the group photo itself holds six faces and would be refused), and Tom Hanks (a 112 px aligned crop,
    refused as too small: a bad photo among the good ones)."""
    out = [("biden.jpg", (photos / "biden.jpg").read_bytes())]
    group = decode_image((photos / "t1.jpg").read_bytes())
    for n, box in enumerate(faces_of(engine, group)):
        x1, y1, x2, y2 = (float(v) for v in box)
        w, h = x2 - x1, y2 - y1
        crop = group[max(0, int(y1 - h)):int(y2 + h), max(0, int(x1 - w)):int(x2 + w)]
        big = cv2.resize(crop, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
        ok, jpeg = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if ok:
            out.append((f"t1-face{n}.jpg", jpeg.tobytes()))
    return [*out, ("tom_hanks.png", (photos / "tom_hanks.png").read_bytes())]  # 112 px: refused, too small


@dataclass(frozen=True, slots=True)
class Exit:
    """How one run of the service ended."""

    code: int | None  # None: still running
    signal: str | None  # the signal that killed it, e.g. SIGSEGV or SIGKILL
    crash_markers: tuple[str, ...]  # CRASH_MARKERS found in the run's log
    log_tail: str


@dataclass
class LiveService:
    """One edge service (one data folder, one port), started and restarted as child processes."""

    workdir: Path
    cameras: list[dict[str, Any]]
    key: str = field(default_factory=new_key)
    extra: dict[str, Any] = field(default_factory=dict)
    terminal_tokens: list[str] = field(default_factory=list)
    cores: int | None = None  # pin the service to this many CPUs (None: no pinning)
    port: int = field(default_factory=free_port)
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    runs: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config(), allow_unicode=True, sort_keys=False),
                                    encoding="utf-8")

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def config_path(self) -> Path:
        return self.workdir / "smartbranch.yaml"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def ws_url(self, token: str, since: int, epoch: str | None = None) -> str:
        url = f"ws://{HOST}:{self.port}/ws/terminal?token={token}&since={since}"
        return url if epoch is None else f"{url}&epoch={epoch}"

    def config(self) -> dict[str, Any]:
        tokens = [{"name": ADMIN, "sha256": hash_token(self.admin_token), "roles": ["admin"]}]
        tokens += [{"name": f"lobby-tablet-{i + 1:02d}", "sha256": hash_token(tok), "roles": ["lobby_manager"]}
                   for i, tok in enumerate(self.terminal_tokens)]
        return {"branch": {"id": "bench-branch", "name": "压测网点"}, "cameras": self.cameras,
                "server": {"host": HOST, "port": self.port}, "auth": {"tokens": tokens},
                "paths": {"data_dir": str(self.data_dir)}, **self.extra}

    def env(self, key: str | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env[KEY_ENV] = key if key is not None else self.key
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def log_path(self, run: int) -> Path:
        return self.workdir / f"service-{run}.log"

    def cli(self, *args: str, key: str | None = None, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run another ``smartbranch`` command on this service's config (e.g. ``enroll``)."""
        return subprocess.run([*service_executable(), *args, "--config", str(self.config_path)], env=self.env(key),
                              capture_output=True, text=True, timeout=timeout, check=False)

    def enrol_vip(self, photos: Path) -> None:
        """Enrol the demo's VIP with the CLI before the service starts (so no enrolment races the cameras)."""
        done = self.cli("enroll", "--name", "奥巴马", "--tier", "钻石", "--photo", str(photos / VIP_PHOTO),
                        "--consent", "压测：示例同意记录")
        if done.returncode != 0:
            raise RuntimeError(f"enrolling the VIP failed ({done.returncode}): {done.stderr.strip()[-800:]}")

    def start(self, *, key: str | None = None, timeout: float = 120.0) -> Exit | None:
        """Start a run and wait until ``/healthz`` answers. None when it is up; its Exit when it quit first."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the service is already running")
        self.runs += 1
        log = self.log_path(self.runs).open("wb")
        try:
            self.proc = subprocess.Popen([*service_executable(), "edge", "run", "--config", str(self.config_path)],
                                         env=self.env(key), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        finally:
            log.close()
        if self.cores:  # before the service has loaded its models, so all its threads inherit it
            os.sched_setaffinity(self.proc.pid, sorted(os.sched_getaffinity(0))[: self.cores])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.exit_info()
            if self._healthy():
                return None
            time.sleep(0.2)
        self.kill9()
        raise RuntimeError(f"the service did not answer /healthz within {timeout:.0f} s; "
                           f"see {self.log_path(self.runs)}")

    def _healthy(self) -> bool:
        try:
            return self.request("GET", "/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.alive() and self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 40.0) -> Exit:
        """Ask the service to stop (SIGTERM, as systemd does); SIGKILL when it does not within ``timeout``."""
        if self.proc is None:
            raise RuntimeError("the service was never started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("the service did not stop within %s s of SIGTERM; killing it", timeout)
                self.proc.kill()
                self.proc.wait(10)
        return self.exit_info()

    def exit_info(self, run: int | None = None) -> Exit:
        code = None if self.proc is None else self.proc.poll()
        text = self.log_text(run)
        sig = signal.Signals(-code).name if code is not None and code < 0 else None
        markers = tuple(m for m in CRASH_MARKERS if m in text)
        return Exit(code, sig, markers, text[-1500:])

    def log_text(self, run: int | None = None) -> str:
        path = self.log_path(run or self.runs)
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def tracebacks(self) -> int:
        """Python tracebacks written to the logs of every run so far (handled ones included)."""
        return sum(self.log_text(run).count(CRASH_MARKERS[0]) for run in range(1, self.runs + 1))

    def rss_mb(self) -> float | None:
        """Resident memory of the service process (VmRSS), or None when it is not running."""
        if self.pid is None or not self.alive():
            return None
        try:
            status = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
        match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
        return int(match.group(1)) / 1024 if match else None

    def request(self, method: str, path: str, *, token: str | None = None, timeout: float = 30.0,
                **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=timeout, **kwargs)

    def stored_alerts(self) -> list[dict[str, Any]]:
        """Every alert the service serves (``GET /api/alerts``, paged by ``since``)."""
        out: list[dict[str, Any]] = []
        since = 0
        while True:
            resp = self.request("GET", "/api/alerts", params={"since": since, "limit": 500})
            resp.raise_for_status()
            page = resp.json()
            out.extend(page)
            if len(page) < 500:
                return out
            since = int(page[-1]["seq"])


R = TypeVar("R")


def in_workdir(workdir: Path | None, prefix: str, run: Callable[[Path], R]) -> R:
    """``run`` on ``workdir`` (kept afterwards), or on a temporary folder that is removed when it returns."""
    if workdir is not None:
        return run(workdir)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        return run(Path(tmp))
