"""The compliance review page in a real browser (Debian's chromium) against a live edge box: clips recorded by the
real clip recorder from real photos, listed and filtered by name, played, at tablet and phone sizes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e .[dev])")

from playwright.sync_api import BrowserContext, expect

from edge.clips.config import ClipConfig
from edge.clips.frames import ClipPerson
from edge.clips.recorder import ClipRecorder
from edge.clips.types import ClipParticipants
from edge.store.db import Person
from tests.edge.browser.conftest import COMPLIANCE_TOKEN, PHONE, TABLET, EdgeBox, shot
from tests.edge.clip_helpers import T0, fit, laplacian_var, make_frame
from vision.engines.base import FaceEngine
from vision.imageio import decode_image
from vision.types import Image

Contexts = Callable[..., BrowserContext]
Box = tuple[float, float, float, float]

# The variance of the Laplacian (OpenCV's 3x3 kernel, BT.601 grey) of each box of the frame the player shows.
SHARPNESS = """(boxes) => {
  const v = document.querySelector('#player');
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  return boxes.map(([x1, y1, x2, y2]) => {
    const w = Math.floor(x2) - Math.floor(x1), h = Math.floor(y2) - Math.floor(y1);
    const d = g.getImageData(Math.floor(x1), Math.floor(y1), w, h).data;
    const grey = (x, y) => { const i = 4 * (y * w + x); return 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2]; };
    let n = 0, sum = 0, sq = 0;
    for (let y = 1; y < h - 1; y++) for (let x = 1; x < w - 1; x++) {
      const l = grey(x - 1, y) + grey(x + 1, y) + grey(x, y - 1) + grey(x, y + 1) - 4 * grey(x, y);
      n++; sum += l; sq += l * l;
    }
    return sq / n - (sum / n) ** 2;
  });
}"""


@dataclass(frozen=True)
class Recorded:
    people: dict[str, Person]
    faces: list[Box]  # the clerk's, then the customer's, in the recorded frame's pixels
    sharpness: list[float]  # of each face in the frame as recorded (before encoding)


@pytest.fixture(scope="module")
def recorded(box: EdgeBox, photos_dir: Path, engine_small_faces: FaceEngine) -> Recorded:
    """Two services recorded by the real recorder into the box: 拜登 serving the VIP 奥巴马, then 张伟 serving
    him. In each the clerk had another track in the pre-roll than at the start (as a clerk walking over gets)."""
    def read(name: str) -> bytes:
        return (photos_dir / name).read_bytes()
    people = {name: box.enrol(name, role, read(photo)) for name, role, photo in (
        ("奥巴马", "vip", "obama.jpg"), ("拜登", "staff", "biden.jpg"), ("张伟", "staff", "obama3.jpg"))}
    image: Image = np.hstack([fit(decode_image(read("biden.jpg"))[:1300], 320, 360),
                              fit(decode_image(read("obama.jpg")), 320, 360)])
    found = engine_small_faces.detect(image).xyxy
    faces = sorted(((float(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in found), key=lambda b: b[0])
    assert len(faces) == 2
    rt = box.rt
    recorder = ClipRecorder("counter-1", ClipConfig(pre_roll_s=0.5, post_roll_s=0.25),
                            box.config.clips.resolve_dir(box.config.paths.data_dir), rt.review.add_clip,
                            key=rt.clip_key, tz=box.config.branch.tz)
    customer = ClipPerson(3, (340.0, 0.0, 620.0, 360.0), faces[1])
    for n, staff in enumerate(("拜登", "张伟")):
        base = n * 40
        for i in range(24):
            t = (base + i) * 0.125
            clerk = ClipPerson(100 + n if i < 4 else 1 + 10 * n, (20.0, 0.0, 300.0, 360.0), faces[0])
            recorder.push(make_frame(base + i, t, image), [clerk, customer])
            if i == 4:
                recorder.start(ClipParticipants(f"i-{staff}", "counter-1", staff_track=1 + 10 * n, customer_track=3,
                                                staff_id=people[staff].id, vip_id=people["奥巴马"].id), T0 + t)
            if i == 20:
                recorder.stop(f"i-{staff}", T0 + t)
    recorder.close()
    assert len(rt.review.list_clips()) == 2
    return Recorded(people, faces, [laplacian_var(image, f) for f in faces])


def test_the_review_list_speaks_in_names_filters_by_them_and_plays_a_clip(
        box: EdgeBox, recorded: Recorded, contexts: Contexts) -> None:
    for size, name in ((TABLET, "tablet"), (PHONE, "phone")):
        page = contexts(size).new_page()
        page.goto(f"{box.url}/review?token={COMPLIANCE_TOKEN}")
        items = page.locator("#clips li .who")
        # the list names the camera, the clerk and the VIP, never an id
        expect(items).to_have_count(2)
        expect(items.nth(0)).to_contain_text("1号柜台")
        expect(items.nth(0)).to_contain_text("奥巴马")
        assert {items.nth(i).inner_text().split(" · ")[1] for i in range(2)} == {"拜登", "张伟"}
        for person in recorded.people.values():
            expect(page.locator("#clips")).not_to_contain_text(person.id)
        # filtering by a clerk's name finds his clip only
        page.fill('#filters input[name="staff_name"]', "拜登")
        page.click("#filters-search")
        expect(items).to_have_count(1)
        expect(items.nth(0)).to_contain_text("拜登")
        # and the clip plays: its time advances
        page.locator("#clips li button.clip").first.click()
        player = page.locator("#player")
        expect(player).to_have_attribute("src", re.compile(r"/video"))
        player.evaluate("v => { v.muted = true; return v.play(); }")
        page.wait_for_function("document.querySelector('#player').currentTime > 0.3")
        # and its first frame, from the pre-roll where the clerk had another track, shows both faces sharp
        player.evaluate("v => { v.pause(); const s = new Promise(r => v.addEventListener('seeked', r, {once: true}));"
                        " v.currentTime = 0; return s; }")
        shown = page.evaluate(SHARPNESS, [list(f) for f in recorded.faces])
        for seen, source in zip(shown, recorded.sharpness, strict=True):
            assert seen > 0.4 * source, (shown, recorded.sharpness)
        shot(page, f"review-{name}")
