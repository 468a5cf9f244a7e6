"""A counter camera end to end, on real images and the real service: a folder of frames rendered from real
photos is played in real time through the edge runtime (reader thread, counter pipeline, rules, SQLite,
clip encoder) and the HTTP API. It checks the alerts, the stored episode, the H.264 clip with its pre-roll,
Range requests, the compliance-only access with its audit, and the statistics."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import cv2
import httpx
import pytest

from edge.config import EdgeConfig, hash_token
from edge.demo.counter_scene import CounterScene, Role, load_cast, scene_camera
from tests.edge.conftest import ADMIN_TOKEN, LOBBY_TOKEN, LiveEdge, config_dict
from vault.clip_file import ClipReader
from vision.engines.base import FaceEngine
from vision.engines.nanodet import NanoDetPersonDetector

pytestmark = pytest.mark.slow

COMPLIANCE_TOKEN = "compliance-token-for-tests"
PRE_ROLL_S, POST_ROLL_S, FPS = 2.0, 1.0, 5.0
SHANGHAI = ZoneInfo("Asia/Shanghai")


def write_frames(folder: Path, scene: CounterScene) -> None:
    folder.mkdir()
    for frame, _ in scene.frames():
        cv2.imwrite(str(folder / f"frame_{frame.index:05d}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.fixture()
def counter_edge(tmp_path: Path, photos_dir: Path, engine: FaceEngine, person_detector: NanoDetPersonDetector,
                 live_edge: Callable[[EdgeConfig], LiveEdge]) -> LiveEdge:
    cast = load_cast(photos_dir, person_detector, engine)
    # the clerk walks from the counter to the waiting VIP, serves for about 6 s, and walks back
    scene = CounterScene([Role(cast["clerk"], ((0, 180), (2, 180), (4, 720), (10, 720), (12, 180), (14, 180))),
                          Role(cast["customer"], ((0, 1000), (14, 1000)))], 14.0, fps=FPS)
    write_frames(tmp_path / "frames", scene)
    raw = config_dict(tmp_path / "data", [scene_camera(f"dir:{tmp_path / 'frames'}", fps=FPS)],
        counter={"interaction": {"max_distance_m": 1.6, "start_after_s": 2.0, "end_after_s": 2.0}},
        clips={"pre_roll_s": PRE_ROLL_S, "post_roll_s": POST_ROLL_S})
    raw["auth"]["tokens"].append({"name": "officer-1", "sha256": hash_token(COMPLIANCE_TOKEN),
                                  "roles": ["compliance"]})
    edge = live_edge(EdgeConfig.model_validate(raw))
    for file, name, role in (("obama.jpg", "李娜", "staff"), ("biden.jpg", "王建国", "vip")):
        edge.runtime.enroller.enrol(name=name, tier="钻石" if role == "vip" else "柜员",
                                    photo=(photos_dir / file).read_bytes(), consent="test", role=role)
    return edge


def test_a_service_at_the_counter_is_alerted_stored_recorded_and_reviewable(counter_edge: LiveEdge) -> None:
    runtime = counter_edge.runtime
    staff = next(p for p in runtime.store.list_persons() if p.role == "staff")
    vip = next(p for p in runtime.store.list_persons() if p.role == "vip")
    # When the camera plays the 14 s scene in real time
    runtime.start()
    assert wait_for(lambda: runtime.cameras_done, 240), "the counter camera did not finish"
    assert wait_for(lambda: bool(runtime.review.list_clips()), 60), "no clip was written"

    # Then one service was alerted, start and end, naming the clerk and the VIP, with its duration
    alerts = runtime.store.since(0)
    kinds = [a.type.value for a in alerts]
    assert kinds.count("interaction_started") == 1 and kinds.count("interaction_ended") == 1
    ended = next(a for a in alerts if a.type.value == "interaction_ended").payload
    assert ended.kind == "interaction_ended"
    assert (ended.staff_id, ended.staff_name, ended.vip_id, ended.vip_name) == (staff.id, "李娜", vip.id, "王建国")
    assert ended.duration_s is not None
    # and stored for the statistics
    [record] = runtime.review.list_interactions()
    assert record.duration_s == pytest.approx(ended.duration_s)

    # and recorded as a browser-playable H.264 clip from pre-roll before the start to post-roll after the end
    [clip] = runtime.review.list_clips()
    assert clip.participants.interaction_id == ended.interaction_id
    assert clip.participants.staff_id == staff.id and clip.participants.vip_id == vip.id
    assert ended.ended_at is not None
    assert (clip.ended_at - ended.ended_at).total_seconds() >= POST_ROLL_S - 0.5
    with ClipReader(clip.path, runtime.clip_key) as reader, av.open(reader) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = list(container.decode(stream))
        reader.seek(0)
        plain = reader.read()
    assert len(frames) == clip.frames
    # the clip starts with the frame that was showing PRE_ROLL_S before the start: at least that much pre-roll,
    # and less than one processed frame more, however few frames a busy machine processes (0.05 s: the frames'
    # wall and monotonic clocks are read one after the other)
    pre_roll_s = (ended.started_at - clip.started_at).total_seconds()
    first_gap_s = float((frames[1].pts - frames[0].pts) * stream.time_base)
    assert PRE_ROLL_S - 0.05 <= pre_roll_s <= PRE_ROLL_S + first_gap_s + 0.05
    # the service lasted about 6 s; the pipeline sees its start and end only on the frames it processed, so a
    # busy machine (few frames) measures it short by up to two of the widest gaps between them
    widest_gap_s = max(float((b.pts - a.pts) * stream.time_base) for a, b in itertools.pairwise(frames))
    assert 4.5 - 2 * widest_gap_s < ended.duration_s < 8.5
    decoded_s = float((frames[-1].pts - frames[0].pts) * stream.time_base)
    assert decoded_s == pytest.approx(clip.duration_s, abs=0.5)
    assert decoded_s == pytest.approx((clip.ended_at - clip.started_at).total_seconds(), abs=0.5)

    # and a compliance officer can list it and play a byte range of it
    http, officer = counter_edge.http, {"Authorization": f"Bearer {COMPLIANCE_TOKEN}"}
    listed = httpx.get(f"{http}/api/clips", headers=officer).json()
    assert [c["id"] for c in listed] == [clip.id]
    part = httpx.get(f"{http}{listed[0]['video_url']}", headers={**officer, "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == plain[:100]
    # but the lobby manager may not (the refusal is audited in aggregate, at the latest when the service stops)
    refused = httpx.get(f"{http}/api/clips/{clip.id}/video", headers={"Authorization": f"Bearer {LOBBY_TOKEN}"})
    assert refused.status_code == 403
    audit = httpx.get(f"{http}/api/audit", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    assert any(a["action"] == "play" and a["actor"] == "officer-1" for a in audit)

    # and the statistics count the service for the clerk
    stats = httpx.get(f"{http}/api/stats", headers=officer,
                      params={"date_from": clip.started_at.astimezone(SHANGHAI).date().isoformat()}).json()
    [row] = [r for r in stats["by_staff"] if r["staff_id"] == staff.id]
    assert row["interactions"] == 1
    counter_edge.server.stop()
    assert any(a.outcome == "refused" and a.actor == "lobby-1" and a.clip_id == clip.id
               for a in counter_edge.runtime.review.list_audit())
