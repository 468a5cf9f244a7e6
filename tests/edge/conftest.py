"""Edge fixtures: config factory, a runtime on a tmp data dir, and a live HTTP server on a free port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from alerts.server import ServerThread
from edge.api.app import create_app
from edge.config import EdgeConfig, hash_token, load_config
from edge.demo.scene import Actor, Appearance, SceneBuilder
from edge.runtime import EdgeRuntime
from vision.engines.base import FaceEngine
from vision.engines.owner import EnginePool

ADMIN_TOKEN = "admin-token-for-tests"
LOBBY_TOKEN = "lobby-token-for-tests"
ENROLLER_TOKEN = "enroller-token-for-tests"
IT_TOKEN = "it-token-for-tests"


def config_dict(data_dir: Path, cameras: list[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "branch": {"id": "test-branch", "name": "测试网点"},
        "cameras": cameras or [],
        "server": {"host": "127.0.0.1", "port": 8000},
        "auth": {"tokens": [
            {"name": "admin", "sha256": hash_token(ADMIN_TOKEN), "roles": ["admin"]},
            {"name": "lobby-1", "sha256": hash_token(LOBBY_TOKEN), "roles": ["lobby_manager"]},
            {"name": "enroller-1", "sha256": hash_token(ENROLLER_TOKEN), "roles": ["enroller"]},
            {"name": "it-1", "sha256": hash_token(IT_TOKEN), "roles": ["branch_it"]},
        ]},
        "paths": {"data_dir": str(data_dir)},
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture()
def make_config(tmp_path: Path) -> Callable[..., EdgeConfig]:
    def make(cameras: list[dict[str, Any]] | None = None, **overrides: Any) -> EdgeConfig:
        path = tmp_path / "smartbranch.yaml"
        path.write_text(yaml.safe_dump(config_dict(tmp_path / "data", cameras, **overrides), allow_unicode=True),
                        encoding="utf-8")
        return load_config(path)
    return make


class LiveEdge:
    def __init__(self, runtime: EdgeRuntime, server: ServerThread) -> None:
        self.runtime = runtime
        self.server = server

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def ws_url(self, token: str = LOBBY_TOKEN, since: int | None = None) -> str:
        url = f"ws://127.0.0.1:{self.server.port}/ws/terminal?token={token}"
        return url if since is None else f"{url}&since={since}"


@pytest.fixture()
def live_edge(engine_pool: EnginePool) -> Iterator[Callable[..., LiveEdge]]:
    """Start an edge runtime (cameras not started) and its HTTP server on a free port."""
    started: list[LiveEdge] = []

    def start(config: EdgeConfig) -> LiveEdge:
        runtime = EdgeRuntime(config.model_copy(update={"server": config.server.model_copy(update={"port": 0})}),
                              engine=engine_pool)
        server = ServerThread(create_app(runtime, start_cameras=False), "127.0.0.1", 0)
        server.start()
        edge = LiveEdge(runtime, server)
        started.append(edge)
        return edge

    yield start
    for edge in started:
        edge.server.stop()
        edge.runtime.stop()


@pytest.fixture()
def runtime(make_config: Callable[..., EdgeConfig], engine_pool: EnginePool) -> Iterator[EdgeRuntime]:
    """An edge runtime on a fresh data dir, cameras not started."""
    rt = EdgeRuntime(make_config(), engine=engine_pool)
    yield rt
    rt.stop()


@pytest.fixture()
def client(runtime: EdgeRuntime) -> Iterator[TestClient]:
    """The app of :func:`runtime` in-process."""
    with TestClient(create_app(runtime, start_cameras=False)) as c:
        yield c


# A walk-in scene of real photos: a stranger, the VIP (another photo than the enrolled one), two strangers.
APPEARANCES = [
    Appearance(Actor("stranger-biden", "biden.jpg"), 0.3, dwell_s=1.5, side="right", lane_x=0.65),
    Appearance(Actor("vip", "obama3.jpg"), 1.5, dwell_s=2.5, lane_x=0.35),
    Appearance(Actor("stranger-t1", "t1.jpg", 1), 4.0, dwell_s=1.5, side="right", lane_x=0.6),
    Appearance(Actor("stranger-hanks", "tom_hanks.png"), 5.5, dwell_s=1.5, lane_x=0.4),
]


@pytest.fixture(scope="session")
def walk_in_video(tmp_path_factory: pytest.TempPathFactory, engine_small_faces: FaceEngine, photos_dir: Path) -> Path:
    """The walk-in scene as an 8.5 s entrance video (made once per test session)."""
    path = tmp_path_factory.mktemp("video") / "entrance.mp4"
    SceneBuilder(engine_small_faces, photos_dir).write(path, APPEARANCES, duration_s=8.5)
    return path
