"""The calibration API on a real runtime: saves are validated, versioned, applied and audited; the floor fit shows
each point's error and refuses degenerate sets with the reason; the lens is calibrated from uploaded rendered
checkerboards; only branch_it and admin may use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml
from fastapi.testclient import TestClient

from calibration.lens import LensModel, render_checkerboard, synthetic_poses
from edge.api.app import create_app
from edge.config import load_config
from edge.runtime import EdgeRuntime
from tests.edge.conftest import ADMIN_TOKEN, IT_TOKEN, LOBBY_TOKEN, config_dict
from vision.engines.owner import EnginePool

CAMERA: dict[str, Any] = {"id": "door", "name": "正门", "role": "entrance", "source": {"url": "dir:frames"}}
ZONE = [[100.0, 100.0], [500.0, 100.0], [500.0, 400.0], [100.0, 400.0]]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def box(tmp_path: Path, engine_pool: EnginePool) -> Iterator[tuple[TestClient, EdgeRuntime, Path]]:
    (tmp_path / "frames").mkdir()
    path = tmp_path / "smartbranch.yaml"
    cfg = config_dict(tmp_path / "data", [{**CAMERA, "source": {"url": f"dir:{tmp_path / 'frames'}"}}])
    path.write_text("# the branch's box\n" + yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    runtime = EdgeRuntime(load_config(path), engine=engine_pool)
    with TestClient(create_app(runtime, start_cameras=False, config_path=path)) as client:
        yield client, runtime, path
    runtime.stop()


def camera_entry(client: TestClient, camera_id: str) -> dict[str, Any]:
    cams = client.get("/api/calibrate/cameras", headers=auth(IT_TOKEN)).json()
    return dict(next(c["config"] for c in cams if c["id"] == camera_id))


@pytest.mark.parametrize(("token", "status"), [(None, 401), (LOBBY_TOKEN, 403), (IT_TOKEN, 200), (ADMIN_TOKEN, 200)])
def test_only_branch_it_and_admin_may_read_and_save(box: tuple[TestClient, EdgeRuntime, Path], token: str | None,
                                                    status: int) -> None:
    client, _, path = box
    before = path.read_text(encoding="utf-8")
    headers = auth(token) if token else {}
    assert client.get("/api/calibrate/cameras", headers=headers).status_code == status
    put = client.put("/api/calibrate/cameras/door", headers=headers, json={"camera": {**CAMERA, "zone": ZONE}})
    assert put.status_code == status
    if status != 200:
        assert path.read_text(encoding="utf-8") == before


def test_a_saved_zone_is_a_version_applied_to_the_camera_and_audited(
        box: tuple[TestClient, EdgeRuntime, Path]) -> None:
    client, runtime, path = box
    # Given the door camera as the page reads it
    entry = camera_entry(client, "door")
    # When branch IT saves a face zone on it
    resp = client.put("/api/calibrate/cameras/door", headers=auth(IT_TOKEN),
                      json={"camera": {**entry, "zone": ZONE}, "summary": "人脸区域"})
    # Then the file holds it (with its comment), the running config uses it, and it is version 2
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["version"] == 2 and body["changed"] == ["door"]
    assert path.read_text(encoding="utf-8").startswith("# the branch's box\n")
    assert load_config(path).cameras[0].zone == [tuple(p) for p in ZONE]
    assert runtime.config.cameras[0].zone == [tuple(p) for p in ZONE]
    versions = client.get("/api/calibrate/versions", headers=auth(IT_TOKEN)).json()
    assert [(v["version"], v["user"], v["current"]) for v in versions] == [(2, "it-1", True), (1, "", False)]
    assert "人脸区域" in versions[0]["summary"]
    # and the audit log has who saved it and the diff
    [row] = [a for a in runtime.review.list_audit() if a.action == "calibration_save"]
    assert row.actor == "it-1" and row.outcome == "saved" and "+  zone:" in row.detail


def test_a_bad_zone_is_refused_with_the_reason_and_nothing_is_written(
        box: tuple[TestClient, EdgeRuntime, Path]) -> None:
    client, runtime, path = box
    before = path.read_text(encoding="utf-8")
    resp = client.put("/api/calibrate/cameras/door", headers=auth(IT_TOKEN),
                      json={"camera": {**CAMERA, "zone": [[0, 0], [10, 10]]}})
    assert resp.status_code == 422
    assert resp.json()["detail"]["code"] == "bad_camera" and "zone" in resp.json()["detail"]["message"]
    assert path.read_text(encoding="utf-8") == before
    assert runtime.config.cameras[0].zone is None


def test_rollback_returns_to_the_previous_version_and_applies_it(box: tuple[TestClient, EdgeRuntime, Path]) -> None:
    client, runtime, path = box
    original = path.read_text(encoding="utf-8")
    client.put("/api/calibrate/cameras/door", headers=auth(IT_TOKEN), json={"camera": {**CAMERA, "zone": ZONE}})
    resp = client.post("/api/calibrate/versions/1/rollback", headers=auth(IT_TOKEN))
    assert resp.status_code == 200, resp.text
    assert resp.json()["version"] == 3 and resp.json()["changed"] == ["door"]
    assert path.read_text(encoding="utf-8") == original
    assert runtime.config.cameras[0].zone is None
    assert client.post("/api/calibrate/versions/99/rollback", headers=auth(IT_TOKEN)).status_code == 404


def test_adding_a_camera_starts_its_worker_and_a_duplicate_id_is_refused(
        box: tuple[TestClient, EdgeRuntime, Path], tmp_path: Path) -> None:
    client, runtime, _ = box
    new = {"id": "hall", "name": "大堂", "role": "lobby", "source": {"url": f"dir:{tmp_path / 'frames'}"}}
    resp = client.post("/api/calibrate/cameras", headers=auth(IT_TOKEN), json={"camera": new})
    assert resp.status_code == 201, resp.text
    assert [w.pipeline.camera.id for w in runtime.workers] == ["door", "hall"]
    health = client.get("/healthz", headers=auth(IT_TOKEN))  # health knows a camera added while running
    assert health.status_code == 200 and [c["id"] for c in health.json()["cameras"]] == ["door", "hall"]
    again = client.post("/api/calibrate/cameras", headers=auth(IT_TOKEN), json={"camera": new})
    assert again.status_code == 409 and "already exists" in again.json()["detail"]["message"]
    # and disabling it stops its worker; the list shows it disabled
    resp = client.put("/api/calibrate/cameras/hall", headers=auth(IT_TOKEN), json={"camera": {**new, "enabled": False}})
    assert resp.status_code == 200
    assert [w.pipeline.camera.id for w in runtime.workers] == ["door"]
    cams = client.get("/api/calibrate/cameras", headers=auth(IT_TOKEN)).json()
    assert [c["id"] for c in cams] == ["door", "hall"] and cams[1]["health"]["state"] == "disabled"


FLOOR_IMAGE = [[0.0, 700.0], [1280.0, 700.0], [0.0, 400.0], [1280.0, 400.0]]
FLOOR_M = [[0.0, 0.0], [6.4, 0.0], [0.0, 4.0], [6.4, 4.0]]


@pytest.mark.parametrize(("image", "floor", "reason"), [
    (FLOOR_IMAGE, FLOOR_M, None),
    ([[0.0, 700.0], [400.0, 700.0], [800.0, 700.0], [1200.0, 700.0]], FLOOR_M, "collinear"),
    ([[0.0, 700.0], [0.0, 700.0], [0.0, 400.0], [1280.0, 400.0]], FLOOR_M, "same"),
    (FLOOR_IMAGE[:3], FLOOR_M[:3], "at least 4"),
    ([], [], "at least 4"),
])
def test_floor_fit_gives_each_points_error_or_the_reason(box: tuple[TestClient, EdgeRuntime, Path],
                                                         image: list[list[float]], floor: list[list[float]],
                                                         reason: str | None) -> None:
    client, _, _ = box
    resp = client.post("/api/calibrate/floor/fit", headers=auth(IT_TOKEN),
                       json={"image_points": image, "floor_points": floor, "camera_id": "door"})
    if reason is None:
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert len(body["per_point_error_m"]) == 4 and max(body["per_point_error_m"]) < 1e-6
        assert body["rms_px"] < 1e-3
    else:
        assert resp.status_code == 422
        assert reason in resp.json()["detail"]["message"].lower()


def test_lens_calibration_from_rendered_checkerboards(box: tuple[TestClient, EdgeRuntime, Path]) -> None:
    # Given six snapshots of a 9x6 board through a known lens at 640x480
    client, _, _ = box
    truth = LensModel(fx=520.0, fy=518.0, cx=322.0, cy=238.0, dist=(-0.21, 0.05, 0.0, 0.0, 0.0), image_size=(640, 480))
    files = []
    for n, (rvec, tvec) in enumerate(synthetic_poses(truth, 6, seed=3)):
        image, _ = render_checkerboard(truth, rvec, tvec, seed=n)
        files.append(("images", (f"s{n}.png", cv2.imencode(".png", image)[1].tobytes(), "image/png")))
    # When they are uploaded
    resp = client.post("/api/calibrate/lens", headers=auth(IT_TOKEN), files=files,
                       data={"board": "9x6", "square_mm": "25"})
    # Then the lens is recovered, with its RMS and an undistorted preview
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert all(body["found"]) and body["rms"] < 0.5
    assert body["lens"]["fx"] == pytest.approx(520.0, rel=0.01)
    assert body["lens"]["dist"][0] == pytest.approx(-0.21, abs=0.02)
    assert body["undistorted_jpeg"] and body["image_size"] == [640, 480]
    # and two snapshots are too few, with the reason
    few = client.post("/api/calibrate/lens", headers=auth(IT_TOKEN), files=files[:2], data={"board": "9x6"})
    assert few.status_code == 422 and "at least 3" in few.json()["detail"]["message"]
    bad = client.post("/api/calibrate/lens", headers=auth(IT_TOKEN), files=files[:3], data={"board": "nine"})
    assert bad.status_code == 422 and "9x6" in bad.json()["detail"]["message"]


def test_the_page_never_sees_camera_passwords_and_sending_them_back_keeps_them(
        box: tuple[TestClient, EdgeRuntime, Path]) -> None:
    client, runtime, path = box
    secret = {"id": "gate", "role": "parking", "source": {"url": "rtsp://admin:s3cret@10.0.0.7:554/main"}}
    assert client.post("/api/calibrate/cameras", headers=auth(IT_TOKEN), json={"camera": secret}).status_code == 201
    entry = camera_entry(client, "gate")
    assert "s3cret" not in str(entry)
    resp = client.put("/api/calibrate/cameras/gate", headers=auth(IT_TOKEN), json={"camera": {**entry, "zone": ZONE}})
    assert resp.status_code == 200 and "s3cret" not in resp.text
    versions = client.get("/api/calibrate/versions/3", headers=auth(IT_TOKEN)).text
    audit = [a.detail for a in runtime.review.list_audit()]
    assert "admin:" in versions or "rtsp:" in versions
    assert "s3cret" not in versions and not any("s3cret" in d for d in audit)
    assert load_config(path).cameras[1].source.url == "rtsp://admin:s3cret@10.0.0.7:554/main"
    assert load_config(path).cameras[1].zone is not None
