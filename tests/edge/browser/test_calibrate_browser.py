"""The calibration page in a real browser (Debian's chromium) against a live edge box whose counter camera runs on
real images: a customer (cut out of a real photo by the real person detector) stands in the lobby, and the real
counter pipeline (NanoDet, dlib, tracker, attendance) processes every frame.

Branch IT draws a waiting zone by clicking on the camera's picture and saves it: the running camera takes it without
a restart, and the customer standing inside now counts as waiting (a customer_unattended card follows). Four floor
points give their reprojection errors; a collinear set is refused with the reason on screen; the previous version
comes back with one click.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e .[dev])")

from playwright.sync_api import BrowserContext, Page, expect

from alerts.server import ServerThread
from calibration.lens import LensModel, render_checkerboard, synthetic_poses
from edge.api.app import create_app
from edge.config import load_config
from edge.demo.counter_scene import CounterScene, Role, load_cast
from edge.runtime import EdgeRuntime
from tests.edge.browser.conftest import shot
from tests.edge.conftest import IT_TOKEN, config_dict
from tests.waiting import free_port, wait_for
from vision.engines.base import FaceEngine
from vision.engines.nanodet import NanoDetPersonDetector
from vision.engines.owner import EnginePool

pytestmark = pytest.mark.slow

Contexts = Callable[..., BrowserContext]
FPS = 5.0
UNATTENDED_S = 1.5
# The waiting zone branch IT clicks (image pixels of the 1280x720 frame), around the customer's feet at x = 1000;
# the last two clicks land near the frame's right and bottom edges and snap onto them.
CLICKS = [(760, 560), (1275, 560), (1275, 716), (760, 716)]
DRAWN = [(760.0, 560.0), (1280.0, 560.0), (1280.0, 720.0), (760.0, 720.0)]


class Box:
    def __init__(self, runtime: EdgeRuntime, server: ServerThread, path: Path) -> None:
        self.runtime, self.server, self.path = runtime, server, path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def unattended(self) -> list[Any]:
        alerts = self.runtime.hub.replay(0, None, 500).alerts
        return [a for a in alerts if getattr(a.payload, "kind", None) == "customer_unattended"]


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, photos_dir: Path, engine: FaceEngine,
        person_detector: NanoDetPersonDetector, engine_pool: EnginePool) -> Iterator[Box]:
    """A box with one counter camera (no zones yet) looping a real customer standing at x = 1000."""
    root = tmp_path_factory.mktemp("calibrate")
    cast = load_cast(photos_dir, person_detector, engine)
    scene = CounterScene([Role(cast["customer"], ((0, 1000), (4, 1000)))], 4.0, fps=FPS)
    (root / "frames").mkdir()
    for frame, _ in scene.frames():
        cv2.imwrite(str(root / "frames" / f"frame_{frame.index:05d}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    camera = {"id": "counter-1", "name": "1号柜台", "role": "counter",
              "source": {"url": f"dir:{root / 'frames'}", "fps": FPS, "loop": True}}
    cfg = config_dict(root / "data", [camera], counter={"unattended_after_s": UNATTENDED_S,
                                                        "unattended_grace_s": 1.0})
    cfg["server"] = {"host": "127.0.0.1", "port": free_port()}
    path = root / "smartbranch.yaml"
    path.write_text("# 网点边缘盒配置\n" + yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    runtime = EdgeRuntime(load_config(path), engine=engine_pool)
    server = ServerThread(create_app(runtime, config_path=path), "127.0.0.1", cfg["server"]["port"])
    server.start()
    yield Box(runtime, server, path)
    server.stop()
    runtime.stop()


def open_page(contexts: Contexts, box: Box, tab: str) -> Page:
    page = contexts().new_page()
    page.goto(f"{box.url}/calibrate?token={IT_TOKEN}&tab={tab}")
    expect(page.locator(f"#tab-{tab}")).to_be_visible()
    return page


def click_image(page: Page, canvas: str, x: float, y: float) -> None:
    """A click on the canvas at image pixel (x, y), wherever the page has laid the picture out."""
    handle = page.locator(canvas)
    box = handle.bounding_box()
    assert box is not None
    width, height = page.eval_on_selector(canvas, "c => [c.width, c.height]")
    page.mouse.click(box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height)


def close(points: list[tuple[float, float]], expected: list[tuple[float, float]], px: float = 2.0) -> bool:
    """The same polygon within ``px`` (a click lands on whole CSS pixels of a scaled picture)."""
    return len(points) == len(expected) and all(abs(a - c) <= px and abs(b - d) <= px
                                                for (a, b), (c, d) in zip(points, expected, strict=True))


def counter_camera(box: Box) -> Any:
    return next(c for c in box.runtime.config.cameras if c.id == "counter-1")


def test_a_waiting_zone_drawn_and_saved_makes_the_customer_inside_count_as_waiting(contexts: Contexts,
                                                                                    box: Box) -> None:
    # Given the counter camera running on the customer for longer than the unattended limit, without waiting zones
    worker = box.runtime.workers[0]
    wait_for(lambda: worker.processed >= int(FPS * (UNATTENDED_S + 1.5)), 120, "frames before the zone")
    assert box.unattended() == []
    # When branch IT opens the zones tab, picks 等候区, clicks four corners on the picture and saves
    page = open_page(contexts, box, "zones")
    expect(page.locator("#tab-zones img.snap")).to_have_js_property("complete", True)
    page.wait_for_function("document.querySelector('#zone-canvas').width === 1280")
    page.select_option("#zone-kind", "waiting")
    expect(page.locator("#zone-name")).to_have_value("等候区")
    for x, y in CLICKS:
        click_image(page, "#zone-canvas", x, y)
    shot(page, "calibrate-zone-drawn")
    page.click("#zone-save")
    # Then the page says it is saved as version 2 and applied to the camera
    expect(page.locator("#status")).to_contain_text("已保存为版本 2")
    expect(page.locator("#status")).to_contain_text("counter-1")
    # and the file and the running camera hold exactly the drawn polygon (the edge clicks snapped to the edges)
    [zone] = load_config(box.path).cameras[0].counter.waiting_zones  # type: ignore[union-attr]
    assert zone.name == "等候区" and close(zone.points, DRAWN)
    assert counter_camera(box).counter.waiting_zones[0].points == zone.points
    # and the customer standing inside is now waiting: a customer_unattended card for 等候区 arrives
    wait_for(lambda: box.unattended(), 120, "the customer counted as waiting")
    assert box.unattended()[0].payload.zone == "等候区"


def test_four_floor_points_show_their_reprojection_error(contexts: Contexts, box: Box) -> None:
    page = open_page(contexts, box, "floor")
    page.wait_for_function("document.querySelector('#floor-canvas').width === 1280")
    # When four floor marks are clicked and their floor coordinates typed
    marks = [((200, 650), ("0", "0")), ((1000, 650), ("4", "0")), ((300, 450), ("0.5", "3")),
             ((900, 450), ("3.5", "3"))]
    for (x, y), _ in marks:
        click_image(page, "#floor-canvas", x, y)
    for n, (_, (fx, fy)) in enumerate(marks, 1):
        page.fill(f"input[aria-label='X{n}']", fx)
        page.fill(f"input[aria-label='Y{n}']", fy)
    page.click("#floor-fit")
    # Then each point shows its reprojection error in metres and pixels, and the RMS is shown
    expect(page.locator("#floor-rms")).to_contain_text("均方根误差")
    errors = page.locator("#floor-table tbody td.err-m").all_text_contents()
    assert len(errors) == 4 and all(float(e) < 0.01 for e in errors)
    assert len([e for e in page.locator("#floor-table tbody td.err-px").all_text_contents() if e]) == 4
    expect(page.locator("#floor-error")).to_have_text("")
    shot(page, "calibrate-floor-fit")


def test_a_collinear_floor_set_is_refused_with_the_reason_on_screen(contexts: Contexts, box: Box, watch: Any) -> None:
    watch.allow(r"422.*floor/fit|floor/fit -> 422")  # the refusal this test provokes
    before = box.path.read_text(encoding="utf-8")
    page = open_page(contexts, box, "floor")
    page.wait_for_function("document.querySelector('#floor-canvas').width === 1280")
    page.click("#floor-clear")
    # When four points along one line are entered
    for n, x in enumerate((100, 400, 700, 1000), 1):
        click_image(page, "#floor-canvas", x, 600)
        page.fill(f"input[aria-label='X{n}']", str(n))
        page.fill(f"input[aria-label='Y{n}']", "0")
    page.click("#floor-fit")
    # Then the page refuses with the reason, shows no errors, and nothing was saved
    expect(page.locator("#floor-error")).to_contain_text("无法标定")
    expect(page.locator("#floor-error")).to_contain_text("collinear")
    assert page.locator("#floor-table tbody td.err-m").all_text_contents() == ["", "", "", ""]
    assert box.path.read_text(encoding="utf-8") == before
    shot(page, "calibrate-floor-refused")


def test_rollback_to_the_previous_version_in_one_click(contexts: Contexts, box: Box) -> None:
    # Given a save after the zone (the camera renamed), so the previous version is the one with the zone
    page = open_page(contexts, box, "cameras")
    page.locator(".card[data-camera='counter-1'] button", has_text="编辑").click()
    page.fill("#camera-form input[name='name']", "一号柜台")
    page.click("#camera-save")
    expect(page.locator("#status")).to_contain_text("已保存为版本")
    assert counter_camera(box).name == "一号柜台"
    # When branch IT opens the versions and rolls back to the previous one
    page.click("button[data-tab='versions']")
    expect(page.locator("#versions-table tr.current")).to_have_count(1)
    current = int(page.locator("#versions-table tr.current").get_attribute("data-version") or 0)
    page.click("#rollback-previous")
    # Then the page shows the new version, the file is the previous version again and the camera runs with it
    expect(page.locator("#status")).to_contain_text(f"现为版本 {current + 1}")
    expect(page.locator(f"#versions-table tr.current[data-version='{current + 1}']")).to_have_count(1)
    assert counter_camera(box).name == "1号柜台"
    assert close(counter_camera(box).counter.waiting_zones[0].points, DRAWN)
    assert load_config(box.path).cameras[0].name == "1号柜台"
    shot(page, "calibrate-rolled-back")


def test_lens_from_uploaded_checkerboards_shows_rms_and_an_undistorted_preview_and_saves(
        contexts: Contexts, box: Box, tmp_path: Path) -> None:
    # Given six snapshots of a 9x6 board rendered through a known lens (same aspect as the camera's frames)
    truth = LensModel(fx=560.0, fy=556.0, cx=321.0, cy=179.0, dist=(-0.18, 0.04, 0.0, 0.0, 0.0),
                      image_size=(640, 360))
    files = []
    for n, (rvec, tvec) in enumerate(synthetic_poses(truth, 6, seed=5)):
        image, _ = render_checkerboard(truth, rvec, tvec, seed=n)
        files.append(tmp_path / f"board{n}.png")
        cv2.imwrite(str(files[-1]), image)
    # When branch IT uploads them on the lens tab and calibrates
    page = open_page(contexts, box, "lens")
    page.set_input_files("#lens-files", [str(f) for f in files])
    expect(page.locator("#lens-shots figure")).to_have_count(6)
    page.click("#lens-run")
    # Then the RMS error, the board found in every snapshot and an undistorted preview are shown
    expect(page.locator("#lens-result")).to_contain_text("重投影均方根误差", timeout=60_000)
    expect(page.locator("#lens-result")).to_contain_text("6/6")
    page.wait_for_function("document.querySelector('#lens-after').naturalWidth > 0")
    shot(page, "calibrate-lens")
    # and saving writes the lens to the camera, which runs with it
    page.click("#lens-save")
    expect(page.locator("#status")).to_contain_text("已保存为版本")
    lens = counter_camera(box).lens
    assert lens is not None and abs(lens.fx - 560.0) / 560.0 < 0.01 and abs(lens.dist[0] + 0.18) < 0.02


def test_cameras_tab_tests_a_connection_adds_a_camera_and_disables_it(contexts: Contexts, box: Box) -> None:
    frames = box.runtime.config.cameras[0].source.url
    page = open_page(contexts, box, "cameras")
    # Given the running counter camera's card with its health and its picture
    card = page.locator(".card[data-camera='counter-1']")
    expect(card).to_contain_text("正常")
    card.locator("img").wait_for()
    page.wait_for_function("document.querySelector(\".card[data-camera='counter-1'] img\").naturalWidth > 0")
    # When a missing folder is tested, the reason is shown; then the frames folder connects with its picture
    page.fill("#camera-form input[name='id']", "hall")
    page.fill("#camera-form input[name='name']", "大堂")
    page.select_option("#camera-form select[name='role']", "lobby")
    page.fill("#camera-form input[name='url']", "dir:/nonexistent/frames")
    page.click("#test-connection")
    expect(page.locator("#connection-result")).to_contain_text("连接失败")
    page.fill("#camera-form input[name='url']", frames)
    page.click("#test-connection")
    expect(page.locator("#connection-result")).to_contain_text("连接成功", timeout=30_000)
    expect(page.locator("#connection-result img")).to_have_count(1)
    # and saving adds the camera, whose worker starts without a restart
    page.click("#camera-save")
    expect(page.locator(".card[data-camera='hall']")).to_be_visible()
    assert "hall" in [w.pipeline.camera.id for w in box.runtime.workers]
    hall = next(w for w in box.runtime.workers if w.pipeline.camera.id == "hall")
    wait_for(lambda: hall.processed > 0, 120, "the new camera's first frame")
    shot(page, "calibrate-cameras")
    # When it is disabled, its worker stops and the card says so
    page.locator(".card[data-camera='hall'] button", has_text="停用").click()
    expect(page.locator(".card[data-camera='hall']")).to_contain_text("已停用")
    assert "hall" not in [w.pipeline.camera.id for w in box.runtime.workers] and hall.done
    assert next(c for c in load_config(box.path).cameras if c.id == "hall").enabled is False


def test_a_vertex_snaps_to_another_zones_vertex_and_can_be_dragged(contexts: Contexts, box: Box) -> None:
    page = open_page(contexts, box, "zones")
    page.wait_for_function("document.querySelector('#zone-canvas').width === 1280")
    page.select_option("#zone-kind", "counter")
    # When a vertex is clicked 5 px from the waiting zone's corner (760, 560), and two more are added
    click_image(page, "#zone-canvas", 765, 565)
    click_image(page, "#zone-canvas", 600, 300)
    click_image(page, "#zone-canvas", 300, 400)
    # and the last one is dragged to (250, 450)
    canvas = page.locator("#zone-canvas").bounding_box()
    assert canvas is not None
    k = canvas["width"] / 1280

    def at(x: float, y: float) -> tuple[float, float]:
        return canvas["x"] + x * k, canvas["y"] + y * k

    page.mouse.move(*at(300, 400))
    page.mouse.down()
    page.mouse.move(*at(275, 425), steps=3)
    page.mouse.move(*at(250, 450), steps=3)
    page.mouse.up()
    page.click("#zone-save")
    expect(page.locator("#status")).to_contain_text("已保存为版本")
    # Then the first vertex sits exactly on the other zone's corner and the dragged one where it was dropped
    counter = counter_camera(box).counter
    [zone] = counter.counter_zones
    assert zone.points[0] == counter.waiting_zones[0].points[0]  # exactly, where the click was 5 px off
    assert close(zone.points, [(760.0, 560.0), (600.0, 300.0), (250.0, 450.0)])
    shot(page, "calibrate-zone-snap-drag")
