"""``smartbranch calibrate lens|floor`` run as a site engineer would: on rendered checkerboard snapshots and a
CSV of floor marks, printing the result or saving it into the config as a new version; bad input refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from calibration.lens import LensModel, render_checkerboard, synthetic_poses
from edge.cli.main import main
from edge.config import load_config
from tests.edge.conftest import config_dict

SIZE = (960, 540)
TRUTH = LensModel(fx=720.0, fy=725.0, cx=478.0, cy=272.0, dist=(-0.25, 0.07, 0.0, 0.0, 0.0), image_size=SIZE)
TRUE_H = np.array([[120.0, -35.0, 420.0], [8.0, 40.0, 180.0], [0.01, -0.05, 1.0]])  # floor m -> image px
FLOOR = [(0.0, 0.0), (3.0, 0.0), (3.0, 4.0), (0.0, 4.0), (1.5, 2.0), (0.5, 3.0)]


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("snapshots")
    for i, (rvec, tvec) in enumerate(synthetic_poses(TRUTH, 8, seed=11)):
        image, _ = render_checkerboard(TRUTH, rvec, tvec, seed=i)
        cv2.imwrite(str(folder / f"board{i}.png"), image)
    cv2.imwrite(str(folder / "wall.jpg"), np.full((SIZE[1], SIZE[0], 3), 140, np.uint8))  # no board in it
    return folder


def write_config(tmp_path: Path) -> Path:
    cameras: list[dict[str, Any]] = [
        {"id": "door", "role": "entrance", "source": {"url": "usb:0"}},
        {"id": "counter1", "role": "counter", "source": {"url": "usb:1"}},
    ]
    path = tmp_path / "smartbranch.yaml"
    path.write_text("# branch config, edited by hand\n" + yaml.safe_dump(config_dict(tmp_path / "data", cameras),
                                                                         allow_unicode=True), encoding="utf-8")
    return path


def points_csv(tmp_path: Path, floor: list[tuple[float, float]], moved: dict[int, tuple[float, float]]) -> Path:
    image = cv2.perspectiveTransform(np.asarray(floor, np.float64).reshape(-1, 1, 2), TRUE_H).reshape(-1, 2)
    rows = ["x_px,y_px,x_m,y_m"]
    for i, ((x, y), (fx, fy)) in enumerate(zip(image, floor, strict=True)):
        dx, dy = moved.get(i, (0.0, 0.0))
        rows.append(f"{x + dx:.2f},{y + dy:.2f},{fx},{fy}")
    path = tmp_path / "points.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_lens_on_a_folder_of_snapshots_prints_the_lens_and_the_yaml_to_paste(
        snapshots: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lens.json"
    preview = tmp_path / "preview.jpg"
    rc = main(["--lang", "en", "calibrate", "lens", "--images", str(snapshots), "--board", "9x6", "--square-mm", "25",
               "--json", str(out), "--preview", str(preview)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "8/9 images usable" in printed and "wall.jpg: no 9x6 board found" in printed
    lens = json.loads(out.read_text(encoding="utf-8"))["lens"]
    assert abs(lens["fx"] - TRUTH.fx) / TRUTH.fx < 0.01 and abs(lens["dist"][0] - TRUTH.dist[0]) < 0.02
    pasted = yaml.safe_load(printed.split("Add this to the camera's entry in the config:")[1].split("Result")[0])
    assert pasted["lens"]["fx"] == pytest.approx(lens["fx"]) and pasted["lens"]["image_size"] == list(SIZE)
    written = cv2.imread(str(preview))
    assert written is not None and written.shape == (SIZE[1], SIZE[0], 3)


def test_lens_with_a_config_saves_it_into_the_camera_as_a_new_version(
        snapshots: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    rc = main(["calibrate", "lens", "--images", str(snapshots), "--config", str(config), "--camera", "door"])
    printed = capsys.readouterr().out
    assert rc == 0 and "镜头参数" in printed  # Chinese by default
    door = next(c for c in load_config(config).cameras if c.id == "door")
    assert door.lens is not None and abs(door.lens.fx - TRUTH.fx) / TRUTH.fx < 0.01
    assert config.read_text(encoding="utf-8").startswith("# branch config, edited by hand")
    assert len(list((tmp_path / "smartbranch.yaml.versions").glob("*.yaml"))) == 2  # as it was, and the save


def test_lens_refuses_snapshots_of_different_sizes_and_writes_nothing(
        snapshots: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("board0.png", "board1.png", "board2.png"):
        (folder / name).write_bytes((snapshots / name).read_bytes())
    small = cv2.resize(cv2.imread(str(snapshots / "board3.png")), (640, 360))
    cv2.imwrite(str(folder / "board3.png"), small)
    config = write_config(tmp_path)
    before = config.read_text(encoding="utf-8")
    rc = main(["--lang", "en", "calibrate", "lens", "--images", str(folder), "--config", str(config),
               "--camera", "door"])
    err = capsys.readouterr().err
    assert rc == 2 and "board3.png is 640x360 but board0.png is 960x540" in err
    assert config.read_text(encoding="utf-8") == before


def test_lens_refuses_too_few_boards(snapshots: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("board0.png", "board1.png", "wall.jpg"):
        (folder / name).write_bytes((snapshots / name).read_bytes())
    rc = main(["--lang", "en", "calibrate", "lens", "--images", str(folder)])
    assert rc == 2 and "at least 3 images" in capsys.readouterr().err


def test_floor_prints_each_points_error_sets_a_misclick_aside_and_saves_the_rest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    points = points_csv(tmp_path, FLOOR, moved={4: (90.0, -60.0)})
    rc = main(["--lang", "en", "calibrate", "floor", "--camera", "counter1", "--points", str(points),
               "--config", str(config)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "Points 5 do not fit the same plane" in printed
    rows = [line for line in printed.splitlines() if line[:2].strip().isdigit()]
    assert len(rows) == 6 and rows[4].endswith("no") and all(r.endswith("yes") for r in rows[:4])
    camera = next(c for c in load_config(config).cameras if c.id == "counter1")
    assert camera.counter is not None and camera.counter.floor is not None
    assert len(camera.counter.floor.image_points) == 5
    floor_m = camera.counter.floor.homography().to_floor(camera.counter.floor.image_points)
    np.testing.assert_allclose(floor_m, [p for i, p in enumerate(FLOOR) if i != 4], atol=0.01)


@pytest.mark.parametrize(("floor", "camera", "message"), [
    ([(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (3.0, 0.0), (0.0, 2.0)], "counter1", "points 1, 2, 3, 4 lie on one line"),
    (FLOOR, "door", "Camera door has role entrance"),
    (FLOOR, "nope", "The config has no camera nope"),
])
def test_floor_refuses_a_degenerate_set_or_a_wrong_camera_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], floor: list[tuple[float, float]], camera: str,
        message: str) -> None:
    config = write_config(tmp_path)
    before = config.read_text(encoding="utf-8")
    rc = main(["--lang", "en", "calibrate", "floor", "--camera", camera, "--points",
               str(points_csv(tmp_path, floor, {})), "--config", str(config)])
    assert rc == 2 and message in capsys.readouterr().err
    assert config.read_text(encoding="utf-8") == before


def test_floor_refuses_a_malformed_points_file_naming_the_line(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "points.csv"
    path.write_text("x_px,y_px,x_m,y_m\n10,20,0,0\n30,forty,1,0\n", encoding="utf-8")
    rc = main(["calibrate", "floor", "--camera", "counter1", "--points", str(path)])
    assert rc == 2 and "第 3 行" in capsys.readouterr().err
