"""The calibration page's live view (calibrate_live.js) in a real browser (Debian's chromium) against a live edge
box whose counter camera plays real images: the MJPEG preview shows the camera with its overlays, leaving the tab
closes the stream, and the face-size check names the minimum and what to change, in Chinese."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import pytest

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e .[dev])")

from playwright.sync_api import BrowserContext, expect

from alerts.server import ServerThread
from edge.api.app import create_app
from edge.config import EdgeConfig
from edge.demo.counter_scene import CounterScene, Role, load_cast, scene_camera
from edge.runtime import EdgeRuntime
from tests.edge.browser.conftest import shot
from tests.edge.conftest import IT_TOKEN, config_dict
from tests.waiting import free_port, wait_for
from vision.engines.base import FaceEngine
from vision.engines.nanodet import NanoDetPersonDetector
from vision.engines.owner import EnginePool

pytestmark = pytest.mark.slow

FPS = 5.0


@pytest.fixture(scope="module")
def live_box(tmp_path_factory: pytest.TempPathFactory, photos_dir: Path, engine: FaceEngine,
             person_detector: NanoDetPersonDetector, engine_pool: EnginePool) -> Iterator[tuple[EdgeRuntime, str]]:
    root = tmp_path_factory.mktemp("live")
    cast = load_cast(photos_dir, person_detector, engine)
    scene = CounterScene([Role(cast["clerk"], ((0, 180), (3, 180))), Role(cast["customer"], ((0, 1000), (3, 1000)))],
                         3.0, fps=FPS)
    (root / "frames").mkdir()
    for frame, _ in scene.frames():
        cv2.imwrite(str(root / "frames" / f"frame_{frame.index:05d}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    camera = scene_camera(f"dir:{root / 'frames'}", fps=FPS)
    camera["source"] = {"url": f"dir:{root / 'frames'}", "fps": FPS, "loop": True}
    port = free_port()
    cfg = config_dict(root / "data", [camera], clips={"enabled": False})
    cfg["server"] = {"host": "127.0.0.1", "port": port}
    runtime = EdgeRuntime(EdgeConfig.model_validate(cfg), engine=engine_pool)
    server = ServerThread(create_app(runtime), "127.0.0.1", port)
    server.start()
    yield runtime, f"http://127.0.0.1:{port}"
    server.stop()
    runtime.stop()


def test_the_live_tab_streams_the_camera_and_the_face_check_explains_sizes(
        contexts: Callable[..., BrowserContext], live_box: tuple[EdgeRuntime, str]) -> None:
    runtime, url = live_box
    [worker] = runtime.workers
    page = contexts().new_page()
    # given branch IT on the calibration page's live tab
    page.goto(f"{url}/calibrate?token={IT_TOKEN}&tab=live")
    live = page.locator(".cl-live")
    expect(live).to_be_visible()
    expect(page.locator(".cl-legend")).to_contain_text("员工")
    # then the camera's preview plays: the picture has the camera's size and the tap is being watched
    image = page.locator(".cl-live img.cl-image")
    wait_for(lambda: page.eval_on_selector(".cl-live img.cl-image", "i => i.naturalWidth") == 960, 60,
             "a preview frame in the page (960 px wide: preview.max_width)")
    assert "preview.mjpg" in (image.get_attribute("src") or "")
    wait_for(lambda: worker.tap.watched, 10, "the camera's tap to be watched")
    shot(page, "calibrate-live-preview")
    # when the face-size check is asked for, then it names the minimum face size and what it found, in Chinese
    page.locator(".cl-live button[data-mode=faces]").click()
    expect(page.locator(".cl-live .cl-status")).to_contain_text("最小人脸尺寸 80 px", timeout=60_000)
    expect(page.locator(".cl-live .cl-suggestion")).not_to_be_empty()
    assert "faces.jpg" in (image.get_attribute("src") or "")
    # and with the preview closed (another view shown), nobody watches the camera any more: overlays stop
    wait_for(lambda: not worker.tap.watched, 10, "the tap to be left unwatched")
