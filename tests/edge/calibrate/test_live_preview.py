"""The live preview on a real counter camera: real photos of a clerk and a VIP rendered into frames, played by the
real runtime (NanoDet persons, dlib faces, roles) and streamed over HTTP as MJPEG with the overlays drawn."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from edge.calibrate.live_draw import ROLE_COLOURS, ZONE_COLOURS
from edge.config import EdgeConfig
from edge.demo.counter_scene import CounterScene, Role, load_cast, scene_camera
from tests.edge.conftest import IT_TOKEN, LOBBY_TOKEN, LiveEdge, config_dict
from vision.engines.base import FaceEngine
from vision.engines.nanodet import NanoDetPersonDetector

pytestmark = pytest.mark.slow

FPS = 5.0
MAX_FPS = 2.0


@pytest.fixture()
def counter_edge(tmp_path: Path, photos_dir: Path, engine: FaceEngine, person_detector: NanoDetPersonDetector,
                 live_edge: Callable[[EdgeConfig], LiveEdge]) -> Iterator[LiveEdge]:
    cast = load_cast(photos_dir, person_detector, engine)
    # the clerk stands at the counter, the VIP in the waiting zone; the folder loops like a live camera
    scene = CounterScene([Role(cast["clerk"], ((0, 180), (3, 180))), Role(cast["customer"], ((0, 1000), (3, 1000)))],
                         3.0, fps=FPS)
    folder = tmp_path / "frames"
    folder.mkdir()
    for frame, _ in scene.frames():
        cv2.imwrite(str(folder / f"frame_{frame.index:05d}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    camera = scene_camera(f"dir:{folder}", fps=FPS)
    camera["source"] = {**camera["source"], "loop": True}  # type: ignore[dict-item]
    raw = config_dict(tmp_path / "data", [camera], preview={"max_fps": MAX_FPS, "max_viewers": 1, "max_width": 1280},
                      clips={"enabled": False})
    edge = live_edge(EdgeConfig.model_validate(raw))
    for file, name, role in (("obama3.jpg", "李娜", "staff"), ("biden.jpg", "王建国", "vip")):
        edge.runtime.enroller.enrol(name=name, tier="柜员" if role == "staff" else "钻石",
                                    photo=(photos_dir / file).read_bytes(), consent="test", role=role)
    edge.runtime.start()
    yield edge


class Parts:
    """Reads a multipart stream's parts; the response stays open until the ``with`` around it ends."""

    def __init__(self, response: httpx.Response) -> None:
        self._stream = response.iter_bytes()
        self._buffer = b""

    def take(self, count: int) -> list[tuple[dict[str, str], bytes, float]]:
        return [self._next() for _ in range(count)]

    def _more(self) -> None:
        self._buffer += next(self._stream)

    def _next(self) -> tuple[dict[str, str], bytes, float]:
        """One part as (headers, JPEG bytes, arrival time on the monotonic clock)."""
        while b"\r\n\r\n" not in self._buffer:
            self._more()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("ascii").strip().split("\r\n")
        assert lines[0] == "--smartbranchframe"
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        size = int(headers["content-length"])
        while len(self._buffer) < size + 2:
            self._more()
        body, self._buffer = self._buffer[:size], self._buffer[size + 2:]
        return headers, body, time.monotonic()


def drawn_pixels(drawn: np.ndarray, raw: np.ndarray, bgr: tuple[int, int, int], tol: int = 45) -> int:
    """Pixels of ``drawn`` in colour ``bgr`` where it differs from ``raw`` (the same still scene, undrawn)."""
    changed = np.abs(drawn.astype(np.int16) - raw.astype(np.int16)).max(axis=2) > 60
    near = np.all(np.abs(drawn.astype(np.int16) - np.array(bgr, np.int16)) <= tol, axis=2)
    return int((changed & near).sum())


def test_the_preview_streams_jpeg_frames_with_zones_people_and_roles_drawn(counter_edge: LiveEdge) -> None:
    url = f"{counter_edge.http}/api/calibrate/cameras/counter-1/preview.mjpg"
    with httpx.Client(timeout=60) as client:
        # given the running counter camera, when branch IT opens its preview
        with client.stream("GET", url, params={"fps": 5}, headers={"Authorization": f"Bearer {IT_TOKEN}"}) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("multipart/x-mixed-replace")
            parts = Parts(resp).take(12)
        # then every part is a JPEG of the camera's frame, frame indexes never going back
        images = [cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR) for _, body, _ in parts]
        assert all(img is not None and img.shape[:2] == (720, 1280) for img in images)
        indexes = [int(h["x-frame-index"]) for h, _, _ in parts]
        assert indexes == sorted(indexes)
        # and, once the pipeline knows who is who, the staff (blue) and the VIP (gold) are boxed, and the waiting
        # zone (orange) is drawn: those colours are where the preview differs from the camera's own (still) picture
        last = images[-1]
        snap = client.get(f"{counter_edge.http}/api/calibrate/cameras/counter-1/snapshot.jpg",
                          headers={"Authorization": f"Bearer {IT_TOKEN}"})
        assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
        raw = cv2.imdecode(np.frombuffer(snap.content, np.uint8), cv2.IMREAD_COLOR)
        for colour in (ROLE_COLOURS["staff"], ROLE_COLOURS["vip"], ZONE_COLOURS["waiting"]):
            assert drawn_pixels(last, raw, colour) > 300, colour


def test_the_preview_rate_is_capped_and_viewers_are_limited(counter_edge: LiveEdge) -> None:
    url = f"{counter_edge.http}/api/calibrate/cameras/counter-1/preview.mjpg"
    auth = {"Authorization": f"Bearer {IT_TOKEN}"}
    with httpx.Client(timeout=60) as client:
        # given a viewer asking for 30 fps on a box capped at 2 fps (the camera delivers 5)
        with client.stream("GET", url, params={"fps": 30}, headers=auth) as resp:
            assert resp.status_code == 200
            reader = Parts(resp)  # held: the stream stays open while the second viewer asks
            parts = reader.take(7)
            # then a second viewer is refused while the box's one preview slot is taken
            second = client.get(url, headers=auth)
            assert second.status_code == 503 and second.json()["detail"]["code"] == "busy"
        # and the parts arrive no faster than the cap: 6 gaps take at least 6 periods (less one period of slack)
        span = parts[-1][2] - parts[0][2]
        assert span >= 5 / MAX_FPS
        # when the viewer has gone, the slot is free again
        deadline = time.monotonic() + 10
        while True:
            with client.stream("GET", url, headers=auth) as again:
                if again.status_code == 200 or time.monotonic() > deadline:
                    break
            time.sleep(0.2)
        assert again.status_code == 200


def test_live_endpoints_need_branch_it_and_name_what_is_missing(counter_edge: LiveEdge) -> None:
    base = f"{counter_edge.http}/api/calibrate/cameras"
    with httpx.Client(timeout=30) as client:
        assert client.get(f"{base}/counter-1/snapshot.jpg").status_code == 401
        assert client.get(f"{base}/counter-1/snapshot.jpg",
                          headers={"Authorization": f"Bearer {LOBBY_TOKEN}"}).status_code == 403
        it = {"Authorization": f"Bearer {IT_TOKEN}"}
        missing = client.get(f"{base}/nope/snapshot.jpg", headers=it)
        assert missing.status_code == 404 and missing.json()["detail"]["message"] == "no camera nope"
        no_lens = client.get(f"{base}/counter-1/snapshot.jpg", params={"undistort": 1}, headers=it)
        assert no_lens.status_code == 409 and no_lens.json()["detail"]["code"] == "no_lens"
