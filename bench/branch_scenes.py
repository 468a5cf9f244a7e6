"""The videos of one branch for ``bench.branch``, made from real photos with the demo's scene makers.

- entrance: ``bench.pipeline.arrivals_scene`` (the VIP walks in every 4.5 s, a stranger beside every other visit);
- lobby: strangers walking in one after another (``edge.demo.scene``);
- counter: a clerk behind the desk (in the staff zone), customers served in turn at the desk, and 0-2
  customers waiting (``edge.demo.counter_scene``); every service lasts 8 s;
- parking: a real car photo (``../shared/data/plates/scenes``) driving in, parking and leaving; an empty lot
  when ../shared is absent;
- and a still version of each (no one in view) for the static-scene phase.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.pipeline import STRANGERS, arrivals_scene
from edge.demo.counter_scene import CounterScene, Cutout, H, Role, W
from edge.demo.scene import Actor, Appearance, SceneBuilder, Truth, lobby_background
from vision.imageio import decode_image
from vision.types import Image

FPS = 10.0
SERVICE_EVERY_S = 14.0  # a customer walks in, is served 8 s, walks out; the next one 14 s after
CARS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "plates" / "scenes"
CAR_PLATE = "皖APV930"  # the plate of ccpd_039.jpg
CAR_EVERY_S = 15.0


@dataclass(frozen=True, slots=True)
class CounterTruth:
    services: int  # customers served at the desk long enough to count as an interaction


def _write(path: Path, frames: Iterable[Image]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (W, H))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write video {path}")
    try:
        for image in frames:
            writer.write(image)
    finally:
        writer.release()


def entrance(builder: SceneBuilder, path: Path, seconds: float) -> list[Truth]:
    """VIP visits 4.5 s apart for ``seconds``; the truth of every visit."""
    n = max(1, int((seconds - 3.0) / 4.5))
    truth = builder.write(path, arrivals_scene(n), seconds)
    return [t for t in truth if t.label == "vip"]


def lobby(builder: SceneBuilder, path: Path, seconds: float) -> None:
    """A stranger walks in every 3 s, stands 1.5 s and leaves."""
    apps = []
    for i in range(max(1, int((seconds - 4.0) / 3.0))):
        photo, face = STRANGERS[i % len(STRANGERS)]
        apps.append(Appearance(Actor(f"s{i}", photo, face), 0.5 + 3.0 * i, dwell_s=1.5,
                               side="left" if i % 2 == 0 else "right", lane_x=0.3 + 0.12 * (i % 4)))
    builder.write(path, apps, seconds)


def counter(cast: dict[str, Cutout], path: Path, seconds: float, people: int) -> CounterTruth:
    """The clerk (not enrolled: staff by the staff zone), one customer served at a time, ``people - 2`` waiting."""
    roles = [Role(cast["customer3"], ((0, 250), (seconds, 250)))]
    served = ("customer", "customer2")
    services = 0
    for k in range(int((seconds - 1.0) // SERVICE_EVERY_S) + 1):
        start = 1.0 + SERVICE_EVERY_S * k
        if start + 12.0 > seconds:
            break
        who = cast[served[k % 2]]
        roles.append(Role(who, ((0, 1450), (start, 1450), (start + 2, 530), (start + 10, 530), (start + 12, 1450),
                                (seconds, 1450)),
                          hidden=((0, start - 0.2), (start + 12.2, seconds + 1))))
        services += 1
    for x in (1150.0, 950.0)[:max(0, people - 2)]:
        roles.append(Role(cast["customer3"], ((0, x), (seconds, x))))
    scene = CounterScene(roles, seconds, fps=FPS)
    _write(path, (frame.image for frame, _ in scene.frames()))
    return CounterTruth(services)


def _car() -> Image | None:
    path = CARS / "ccpd_039.jpg"
    if not path.is_file():
        return None
    return decode_image(path.read_bytes())[300:720, :]


def parking(path: Path, seconds: float) -> int:
    """A car drives in from the right every 15 s, parks 6 s and drives off; how many times it drives in (0 when no
    car photo is at hand)."""
    lot = np.full((H, W, 3), 90, np.uint8)
    cv2.rectangle(lot, (0, 640), (W, H), (70, 70, 70), -1)
    car = _car()

    def frame(t: float) -> Image:
        img = lot.copy()
        if car is None:
            return img
        local = t % CAR_EVERY_S
        if local > 10.0:
            return img
        k = min(local / 2.0, 1.0) if local < 8.0 else max(0.0, 1.0 - (local - 8.0) / 2.0)
        x0 = round(W - k * (W - 280))
        h, w = car.shape[:2]
        x1 = min(W, x0 + w)
        if x1 > x0:
            img[200:200 + h, x0:x1] = car[:, :x1 - x0]
        return img

    _write(path, (frame(i / FPS) for i in range(round(seconds * FPS))))
    return 0 if car is None else int(seconds // CAR_EVERY_S) + int(seconds % CAR_EVERY_S > 2.0)


def still(path: Path, kind: str, seconds: float) -> None:
    """No one in view: the lobby, the counter or the parking lot alone (sensor noise of a real encoder only)."""
    if kind == "parking":
        image = np.full((H, W, 3), 90, np.uint8)
        cv2.rectangle(image, (0, 640), (W, H), (70, 70, 70), -1)
    elif kind == "counter":
        image = CounterScene([], 1.0, fps=FPS).render(0.0)[0]
    else:
        image = lobby_background(W, H)
    _write(path, (image for _ in range(round(seconds * FPS))))
