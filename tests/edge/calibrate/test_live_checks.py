"""Test connection and the face-size check, through the edge app: a real video file, a missing file, a port that
refuses, a file that is not a video, and real photos of faces at the size the camera would see them."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from calibration.lens import undistort_maps
from edge.api.app import create_app
from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from tests.edge.conftest import IT_TOKEN, LOBBY_TOKEN
from vision.engines.base import FaceEngine
from vision.engines.owner import EnginePool

IT = {"Authorization": f"Bearer {IT_TOKEN}"}


def refused_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture()
def live_client(make_config: Callable[..., EdgeConfig], engine_pool: EnginePool,
                tmp_path: Path, photos_dir: Path) -> TestClient:
    runtime = EdgeRuntime(make_config(), engine=engine_pool)
    with TestClient(create_app(runtime, start_cameras=False)) as client:
        yield client  # type: ignore[misc]
    runtime.stop()


def write_video(path: Path, photo: Path, frames: int = 10) -> Path:
    image = cv2.resize(cv2.imread(str(photo)), (320, 240))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (320, 240))
    for _ in range(frames):
        writer.write(image)
    writer.release()
    return path


def test_a_good_video_file_shows_its_first_frame(live_client: TestClient, tmp_path: Path, photos_dir: Path) -> None:
    video = write_video(tmp_path / "cam.mp4", photos_dir / "obama.jpg")
    answer = live_client.post("/api/calibrate/test-connection", json={"url": f"file:{video}"}, headers=IT)
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is True and body["code"] is None and (body["width"], body["height"]) == (320, 240)
    frame = cv2.imdecode(np.frombuffer(base64.b64decode(body["jpeg_base64"]), np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == (240, 320, 3)


@pytest.mark.parametrize(("make_url", "code", "words"), [
    (lambda tmp: f"file:{tmp / 'missing.mp4'}", "not_found", "file not found"),
    (lambda tmp: f"rtsp://admin:s3cret@127.0.0.1:{refused_port()}/stream1", "refused", "refused the connection"),
    (lambda tmp: "rtsp:///nohost", "bad_url", "has no host"),
    (lambda tmp: "ftp://camera/stream", "bad_url", "unsupported camera url scheme"),
    (lambda tmp: (tmp / "notes.mp4").write_text("meeting notes\n" * 50) and f"file:{tmp / 'notes.mp4'}",
     "not_a_video", "not a video"),
    (lambda tmp: (tmp / "empty.mp4").write_bytes(b"") == 0 and f"file:{tmp / 'empty.mp4'}", "not_a_video",
     "empty file"),
])
def test_a_source_that_fails_says_why_without_its_credentials(live_client: TestClient, tmp_path: Path,
                                                              make_url: Callable[[Path], str], code: str,
                                                              words: str) -> None:
    answer = live_client.post("/api/calibrate/test-connection", json={"url": make_url(tmp_path), "timeout_s": 5},
                              headers=IT)
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is False and body["jpeg_base64"] is None
    assert body["code"] == code
    assert words in body["reason"]
    assert "s3cret" not in answer.text


def test_test_connection_needs_branch_it_and_a_url(live_client: TestClient) -> None:
    assert live_client.post("/api/calibrate/test-connection", json={"url": "file:x"}).status_code == 401
    lobby = {"Authorization": f"Bearer {LOBBY_TOKEN}"}
    assert live_client.post("/api/calibrate/test-connection", json={"url": "file:x"}, headers=lobby).status_code == 403
    assert live_client.post("/api/calibrate/test-connection", json={"url": ""}, headers=IT).status_code == 422


@pytest.fixture()
def entrance(tmp_path: Path, photos_dir: Path, engine: FaceEngine, make_config: Callable[..., EdgeConfig],
             engine_pool: EnginePool) -> tuple[TestClient, int]:
    """A running entrance camera whose frames show a real face about 0.6 x min_face_px wide."""
    photo = cv2.imread(str(photos_dir / "obama.jpg"))
    [box] = engine.detect(photo).xyxy.tolist()
    side = box[2] - box[0]
    scale = 0.6 * engine.min_face_px / side
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((720, 1280, 3), 200, np.uint8)
    h, w = small.shape[:2]
    canvas[100:100 + h, 400:400 + w] = small
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"f{i}.png"), canvas)
    camera = {"id": "door", "role": "entrance", "source": {"url": f"dir:{frames}", "fps": 2, "loop": True}}
    runtime = EdgeRuntime(make_config([camera]), engine=engine_pool)
    client = TestClient(create_app(runtime, start_cameras=True))
    client.__enter__()
    yield client, round(side * scale)  # type: ignore[misc]
    client.__exit__(None, None, None)
    runtime.stop()


@pytest.mark.slow
def test_faces_smaller_than_min_face_px_are_shown_with_their_size_and_a_suggestion(
        entrance: tuple[TestClient, int]) -> None:
    client, expected_side = entrance
    # when branch IT checks face sizes on the entrance camera
    answer = client.get("/api/calibrate/cameras/door/faces", headers=IT)
    assert answer.status_code == 200
    body = answer.json()
    # then the face the engine would miss (below min_face_px) is found, measured and marked too small
    assert body["min_face_px"] == 80
    [face] = body["faces"]
    assert face["ok"] is False
    assert abs(face["side_px"] - expected_side) <= 0.25 * expected_side
    assert body["too_small"] == 1
    # and the suggestion names the setting and a value that would find it, in Chinese and English
    zh, en = body["suggestion"]["zh"], body["suggestion"]["en"]
    assert "min_face_px" in zh and "min_face_px" in en
    target = int(zh.split("调低到 ")[1].split("（")[0])
    assert target <= face["side_px"]
    # and the same check comes drawn on the frame as a JPEG
    drawn = client.get("/api/calibrate/cameras/door/faces.jpg", headers=IT)
    assert drawn.status_code == 200 and drawn.content[:3] == b"\xff\xd8\xff"


def test_a_snapshot_through_the_lens_is_the_pipelines_undistorted_picture(
        tmp_path: Path, photos_dir: Path, make_config: Callable[..., EdgeConfig], engine_pool: EnginePool) -> None:
    # given a camera with a strongly distorting lens, showing a real photo
    photo = cv2.resize(cv2.imread(str(photos_dir / "obama.jpg")), (640, 480))
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "f0.png"), photo)
    lens = {"fx": 500.0, "fy": 500.0, "cx": 320.0, "cy": 240.0, "dist": [-0.3, 0.1, 0.0, 0.0, 0.0],
            "image_size": [640, 480]}
    camera = {"id": "door", "role": "entrance", "lens": lens,
              "source": {"url": f"dir:{frames}", "fps": 2, "loop": True}}
    runtime = EdgeRuntime(make_config([camera]), engine=engine_pool)
    try:
        with TestClient(create_app(runtime, start_cameras=True)) as client:
            # when branch IT asks for the snapshot raw and undistorted
            raw = client.get("/api/calibrate/cameras/door/snapshot.jpg", headers=IT)
            flat = client.get("/api/calibrate/cameras/door/snapshot.jpg", params={"undistort": 1}, headers=IT)
    finally:
        runtime.stop()
    assert raw.status_code == 200 and flat.status_code == 200
    raw_img = cv2.imdecode(np.frombuffer(raw.content, np.uint8), cv2.IMREAD_COLOR)
    flat_img = cv2.imdecode(np.frombuffer(flat.content, np.uint8), cv2.IMREAD_COLOR)
    # then the raw one is the camera's frame, and the other is that frame through the lens's maps
    expected = runtime.config.cameras[0].lens
    assert expected is not None
    through = undistort_maps(expected.model()).apply(photo)
    assert np.abs(raw_img.astype(int) - photo.astype(int)).mean() < 3
    assert np.abs(flat_img.astype(int) - through.astype(int)).mean() < 3
    assert np.abs(flat_img.astype(int) - raw_img.astype(int)).mean() > 10


def test_a_camera_that_accepts_but_never_answers_times_out(live_client: TestClient) -> None:
    # given an RTSP port that accepts connections and then says nothing
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        # when its connection is tested with a 2 s limit
        answer = live_client.post("/api/calibrate/test-connection",
                                  json={"url": f"rtsp://user:pw-secret@127.0.0.1:{port}/live", "timeout_s": 2},
                                  headers=IT)
    # then the answer is a timeout naming the limit, not a hang and not the password
    body = answer.json()
    assert body["ok"] is False and body["code"] == "timeout"
    assert "within 2 s" in body["reason"] and "pw-secret" not in answer.text
