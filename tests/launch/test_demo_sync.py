"""`make demo` with the console: the demo's box registers at the demo console with a one-time code made in-process,
receives the VIP and the clerk through sync before its camera starts (nobody is enrolled on the box), and greets
the VIP when a real photo of him (another photo than the enrolment one) is on its entrance camera."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
import yaml

from alerts.envelope import Alert
from console.demo import DEMO_EDGE, DemoPerson, start_console_demo
from console.tables import Edge
from edge.api.auth import new_token
from edge.cli.sync import join_console
from edge.demo.counter_demo import STAFF_ENROL_PHOTO, STAFF_NAME, STAFF_TIER
from edge.demo.run import (
    DEMO_SYNC,
    VIP_ENROL_PHOTO,
    VIP_NAME,
    VIP_TIER,
    demo_config,
    receive_from_console,
)
from edge.runtime import EdgeRuntime
from edge.sync.credentials import token_path
from vision.engines.owner import EnginePool
from vision.types import Image


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _still_video(path: Path, image: Image, frames: int = 30) -> Path:
    """Three seconds at 10 fps of one real photo: the demo's camera source kind (a file)."""
    height, width = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, (width - width % 2, height - height % 2))
    for _ in range(frames):
        writer.write(image[:height - height % 2, :width - width % 2])
    writer.release()
    return path


def test_the_demo_box_receives_the_vip_from_the_console_and_greets_him(
        tmp_path: Path, photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes],
        engine_pool: EnginePool, capsys: pytest.CaptureFixture[str]) -> None:
    # given the demo console with the demo's VIP and clerk enrolled there (as `smartbranch demo` starts it)
    people = [DemoPerson(VIP_NAME, VIP_TIER, "vip", photo_bytes(VIP_ENROL_PHOTO)),
              DemoPerson(STAFF_NAME, STAFF_TIER, "staff", photo_bytes(STAFF_ENROL_PHOTO))]
    console = start_console_demo(tmp_path / "console", port=_free_port(), people=people)
    runtime: EdgeRuntime | None = None
    try:
        # and the demo's box config, on a camera that shows another photo of the VIP
        workdir = tmp_path / "demo"
        workdir.mkdir()
        video = _still_video(workdir / "entrance.mp4", photo("obama3.jpg"))
        config_path = workdir / "smartbranch.yaml"
        config_path.write_text(yaml.safe_dump(demo_config(workdir, video, 0, new_token(), sync=DEMO_SYNC),
                                              allow_unicode=True, sort_keys=False), encoding="utf-8")
        # when the box joins with a code the console made in-process
        config = join_console(config_path, console.url.rstrip("/"), console.edge_code(), "zh")
        assert config is not None and config.sync.console_url == console.url.rstrip("/")
        assert token_path(config.paths.data_dir).exists()
        runtime = EdgeRuntime(config, engine=engine_pool)
        assert runtime.store.list_persons() == []  # nobody is enrolled on the box
        alerts: list[Alert] = []
        runtime.hub.add_listener(alerts.append)
        names = receive_from_console(runtime, "zh")
        # then both people arrived through sync before the camera started, and the box says so
        assert sorted(names) == sorted([VIP_NAME, STAFF_NAME])
        assert runtime.sync is not None
        assert runtime.sync.applier.synced_ids() == {p.id for p in runtime.store.list_persons()}
        out = capsys.readouterr().out
        assert f"已从控制台同步：{VIP_NAME}（vip）" in out and "已加入网点 演示支行（DEMO01）" in out
        # and the VIP arrival alert follows, for the person the console enrolled
        deadline = time.monotonic() + 60
        while not runtime.cameras_done and time.monotonic() < deadline:
            time.sleep(0.1)
        vip = next(p for p in runtime.store.list_persons() if p.role == "vip")
        assert [(a.type.value, a.person_id) for a in alerts] == [("vip_arrival", vip.id)]
        # and a rerun's code revokes this box at the console (the rerun wipes its data folder and token)
        console.edge_code()
        with console.ctx.db.transaction() as session:
            edges = session.query(Edge).filter(Edge.name == DEMO_EDGE).all()
            assert len(edges) == 1 and edges[0].revoked_at is not None
    finally:
        if runtime is not None:
            runtime.stop()
        console.stop()
