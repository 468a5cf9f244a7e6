"""The worker's tap: the newest processed frame, with an overlay only while someone watches, on a real
entrance camera (dlib faces on real photos) run by the real runtime."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge.cameras.tap import Overlay
from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from vision.engines.owner import EnginePool


@pytest.fixture()
def entrance(tmp_path: Path, photos_dir: Path, make_config: Callable[..., EdgeConfig],
             engine_pool: EnginePool) -> Iterator[EdgeRuntime]:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        shutil.copy(photos_dir / "obama.jpg", frames / f"f{i}.jpg")
    camera = {"id": "door", "role": "entrance", "source": {"url": f"dir:{frames}", "fps": 4, "loop": True}}
    runtime = EdgeRuntime(make_config([camera]), engine=engine_pool)
    yield runtime
    runtime.stop()


def test_the_tap_holds_the_newest_frame_and_an_overlay_only_while_watched(entrance: EdgeRuntime) -> None:
    [worker] = entrance.workers
    # given nobody watching, when the camera processes frames
    entrance.start()
    deadline = time.monotonic() + 60
    while worker.processed < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker.processed >= 2
    # then the tap holds the newest processed frame, without an overlay (it cost nothing)
    first = worker.tap.newest()
    assert first is not None and first.frame.camera_id == "door"
    assert first.overlay is None
    # when someone keeps reading, then the next frames carry what the pipeline found: the face, with its track id
    watched = worker.tap.newest(after_index=first.frame.index, timeout=30)
    assert watched is not None and watched.frame.index > first.frame.index
    assert isinstance(watched.overlay, Overlay)
    [face] = watched.overlay.boxes
    assert face.label == "face" and face.track_id is not None
    x1, y1, x2, y2 = face.xyxy
    h, w = watched.frame.image.shape[:2]
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    # and a reader asking for a frame that is not there yet gets None after its wait, not an old frame
    assert worker.tap.newest(after_index=10**9, timeout=0.2) is None
