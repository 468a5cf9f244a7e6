"""``make demo``: real photos -> a walk-in video -> the VIP (and the counter's clerk) -> run the edge box on it.

With the demo console beside it (``smartbranch demo``, see :mod:`launch.demo`) the box does what a branch's box
does: it registers at the console with a one-time code (``--console URL --code CODE``) and receives the people
enrolled there through sync, before its cameras start. Without a console (``--no-console``) it enrols them itself.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from edge.api.auth import new_token
from edge.config import EdgeConfig, hash_token, load_config
from edge.demo.assets import ensure_face_photos
from edge.demo.counter_demo import (
    CLIP_SETTINGS,
    COUNTER_SETTINGS,
    STAFF_ENROL_PHOTO,
    STAFF_NAME,
    STAFF_TIER,
    counter_camera,
    render_counter_frames,
)
from edge.demo.scene import Actor, Appearance, SceneBuilder
from edge.i18n import t
from edge.terminal import alert_printer, print_terminal_link, stop_on_sigterm
from vision.engines.base import DlibEngineConfig
from vision.engines.registry import build_engine

if TYPE_CHECKING:
    from edge.runtime import EdgeRuntime

logger = logging.getLogger(__name__)

VIP_NAME = "奥巴马"
VIP_TIER = "钻石"
VIP_ENROL_PHOTO = "obama.jpg"
# the demo box asks the console often, so that a person enrolled at the console during the demo arrives at once
DEMO_SYNC: dict[str, object] = {"long_poll_s": 5, "status_interval_s": 10}


def demo_appearances() -> list[Appearance]:
    """Strangers and one VIP (photographed differently from the enrolment photo) walk in."""
    return [
        Appearance(Actor("stranger-t1-0", "t1.jpg", 0), 0.5, side="right", lane_x=0.62),
        Appearance(Actor("vip", "obama3.jpg"), 3.0, dwell_s=3.0, lane_x=0.35),
        Appearance(Actor("stranger-biden", "biden.jpg"), 4.0, side="right", lane_x=0.66),
        Appearance(Actor("stranger-t1-2", "t1.jpg", 2), 8.0, lane_x=0.3),
        Appearance(Actor("stranger-hanks", "tom_hanks.png"), 9.5, side="right", lane_x=0.6),
        Appearance(Actor("stranger-t1-4", "t1.jpg", 4), 12.0, lane_x=0.4),
    ]


def write_entrance_video(builder: SceneBuilder, path: Path) -> float:
    """Write the demo's walk-in video (``demo_appearances``) to ``path``; return its length in seconds."""
    appearances = demo_appearances()
    duration = max(a.enter_s + 2 * a.walk_s + a.dwell_s for a in appearances) + 1.0
    builder.write(path, appearances, duration)
    return duration


def demo_config(workdir: Path, video: Path, port: int, token: str, counter_frames: Path | None = None,
                sync: dict[str, object] | None = None) -> dict[str, object]:
    cameras: list[dict[str, object]] = [{"id": "entrance-1", "name": "正门", "role": "entrance",
                                         "source": {"url": f"file:{video}", "fps": 10}}]
    extra: dict[str, object] = {}
    if counter_frames is not None:
        cameras.append(counter_camera(counter_frames))
        extra = {"counter": COUNTER_SETTINGS, "clips": CLIP_SETTINGS}
    return {
        "branch": {"id": "demo-branch", "name": "演示网点"},
        "cameras": cameras,
        **extra,
        "server": {"host": "127.0.0.1", "port": port},
        "auth": {"tokens": [{"name": "demo-admin", "sha256": hash_token(token),
                             "roles": ["admin", "lobby_manager", "enroller"]}]},
        "paths": {"data_dir": str(workdir / "data")},
        **({"sync": sync} if sync is not None else {}),
    }


def prepare(workdir: Path, port: int, lang: str, *, sync: bool = False) -> tuple[EdgeConfig, str, Path]:
    """Fresh demo state: video, config file and token. Returns (config, token, photos folder)."""
    if (workdir / "data").exists():
        shutil.rmtree(workdir / "data")
    workdir.mkdir(parents=True, exist_ok=True)
    photos = ensure_face_photos()
    print(t("demo_building", lang), flush=True)
    builder = SceneBuilder(build_engine(DlibEngineConfig(min_face_px=40)), photos)
    frames_dir = (workdir / "counter").resolve()
    if frames_dir.exists():
        shutil.rmtree(frames_dir)
    counter_frames: Path | None = frames_dir
    if not render_counter_frames(frames_dir, photos, build_engine(DlibEngineConfig())):
        print(t("demo_counter_skipped", lang), flush=True)
        counter_frames = None
    video = (workdir / "entrance.mp4").resolve()
    duration = write_entrance_video(builder, video)
    print(t("demo_video", lang, path=video, seconds=duration, people=len(demo_appearances())), flush=True)
    token = new_token()
    config_path = workdir / "smartbranch.yaml"
    settings = demo_config(workdir.resolve(), video, port, token, counter_frames, DEMO_SYNC if sync else None)
    config_path.write_text(yaml.safe_dump(settings, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_config(config_path), token, photos


JoinConsole = Callable[[Path, str, str, str], "EdgeConfig | None"]
"""Registers the box whose config is at the path with the console URL and one-time code (and the language): the
config with the sync on, or None when the console refused. The CLI hands in ``edge register``'s own step."""


def enrol_locally(runtime: EdgeRuntime, photos: Path, lang: str) -> None:
    """Without a console: the box enrols the demo's VIP (and the counter's clerk) itself."""
    person = runtime.enroller.enrol(name=VIP_NAME, tier=VIP_TIER, photo=(photos / VIP_ENROL_PHOTO).read_bytes(),
                                    consent="演示：本人同意（示例记录）")
    print(t("demo_enrolled", lang, name=person.name, tier=person.tier, photo=VIP_ENROL_PHOTO), flush=True)
    if any(c.role == "counter" for c in runtime.config.cameras):
        staff = runtime.enroller.enrol(name=STAFF_NAME, tier=STAFF_TIER, role="staff",
                                       consent="演示：本人同意（示例记录）",
                                       photo=(photos / STAFF_ENROL_PHOTO).read_bytes())
        print(t("demo_staff_enrolled", lang, name=staff.name, photo=STAFF_ENROL_PHOTO), flush=True)


def receive_from_console(runtime: EdgeRuntime, lang: str) -> list[str]:
    """Start the box: its sync catches up with the console before the cameras start. Returns the names of the
    people the console sent (printed), so the VIP is in the gallery before he walks in."""
    runtime.start()
    assert runtime.sync is not None
    synced = runtime.sync.applier.synced_ids()
    people = sorted((p for p in runtime.store.list_persons() if p.id in synced), key=lambda p: (p.role, p.name))
    for person in people:
        print(t("demo_synced", lang, name=person.name, role=person.role, version=runtime.sync.applier.version),
              flush=True)
    if not any(p.role == "vip" for p in people):
        print(t("demo_sync_none", lang, error=runtime.sync.status().error or ""), flush=True)
    return [p.name for p in people]


def run_demo(*, lang: str, workdir: Path, port: int, keep_serving: bool, console_url: str | None = None,
             code: str | None = None, join_console: JoinConsole | None = None) -> int:
    from alerts.server import ServerThread
    from edge.api.app import create_app
    from edge.runtime import EdgeRuntime

    stop_on_sigterm()
    # No throw-away key: without $SMARTBRANCH_DATA_KEY the fresh data folder gets its own key file, so that
    # `smartbranch edge run` on the demo config afterwards opens the same data (a key that is not kept
    # would make the box refuse it).
    with_console = console_url is not None and code is not None and join_console is not None
    config, token, photos = prepare(workdir, port, lang, sync=with_console)
    if with_console:
        assert console_url is not None and code is not None and join_console is not None
        joined = join_console(workdir / "smartbranch.yaml", console_url, code, lang)
        if joined is None:
            return 2
        config = joined
    runtime = EdgeRuntime(config)
    runtime.hub.add_listener(alert_printer(lang))
    if with_console:
        receive_from_console(runtime, lang)
    else:
        enrol_locally(runtime, photos, lang)
    has_counter = any(c.role == "counter" for c in config.cameras)
    server = ServerThread(create_app(runtime), config.server.host, config.server.port)
    server.start()
    print_terminal_link(lang, config.server.host, server.port, token)
    try:
        while not runtime.cameras_done:
            time.sleep(0.2)
        print(t("demo_done", lang, count=runtime.hub.published), flush=True)
        if keep_serving:
            print(t("demo_serve", lang), flush=True)
            while True:
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        runtime.stop()  # closes the clip encoders: every clip is on disk after this
    if has_counter:
        clips = runtime.review.list_clips()
        print(t("demo_clips", lang, count=len(clips), folder=config.clips.resolve_dir(config.paths.data_dir)),
              flush=True)
    return 0
