"""Hot apply: a camera's new settings take effect in the running service without a restart. Only the
cameras whose settings changed get a new worker; a disabled camera stops, a new one starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml

from edge.config import EdgeConfig, load_config
from edge.demo.counter_scene import CounterScene, Role, load_cast, scene_camera
from edge.runtime import EdgeRuntime
from tests.edge.conftest import config_dict
from tests.waiting import wait_for
from vision.engines.base import FaceEngine
from vision.engines.nanodet import NanoDetPersonDetector
from vision.engines.owner import EnginePool
from vision.imageio import decode_image


def frames_dir(tmp_path: Path, photo_bytes: Any) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    image = decode_image(photo_bytes("t1.jpg"))
    cv2.imwrite(str(folder / "frame_00000.jpg"), cv2.resize(image, (640, 360)))
    return folder


def src(folder: Path) -> dict[str, Any]:
    return {"url": f"dir:{folder}", "fps": 5, "loop": True}


def config(tmp_path: Path, cameras: list[dict[str, Any]]) -> EdgeConfig:
    path = tmp_path / "smartbranch.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path / "data", cameras), allow_unicode=True), encoding="utf-8")
    return load_config(path)


@pytest.fixture()
def running(tmp_path: Path, photo_bytes: Any, engine_pool: EnginePool) -> Iterator[tuple[EdgeRuntime, Path]]:
    folder = frames_dir(tmp_path, photo_bytes)
    cams: list[dict[str, Any]] = [{"id": "door", "role": "entrance", "source": src(folder)},
            {"id": "hall", "role": "lobby", "source": src(folder)}]
    runtime = EdgeRuntime(config(tmp_path, cams), engine=engine_pool)
    runtime.start()
    yield runtime, folder
    runtime.stop()


def worker_ids(runtime: EdgeRuntime) -> list[str]:
    return [w.pipeline.camera.id for w in runtime.workers]


def test_a_changed_camera_gets_a_new_worker_and_the_others_keep_theirs(running: tuple[EdgeRuntime, Path],
                                                                       tmp_path: Path) -> None:
    # Given two running cameras
    runtime, folder = running
    door, hall = runtime.workers
    wait_for(lambda: door.processed > 0 and hall.processed > 0, 30)
    # When the door camera gets a face zone
    zone = [[0.0, 0.0], [320.0, 0.0], [320.0, 360.0], [0.0, 360.0]]
    cams: list[dict[str, Any]] = [{"id": "door", "role": "entrance", "source": src(folder),
             "zone": zone},
            {"id": "hall", "role": "lobby", "source": src(folder)}]
    changed = runtime.apply_cameras(config(tmp_path, cams))
    # Then only the door camera was rebuilt: its new worker runs with the zone, the hall's is the same object
    assert changed == ["door"]
    new_door = next(w for w in runtime.workers if w.pipeline.camera.id == "door")
    assert new_door is not door and door.done
    assert new_door.pipeline.camera.zone == [tuple(p) for p in zone]
    assert any(w is hall for w in runtime.workers)
    wait_for(lambda: new_door.processed > 0, 30)
    assert runtime.config.cameras[0].zone is not None


def test_disabling_stops_a_camera_and_adding_starts_one(running: tuple[EdgeRuntime, Path], tmp_path: Path) -> None:
    runtime, folder = running
    # When the hall is disabled and a new lobby camera is added
    cams: list[dict[str, Any]] = [{"id": "door", "role": "entrance", "source": src(folder)},
            {"id": "hall", "role": "lobby", "enabled": False,
             "source": src(folder)},
            {"id": "side", "role": "lobby", "source": src(folder)}]
    old_hall = next(w for w in runtime.workers if w.pipeline.camera.id == "hall")
    changed = runtime.apply_cameras(config(tmp_path, cams))
    # Then the hall's worker stopped and is gone, the new camera runs, and health lists what runs
    assert sorted(changed) == ["hall", "side"]
    assert old_hall.done
    assert worker_ids(runtime) == ["door", "side"]
    side = runtime.workers[1]
    wait_for(lambda: side.processed > 0, 30)
    assert [s.camera_id for s in runtime.camera_status()] == ["door", "side"]


def test_nothing_changed_rebuilds_nothing(running: tuple[EdgeRuntime, Path]) -> None:
    runtime, _ = running
    before = list(runtime.workers)
    assert runtime.apply_cameras(runtime.config) == []
    assert all(a is b for a, b in zip(before, runtime.workers, strict=True))


@pytest.mark.slow
def test_a_service_open_when_its_counter_camera_changes_is_closed_not_left_open(
        tmp_path: Path, photos_dir: Path, engine: FaceEngine, person_detector: NanoDetPersonDetector,
        engine_pool: EnginePool) -> None:
    # Given a counter camera on real images: a clerk in the staff zone next to a waiting customer, looping
    cast = load_cast(photos_dir, person_detector, engine)
    scene = CounterScene([Role(cast["clerk"], ((0, 720), (4, 720))), Role(cast["customer"], ((0, 1000), (4, 1000)))],
                         4.0, fps=5.0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for frame, _ in scene.frames():
        cv2.imwrite(str(folder / f"frame_{frame.index:05d}.jpg"), frame.image)
    camera = scene_camera(f"dir:{folder}", fps=5.0)
    camera["source"]["loop"] = True  # type: ignore[index]
    camera["counter"]["staff_zone"] = [[600, 0], [840, 0], [840, 720], [600, 720]]  # type: ignore[index]
    path = tmp_path / "smartbranch.yaml"
    raw = config_dict(tmp_path / "data", [camera], counter={
        "zone_dwell_s": 0.5, "interaction": {"max_distance_m": 1.6, "start_after_s": 1.0, "end_after_s": 2.0}})
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    runtime = EdgeRuntime(load_config(path), engine=engine_pool)
    runtime.start()
    try:
        wait_for(lambda: runtime.review.list_interactions(camera_id="counter-1"), 120, "a service to start")
        [open_one] = runtime.review.list_interactions(camera_id="counter-1")
        assert open_one.ended_at is None
        # When branch IT changes the camera's waiting zone while the service is open
        changed = load_config(path).cameras[0].model_copy(update={"name": "柜台一"})
        runtime.apply_cameras(load_config(path).model_copy(update={"cameras": [changed]}))
        # Then the old pipeline closed that service (it does not stay open until the next restart)
        closed = runtime.review.get_interaction(open_one.participants.interaction_id)
        assert closed is not None and closed.ended_at is not None
    finally:
        runtime.stop()
