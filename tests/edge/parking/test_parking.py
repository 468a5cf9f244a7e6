"""Plates on the edge: enrolment API and CLI, and parking videos end to end (real CCPD scenes; CJK-font plates)."""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from edge.cli.main import main
from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from tests.edge.conftest import ENROLLER_TOKEN, LiveEdge
from vision.engines.owner import EnginePool
from vision.imageio import decode_image

W, H = 1280, 720
ZONE = [[240, 120], [1040, 120], [1040, 720], [240, 720]]


def _enrol(runtime: EdgeRuntime, photo_bytes: Callable[[str], bytes], name: str, photo: str) -> str:
    return runtime.enroller.enrol(name=name, tier="钻石", photo=photo_bytes(photo), consent="test").id


def test_plate_api_validates_registers_lists_and_deletes(make_config: Callable[..., EdgeConfig],
                                                         live_edge: Callable[..., LiveEdge],
                                                         photo_bytes: Callable[[str], bytes]) -> None:
    edge = live_edge(make_config())
    pid = _enrol(edge.runtime, photo_bytes, "奥巴马", "obama.jpg")
    auth = {"Authorization": f"Bearer {ENROLLER_TOKEN}"}
    url = f"{edge.http}/api/persons/{pid}/plates"
    ok = httpx.post(url, json={"plate": "皖Ａ·1O345"}, headers=auth)
    assert ok.status_code == 201 and ok.json()["plate"] == "皖A10345" and ok.json()["kind"] == "ordinary"
    bad = httpx.post(url, json={"plate": "皖A1234"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["detail"]["code"] == "bad_plate"
    assert "7 or 8" in bad.json()["detail"]["message"]
    dup = httpx.post(url, json={"plate": "皖A10345"}, headers=auth)
    assert dup.status_code == 409
    missing = httpx.post(f"{edge.http}/api/persons/nobody/plates", json={"plate": "皖A12345"}, headers=auth)
    assert missing.status_code == 404
    assert httpx.post(url, json={"plate": "皖A12345"}).status_code == 401
    assert [p["plate"] for p in httpx.get(url, headers=auth).json()] == ["皖A10345"]
    assert edge.runtime.plates.matcher.match("皖A10345").person_id == pid
    assert httpx.delete(f"{url}/皖A10345", headers=auth).status_code == 204
    assert httpx.delete(f"{url}/皖A10345", headers=auth).status_code == 404
    assert edge.runtime.plates.matcher.match("皖A10345").person_id is None


def test_plate_cli_adds_and_refuses(tmp_path: Path, make_config: Callable[..., EdgeConfig],
                                    engine_pool: EnginePool, photo_bytes: Callable[[str], bytes],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config()
    runtime = EdgeRuntime(config, engine=engine_pool)
    pid = _enrol(runtime, photo_bytes, "奥巴马", "obama.jpg")
    runtime.stop()
    cfg = tmp_path / "smartbranch.yaml"
    assert main(["plates", "add", "--config", str(cfg), "--person", pid, "--plate", "皖AD11166"]) == 0
    assert "皖AD11166" in capsys.readouterr().out
    assert main(["plates", "add", "--config", str(cfg), "--person", pid, "--plate", "皖A12"]) == 2
    assert "bad_plate" in capsys.readouterr().err


# -- end to end ----------------------------------------------------------------------------------------
def _frames_for(car: np.ndarray, n: int) -> list[np.ndarray]:
    """A car (image region) driving down through the entry zone over ``n`` frames."""
    frames = []
    ch, cw = car.shape[:2]
    for k in range(n):
        frame = np.full((H, W, 3), 90, np.uint8)
        y = int(120 + (H - 120 - ch) * k / max(n - 1, 1))
        x = (W - cw) // 2
        frame[y:y + ch, x:x + cw] = car
        frames.append(frame)
    return frames


def _write(path: Path, cars: list[np.ndarray], per_car: int = 8, gap: int = 6) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 5.0, (W, H))
    empty = np.full((H, W, 3), 90, np.uint8)
    for car in cars:
        for f in _frames_for(car, per_car):
            writer.write(f)
        for _ in range(gap):
            writer.write(empty)
    writer.release()
    return path


def _enlarged(image: np.ndarray, factor: int) -> bytes:
    """``image`` enlarged to enrolment size, as JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC))
    assert ok
    return buf.tobytes()


def _one_face_of_t1(photo_bytes: Callable[[str], bytes]) -> bytes:
    """A single person cut out of the insightface group photo (her neighbour stays outside the crop)."""
    group = decode_image(photo_bytes("t1.jpg"))
    return _enlarged(group[150: group.shape[0] // 2, :250], 3)


def _run(make_config: Callable[..., EdgeConfig], engine: EnginePool, video: Path,
         photo_bytes: Callable[[str], bytes], plates: dict[str, str],
         gated: bool = False) -> tuple[list[dict[str, object]], dict[str, str]]:
    config = make_config([{"id": "park-1", "name": "停车场入口", "role": "parking", "zone": ZONE,
                           "source": {"url": f"file:{video}", "fps": 5, "realtime": False},
                           "motion": {"enabled": gated}}])
    runtime = EdgeRuntime(config, engine=engine)
    people = {"vip-a": _enrol(runtime, photo_bytes, "甲", "obama.jpg"),
              "vip-b": _enrol(runtime, photo_bytes, "乙", "biden.jpg")}
    if "vip-c" in plates:
        hanks = _enlarged(decode_image(photo_bytes("tom_hanks.png")), 2)
        people["vip-c"] = runtime.enroller.enrol(name="丙", tier="金卡", photo=hanks, consent="test").id
    if "vip-d" in plates:
        people["vip-d"] = runtime.enroller.enrol(name="丁", tier="金卡", photo=_one_face_of_t1(photo_bytes),
                                                 consent="test").id
    for who, plate in plates.items():
        runtime.plates.register(person_id=people[who], plate=plate)
    runtime.start()
    import time

    deadline = time.monotonic() + 120
    while not runtime.cameras_done and time.monotonic() < deadline:
        time.sleep(0.2)
    alerts = [a.model_dump(mode="json") for a in runtime.store.since(0)]
    runtime.stop()
    return alerts, people


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("gated", [False, True], ids=["whole-frame", "motion-gated"])
def test_parking_video_of_real_ccpd_scenes(tmp_path: Path, shared_data: Path, make_config: Callable[..., EdgeConfig],
                                           engine_pool: EnginePool, photo_bytes: Callable[[str], bytes],
                                           gated: bool) -> None:
    # given three real cars: A registered as read, B registered one confusable character off (B -> 8),
    # C not registered
    scenes = shared_data / "plates" / "scenes"
    cars = []
    for name, top in (("ccpd_039.jpg", 300), ("ccpd_006.jpg", 250), ("ccpd_030.jpg", 280)):
        image = decode_image((scenes / name).read_bytes())
        cars.append(image[top:top + 420, :])
    video = _write(tmp_path / "parking.mp4", cars)
    # when the parking camera plays it
    alerts, people = _run(make_config, engine_pool, video, photo_bytes, {"vip-a": "皖APV930", "vip-b": "皖AY6859"},
                          gated=gated)
    # then (plates read in every frame, or only in frames where something moves) exactly one
    # vip_vehicle_arrival per registered car, none for the stranger
    vehicle = [a for a in alerts if a["type"] == "vip_vehicle_arrival"]
    assert sorted((a["payload"]["person_id"], a["payload"]["plate"]) for a in vehicle) == sorted(
        [(people["vip-a"], "皖APV930"), (people["vip-b"], "皖AY6859")])
    b = next(a for a in vehicle if a["payload"]["plate"] == "皖AY6859")
    assert b["payload"]["plate_read"] == "皖AY6B59" and b["payload"]["distance"] == 0.5
    assert all(a["title"] == "VIP 车辆到达" for a in vehicle)


def _cjk_font() -> str | None:
    for pattern in ("/usr/share/fonts/**/NotoSansCJK*.ttc", "/usr/share/fonts/**/wqy-microhei*.tt*",
                    "/usr/share/fonts/**/*CJK*.tt*"):
        found = sorted(glob.glob(pattern, recursive=True))
        if found:
            return found[0]
    return None


def _render_plate(font_path: str, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    plate = Image.new("RGB", (440, 140), (200, 80, 20))  # blue plate, BGR order
    draw = ImageDraw.Draw(plate)
    draw.rectangle((6, 6, 433, 133), outline=(255, 255, 255), width=4)
    shown = text[:2] + "·" + text[2:]
    size = 96
    while True:  # the largest size at which the text fits the plate
        font = ImageFont.truetype(font_path, size)
        box = draw.textbbox((0, 0), shown, font=font)
        if box[2] - box[0] <= 400 or size <= 40:
            break
        size -= 4
    draw.text(((440 - (box[2] - box[0])) / 2 - box[0], (140 - (box[3] - box[1])) / 2 - box[1]), shown,
              fill=(255, 255, 255), font=font)
    car = np.full((420, 720, 3), 60, np.uint8)
    car[80:120, 100:620] = 160  # a bumper line
    small = cv2.resize(np.asarray(plate), (300, 96), interpolation=cv2.INTER_AREA)
    car[200:296, 210:510] = small
    return car


@pytest.mark.slow
def test_parking_video_of_rendered_plates(tmp_path: Path, make_config: Callable[..., EdgeConfig],
                                          engine_pool: EnginePool, photo_bytes: Callable[[str], bytes]) -> None:
    font = _cjk_font()
    if font is None:
        pytest.skip("no CJK font found under /usr/share/fonts (apt-get install fonts-noto-cjk or "
                    "fonts-wqy-microhei; .ci/run does)")
    cars = [_render_plate(font, p) for p in ("京A12345", "沪B5C8D2", "粤B77777", "苏E23456")]
    video = _write(tmp_path / "rendered.mp4", cars)
    # A exact, B registered with S in place of 5 (confusable), C and D two VIPs whose plates are one
    # (confusable) character apart, and the fourth car unregistered
    alerts, people = _run(make_config, engine_pool, video, photo_bytes,
                          {"vip-a": "京A12345", "vip-b": "沪BSC8D2", "vip-c": "粤B77777", "vip-d": "粤B77771"})
    vehicle = [a for a in alerts if a["type"] == "vip_vehicle_arrival"]
    # then one alert per registered car that came, the right VIP for the two near-identical plates,
    # none for VIP D (whose car never came) and none for the unregistered car
    assert sorted((a["payload"]["plate"], a["payload"]["person_id"]) for a in vehicle) == sorted(
        [("京A12345", people["vip-a"]), ("沪BSC8D2", people["vip-b"]), ("粤B77777", people["vip-c"])])
