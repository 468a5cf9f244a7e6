"""Camera faults seen through the service: /healthz degrades, the camera is retried, the API keeps serving."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from edge.config import EdgeConfig
from tests.edge.conftest import ADMIN_TOKEN, ENROLLER_TOKEN, IT_TOKEN, LOBBY_TOKEN, LiveEdge


def detailed_health(edge: LiveEdge, token: str = IT_TOKEN) -> dict[str, object]:
    response = httpx.get(f"{edge.http}/healthz", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_video_deleted_mid_run_degrades_health_and_is_retried(
        tmp_path: Path, make_config: Callable[..., EdgeConfig], live_edge: Callable[..., LiveEdge]) -> None:
    # given a running edge whose camera loops over a video file
    video = tmp_path / "cam.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 25, (320, 240))
    for i in range(25):
        writer.write(np.full((240, 320, 3), i * 9, np.uint8))
    writer.release()
    edge = live_edge(make_config(cameras=[{"id": "door", "name": "正门", "role": "entrance",
                                          "source": {"url": f"file:{video}", "loop": True}}]))
    edge.runtime.start()

    def health() -> dict[str, object]:
        return detailed_health(edge)

    deadline = time.monotonic() + 20
    while health()["status"] != "ok" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert health()["status"] == "ok"
    # when the file is deleted while the service runs
    video.unlink()
    deadline = time.monotonic() + 20
    state: dict[str, object] = {}
    while time.monotonic() < deadline:
        state = health()
        cameras = state["cameras"]
        assert isinstance(cameras, list)
        if cameras[0]["reconnects"] >= 2:
            break
        time.sleep(0.2)
    # then /healthz reports the camera unhealthy with the reason, and it is being retried
    assert state["status"] == "degraded"
    camera = state["cameras"][0]  # type: ignore[index]
    assert camera["healthy"] is False and camera["state"] == "reconnecting"
    assert "not found" in camera["error"]
    # and the rest of the service keeps answering
    alerts = httpx.get(f"{edge.http}/api/alerts", headers={"Authorization": f"Bearer {LOBBY_TOKEN}"}, timeout=5)
    assert alerts.status_code == 200
    metrics = httpx.get(f"{edge.http}/metrics", timeout=5).text
    assert 'smartbranch_camera_up{camera="door"} 0.0' in metrics


def test_a_counter_camera_without_its_person_model_is_reported_and_the_rest_runs(
        tmp_path: Path, make_config: Callable[..., EdgeConfig], live_edge: Callable[..., LiveEdge]) -> None:
    # given a counter camera whose person model folder is empty, beside an entrance camera
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.jpg"), np.full((240, 320, 3), 90, np.uint8))
    empty = tmp_path / "no-models"
    empty.mkdir()
    edge = live_edge(make_config(
        cameras=[{"id": "door", "role": "entrance", "source": {"url": f"dir:{frames}", "loop": True}},
                 {"id": "counter-1", "role": "counter", "source": {"url": f"dir:{frames}"}}],
        counter={"person": {"models_dir": str(empty)}}))
    # when the service reports its health
    body = detailed_health(edge)
    # then the counter camera is named as not opened, with the reason, and the entrance camera is there
    assert body["status"] == "degraded"
    [missing] = body["cameras_not_opened"]
    assert missing["id"] == "counter-1" and "person detector missing" in missing["reason"]
    assert [c["id"] for c in body["cameras"]] == ["door"]


def test_camera_credentials_never_leave_the_box(
        make_config: Callable[..., EdgeConfig], live_edge: Callable[..., LiveEdge],
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    # given a running edge whose camera URL carries credentials and cannot be opened
    caplog.set_level(logging.INFO)
    url = "rtsp://admin:S3cretPass@127.0.0.1:9/x"
    edge = live_edge(make_config(cameras=[{"id": "door", "name": "正门", "role": "entrance",
                                          "source": {"url": url}}]))
    edge.runtime.start()
    deadline = time.monotonic() + 30
    while detailed_health(edge)["cameras"][0]["reconnects"] < 2 and time.monotonic() < deadline:  # type: ignore[index]
        time.sleep(0.2)
    # when anyone asks for its health, branch IT and an admin ask for the details, and metrics are scraped
    anonymous = httpx.get(f"{edge.http}/healthz", timeout=5)
    details = {token: detailed_health(edge, token) for token in (IT_TOKEN, ADMIN_TOKEN)}
    metrics = httpx.get(f"{edge.http}/metrics", timeout=5).text
    # then the anonymous answer is liveness only: no camera, no URL, no error
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "degraded"}
    # and the details name the failing camera by its redacted URL
    for body in details.values():
        camera = body["cameras"][0]  # type: ignore[index]
        assert camera["id"] == "door" and camera["healthy"] is False
        assert "rtsp://***@127.0.0.1:9/x" in camera["error"]
    # and the secret is nowhere: not in health, metrics, logs or the console
    captured = capfd.readouterr()
    for text in (anonymous.text, *map(str, details.values()), metrics, caplog.text, captured.out, captured.err):
        assert "S3cretPass" not in text
    assert "rtsp://***@127.0.0.1:9/x" in caplog.text
    assert 'smartbranch_camera_up{camera="door"} 0.0' in metrics


def test_detailed_health_needs_a_branch_it_or_admin_token(
        make_config: Callable[..., EdgeConfig], live_edge: Callable[..., LiveEdge]) -> None:
    edge = live_edge(make_config())
    url = f"{edge.http}/healthz"
    # a token without the role is refused, a wrong token is unauthorised, no token gets liveness only
    assert httpx.get(url, headers={"Authorization": f"Bearer {LOBBY_TOKEN}"}, timeout=5).status_code == 403
    assert httpx.get(url, headers={"Authorization": f"Bearer {ENROLLER_TOKEN}"}, timeout=5).status_code == 403
    wrong = httpx.get(url, headers={"Authorization": "Bearer not-a-token"}, timeout=5)
    assert wrong.status_code == 401 and wrong.json()["detail"]["code"] == "unauthorised"
    assert httpx.get(url, timeout=5).json() == {"status": "ok"}
    assert detailed_health(edge)["cameras"] == []
