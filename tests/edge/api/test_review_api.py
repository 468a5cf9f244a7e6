"""The review API over HTTP on a live edge: real H.264 clips, Range playback, roles, audit, verdicts, stats."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import av
import httpx
import pytest

from edge.clips.retention import remove_clip_file
from edge.config import EdgeConfig, hash_token
from edge.review.store import ReviewStore
from edge.review.types import AuditEntry
from tests.edge.conftest import ADMIN_TOKEN, ENROLLER_TOKEN, IT_TOKEN, LOBBY_TOKEN, LiveEdge, config_dict
from tests.edge.review_helpers import CLIPS, T0, clip_written, interaction, write_h264
from vault.clip_file import CHUNK_BYTES, HEADER_BYTES, TAG_BYTES, encrypt_bytes

COMPLIANCE_TOKEN = "compliance-token-for-tests"
OTHER_BRANCH_TOKEN = "compliance-of-another-branch"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


CO = auth(COMPLIANCE_TOKEN)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real H.264 MP4 of a few hundred KiB: several 64 KiB chunks."""
    return write_h264(tmp_path_factory.mktemp("clips") / "master.mp4", frames=12)


@pytest.fixture()
def edge(make_config: Callable[..., EdgeConfig], live_edge: Callable[..., LiveEdge], tmp_path: Path) -> LiveEdge:
    """A live edge (Asia/Shanghai) with a compliance token, and one for another branch."""
    tokens = config_dict(tmp_path)["auth"]["tokens"] + [
        {"name": "compliance-1", "sha256": hash_token(COMPLIANCE_TOKEN), "roles": ["compliance"]},
        {"name": "compliance-other", "sha256": hash_token(OTHER_BRANCH_TOKEN), "roles": ["compliance"],
         "branches": ["another-branch"]},
    ]
    return live_edge(make_config(auth={"tokens": tokens}))


def add_clip(edge: LiveEdge, mp4: Path, clip_id: str, **kwargs: Any) -> Path:
    """Encrypt the master MP4 into the edge's data dir with the edge's clip key and index it, as the clip
    writer would."""
    path = edge.runtime.data_dir / "clips" / f"{clip_id}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    encrypt_bytes(mp4.read_bytes(), path, edge.runtime.clip_key)
    edge.runtime.review.add_clip(clip_written(path, clip_id, plain=mp4.read_bytes(), **kwargs))
    return path


def review(edge: LiveEdge) -> ReviewStore:
    return edge.runtime.review


def flushed_audit(edge: LiveEdge) -> list[AuditEntry]:
    """The audit log after the server has stopped: refusals are counted in memory and written at the latest
    when the service stops."""
    edge.server.stop()
    return review(edge).list_audit()


# -- playback -------------------------------------------------------------------------------------
C = CHUNK_BYTES  # the plaintext chunk of the clip encryption


@pytest.mark.parametrize(("header", "status", "span"), [
    (None, 200, None),
    ("bytes=0-99", 206, (0, 99)),  # first bytes
    ("bytes=60000-100000", 206, (60000, 100000)),  # middle, across a 64 KiB chunk boundary
    ("bytes=0-0", 206, (0, 0)),
    (f"bytes={C - 1}-{C}", 206, (C - 1, C)),  # the last byte of one chunk and the first of the next
    (f"bytes={C}-{2 * C - 1}", 206, (C, 2 * C - 1)),  # exactly the second chunk
    (f"bytes={C - 7}-{2 * C + 13}", 206, (C - 7, 2 * C + 13)),  # three chunks, odd ends
    ("bytes=12345-12345", 206, (12345, 12345)),  # one odd byte
    ("bytes=-1", 206, "last"),
    ("bytes=-500", 206, "suffix"),
    ("bytes=1000-", 206, "open"),
    ("bytes={size}-", 416, None),  # wholly past the end
    ("bytes=-0", 416, None),
    ("bytes=oops", 200, None),  # malformed: ignored
])
def test_range_requests_return_the_file_slice_and_are_audited(
        edge: LiveEdge, mp4: Path, header: str | None, status: int, span: Any) -> None:
    # given a clip, stored encrypted
    add_clip(edge, mp4, "c1")
    data = mp4.read_bytes()
    size = len(data)
    assert size > 2 * C + 13
    first, last = {"suffix": (size - 500, size - 1), "open": (1000, size - 1), None: (0, size - 1),
                   "last": (size - 1, size - 1)}.get(span, span)
    headers = dict(CO)
    if header is not None:
        headers["Range"] = header.format(size=size)
    # when the compliance officer requests it
    response = httpx.get(f"{edge.http}/api/clips/c1/video", headers=headers)
    # then the status, headers and bytes match the requested slice of the file
    assert response.status_code == status, response.text
    [entry] = review(edge).list_audit(clip_id="c1")
    assert (entry.actor, entry.action) == ("compliance-1", "play")
    if status == 416:
        assert response.headers["content-range"] == f"bytes */{size}"
        assert response.json()["detail"]["code"] == "range_not_satisfiable"
        assert entry.outcome == "unsatisfiable"
        return
    assert response.content == data[first:last + 1]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(last - first + 1)
    assert entry.outcome == "ok"
    if status == 206:
        assert response.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert entry.detail == f"bytes {first}-{last}/{size}"
    else:
        assert "content-range" not in response.headers
        assert entry.detail == f"full {size} bytes"


def test_the_whole_body_is_a_playable_h264_clip_and_the_token_may_ride_in_the_query(edge: LiveEdge,
                                                                                    mp4: Path) -> None:
    # given a clip, when a <video> element fetches its video_url with ?token=
    add_clip(edge, mp4, "c1")
    listed = httpx.get(f"{edge.http}/api/clips", headers=CO).json()
    response = httpx.get(f"{edge.http}{listed[0]['video_url']}?token={COMPLIANCE_TOKEN}")
    # then it decodes as H.264 with all its frames
    assert response.status_code == 200
    with av.open(io.BytesIO(response.content), mode="r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert len(list(container.decode(stream))) == 12
    # and a token in the query never reaches the audit log
    assert httpx.get(f"{edge.http}/api/clips", params={"token": COMPLIANCE_TOKEN, "limit": 5}).status_code == 200
    details = [e.detail for e in review(edge).list_audit()]
    assert details[0] == "1 clip(s); limit=5 offset=0"
    assert all(COMPLIANCE_TOKEN not in d for d in details)


def sealed_offset(chunk: int) -> int:
    """An offset inside the ciphertext of plaintext chunk ``chunk`` of a stored clip."""
    return HEADER_BYTES + chunk * (C + TAG_BYTES) + 1000


@pytest.mark.parametrize(("where", "whole_refused"), [
    (3, True),  # the header (chunk size)
    (sealed_offset(0) + 5, True),  # the first chunk
    (sealed_offset(1), False),  # a middle chunk: the whole file starts streaming, then breaks off
    (-1, True),  # the last byte (the final chunk's tag)
])
def test_a_changed_byte_in_a_stored_clip_gives_an_error_never_other_bytes(edge: LiveEdge, mp4: Path, where: int,
                                                                          whole_refused: bool) -> None:
    # given a stored clip with one byte changed on disk
    path = add_clip(edge, mp4, "c1")
    stored = bytearray(path.read_bytes())
    stored[where] ^= 0x01
    path.write_bytes(bytes(stored))
    chunk = 0 if where in (3, sealed_offset(0) + 5) else 1 if where == sealed_offset(1) else len(stored) // (C + 16)
    # when a range inside the changed chunk is requested, then it is refused before any byte: a shaped 500,
    # audited as damaged
    response = httpx.get(f"{edge.http}/api/clips/c1/video",
                         headers={**CO, "Range": f"bytes={chunk * C + 10}-{chunk * C + 20}"})
    assert response.status_code == 500 and response.json()["detail"]["code"] == "clip_damaged"
    assert review(edge).list_audit(clip_id="c1")[0].outcome == "damaged"
    # and the whole file is either refused the same way or cut off before its end: never a complete body
    if whole_refused:
        whole = httpx.get(f"{edge.http}/api/clips/c1/video", headers=CO)
        assert whole.status_code == 500 and whole.json()["detail"]["code"] == "clip_damaged"
    else:
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{edge.http}/api/clips/c1/video", headers=CO)
    # while a range of undamaged chunks of a file with an intact end still plays
    first_chunk = httpx.get(f"{edge.http}/api/clips/c1/video", headers={**CO, "Range": "bytes=0-99"})
    if chunk == 1:
        assert first_chunk.status_code == 206 and first_chunk.content == mp4.read_bytes()[:100]
    else:
        assert first_chunk.status_code == 500 and first_chunk.json()["detail"]["code"] == "clip_damaged"


@pytest.mark.parametrize(("token", "status", "actor"), [
    (None, 401, "anonymous"),
    ("not-a-token", 401, "anonymous"),
    (LOBBY_TOKEN, 403, "lobby-1"),
    (ENROLLER_TOKEN, 403, "enroller-1"),
    (IT_TOKEN, 403, "it-1"),
    (OTHER_BRANCH_TOKEN, 403, "compliance-other"),  # right role, wrong branch
])
def test_a_refused_request_on_every_clip_endpoint_is_audited_and_changes_nothing(
        edge: LiveEdge, mp4: Path, token: str | None, status: int, actor: str) -> None:
    # given a clip
    add_clip(edge, mp4, "c1")
    headers = {} if token is None else auth(token)
    requests = [("GET", "/api/clips", None, "list"), ("GET", "/api/clips/c1", None, "view"),
                ("GET", "/api/clips/c1/video", None, "play"),
                ("POST", "/api/clips/c1/verdict", {"verdict": "violation", "notes": ""}, "verdict"),
                ("POST", "/api/clips/c1/hold", {"hold": True}, "hold"), ("GET", "/api/audit", None, "audit_list")]
    for method, path, body, _ in requests:
        # when a token without the compliance role (or none) calls it
        response = httpx.request(method, f"{edge.http}{path}", headers=headers, json=body)
        # then it is refused with a shaped error
        assert response.status_code == status, (path, response.text)
        assert response.json()["detail"]["code"] == ("unauthorised" if status == 401 else "forbidden")
    # and every refusal was audited (in aggregate, written when the service stops at the latest) with the
    # actor, the action, the clip and the count
    entries = flushed_audit(edge)
    assert sorted((e.actor, e.action, e.outcome, e.clip_id) for e in entries) == sorted(
        (actor, action, "refused", "c1" if "/c1" in path else None) for _, path, _, action in requests)
    assert all(e.detail.startswith(f"{status} ") and ": 1 request(s) from 127.0.0.1" in e.detail for e in entries)
    # and nothing changed
    clip = review(edge).get_clip("c1")
    assert clip is not None and clip.verdict is None and not clip.hold


def test_admin_passes_and_unknown_clips_are_404_and_audited(edge: LiveEdge, mp4: Path) -> None:
    add_clip(edge, mp4, "c1")
    assert httpx.get(f"{edge.http}/api/clips/c1", headers=auth(ADMIN_TOKEN)).json()["id"] == "c1"
    for path in ("/api/clips/nope", "/api/clips/nope/video"):
        response = httpx.get(f"{edge.http}{path}", headers=CO)
        assert response.status_code == 404 and response.json()["detail"]["code"] == "not_found"
    assert [(e.action, e.outcome) for e in review(edge).list_audit(clip_id="nope")] == [
        ("play", "not_found"), ("view", "not_found")]


# -- verdicts and holds ---------------------------------------------------------------------------
def test_a_verdict_is_recorded_audited_and_becomes_the_current_verdict(edge: LiveEdge, mp4: Path) -> None:
    # given a clip already judged once
    add_clip(edge, mp4, "c1")
    httpx.post(f"{edge.http}/api/clips/c1/verdict", headers=CO, json={"verdict": "needs_follow_up"})
    # when the compliance officer records a violation
    response = httpx.post(f"{edge.http}/api/clips/c1/verdict", headers=CO,
                          json={"verdict": "violation", "notes": "未唱收唱付"})
    # then it is returned with 201
    assert response.status_code == 201, response.text
    verdict = response.json()
    assert (verdict["verdict"], verdict["notes"], verdict["by"], verdict["clip_id"]) == (
        "violation", "未唱收唱付", "compliance-1", "c1")
    # and it is the clip's current verdict, in the clip and in the filtered list
    assert httpx.get(f"{edge.http}/api/clips/c1", headers=CO).json()["verdict"] == verdict
    listed = httpx.get(f"{edge.http}/api/clips", headers=CO, params={"verdict": "violation"}).json()
    assert [c["id"] for c in listed] == ["c1"]
    assert httpx.get(f"{edge.http}/api/clips", headers=CO, params={"verdict": "needs_follow_up"}).json() == []
    # and both verdicts are in the audit log
    actions = [(e.action, e.actor) for e in review(edge).list_audit(clip_id="c1") if e.action == "verdict"]
    assert actions == [("verdict", "compliance-1")] * 2


@pytest.mark.parametrize(("body", "field"), [
    ({"verdict": "great"}, "verdict"),
    ({}, "verdict"),
    ({"verdict": "compliant", "notes": "x" * 2001}, "notes"),
    ({"verdict": "compliant", "notes": 5}, "notes"),
    ({"verdict": "compliant", "by": "someone-else"}, "by"),  # extra fields are refused
    ("not json", "body"),
])
def test_a_bad_verdict_body_is_a_shaped_422_and_nothing_is_written(edge: LiveEdge, mp4: Path, body: Any,
                                                                    field: str) -> None:
    add_clip(edge, mp4, "c1")
    if isinstance(body, str):
        response = httpx.post(f"{edge.http}/api/clips/c1/verdict", content=body,
                              headers={**CO, "Content-Type": "application/json"})
    else:
        response = httpx.post(f"{edge.http}/api/clips/c1/verdict", headers=CO, json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["code"] == "bad_request" and field in detail["message"] and detail["field"] == field
    assert review(edge).list_verdicts("c1") == []
    assert review(edge).list_audit() == []


def test_a_verdict_on_an_unknown_clip_is_404(edge: LiveEdge) -> None:
    response = httpx.post(f"{edge.http}/api/clips/nope/verdict", headers=CO, json={"verdict": "compliant"})
    assert response.status_code == 404
    assert [(e.action, e.outcome) for e in review(edge).list_audit()] == [("verdict", "not_found")]


def test_hold_release_and_an_expired_clip(edge: LiveEdge, mp4: Path) -> None:
    # given a clip
    path = add_clip(edge, mp4, "c1")
    # when it is put on hold, then the clip says so and the hold is audited
    held = httpx.post(f"{edge.http}/api/clips/c1/hold", headers=CO, json={"hold": True})
    assert held.status_code == 200 and held.json()["hold"] is True
    assert httpx.post(f"{edge.http}/api/clips/c1/hold", headers=CO, json={"hold": "maybe"}).status_code == 422
    released = httpx.post(f"{edge.http}/api/clips/c1/hold", headers=CO, json={"hold": False})
    assert released.json()["hold"] is False
    assert [e.action for e in review(edge).list_audit(clip_id="c1")] == ["release", "hold"]
    # when retention expires it
    review(edge).expire_clip(clip_id="c1", ended_before=datetime.now(UTC), at=datetime.now(UTC),
                             remove=remove_clip_file)
    assert not path.exists()
    # then the row stays, without a video url; playing is 410 and holding 409, both audited
    clip = httpx.get(f"{edge.http}/api/clips/c1", headers=CO).json()
    assert (clip["expired"], clip["video_url"]) == (True, None)
    gone = httpx.get(f"{edge.http}/api/clips/c1/video", headers=CO)
    assert gone.status_code == 410 and gone.json()["detail"]["code"] == "expired"
    late = httpx.post(f"{edge.http}/api/clips/c1/hold", headers=CO, json={"hold": True})
    assert late.status_code == 409 and late.json()["detail"]["code"] == "expired"
    outcomes = [(e.action, e.outcome) for e in review(edge).list_audit(clip_id="c1")][:3]
    assert outcomes == [("hold", "conflict"), ("play", "gone"), ("view", "ok")]


# -- listing --------------------------------------------------------------------------------------
# T0 = 2026-03-02 01:00 UTC = 09:00 Shanghai. c-late starts 16:30 UTC, i.e. 00:30 on 03-03 in Shanghai.


@pytest.mark.parametrize(("params", "expected"), [
    ({}, ["c-late", "c-u1", "c-b1", "c-a2", "c-a1"]),
    ({"date_from": "2026-03-02", "date_to": "2026-03-02"}, ["c-u1", "c-b1", "c-a2", "c-a1"]),  # local day
    ({"date_from": "2026-03-03"}, ["c-late"]),  # 16:30 UTC on 03-02 is 03-03 in Shanghai
    ({"date_to": "2026-03-01"}, []),
    ({"date_from": "2026-03-02T11:00:00", "date_to": "2026-03-02T12:00:00+08:00"}, ["c-a2"]),  # end exclusive
    ({"date_from": "2026-03-02T03:00:00Z", "date_to": "2026-03-02T12:00:01"}, ["c-b1", "c-a2"]),
    ({"staff_id": "staff-b"}, ["c-late", "c-b1"]),
    ({"camera_id": "counter-2"}, ["c-u1", "c-b1"]),
    ({"min_duration_s": 90, "max_duration_s": 300}, ["c-b1", "c-a2"]),
    ({"camera_id": "counter-1", "staff_id": "staff-a", "max_duration_s": 100}, ["c-a1"]),
    ({"verdict": "none", "limit": 2, "offset": 1}, ["c-u1", "c-b1"]),
])
def test_list_filters(edge: LiveEdge, mp4: Path, params: dict[str, Any], expected: list[str]) -> None:
    # given five clips
    for clip_id, started, duration, camera, staff in CLIPS:
        add_clip(edge, mp4, clip_id, started_at=started, duration_s=duration, camera_id=camera, staff_id=staff)
    # when listed with filters
    response = httpx.get(f"{edge.http}/api/clips", headers=CO, params=params)
    # then exactly the expected clips, newest first, with their public fields
    assert response.status_code == 200, response.text
    assert [c["id"] for c in response.json()] == expected
    for c in response.json():
        assert c["video_url"] == f"/api/clips/{c['id']}/video" and c["verdict"] is None and not c["expired"]
        assert len(c["sha256"]) == 64 and c["size_bytes"] > 0
    # and the listing is audited
    [entry] = review(edge).list_audit()
    assert (entry.action, entry.outcome, entry.actor) == ("list", "ok", "compliance-1")


@pytest.mark.parametrize(("params", "code"), [
    ({"date_from": "yesterday"}, "bad_date"),
    ({"date_to": "2026-02-30"}, "bad_date"),
    ({"date_from": "2026-03-03", "date_to": "2026-03-02"}, "bad_range"),
    ({"min_duration_s": 60, "max_duration_s": 30}, "bad_range"),
    ({"min_duration_s": -1}, "bad_request"),
    ({"limit": 0}, "bad_request"),
    ({"limit": 501}, "bad_request"),
    ({"offset": -1}, "bad_request"),
    ({"verdict": "great"}, "bad_request"),
])
def test_bad_list_queries_are_a_shaped_422(edge: LiveEdge, params: dict[str, Any], code: str) -> None:
    response = httpx.get(f"{edge.http}/api/clips", headers=CO, params=params)
    assert response.status_code == 422
    assert response.json()["detail"]["code"] == code and response.json()["detail"]["message"]


def test_the_audit_log_is_newest_first_and_reading_it_is_audited(edge: LiveEdge, mp4: Path) -> None:
    add_clip(edge, mp4, "c1")
    httpx.get(f"{edge.http}/api/clips/c1/video", headers={**CO, "Range": "bytes=0-9"})
    httpx.get(f"{edge.http}/api/clips/c1", headers=CO)
    rows = httpx.get(f"{edge.http}/api/audit", headers=CO).json()
    assert [(r["action"], r["outcome"], r["actor"]) for r in rows] == [
        ("view", "ok", "compliance-1"), ("play", "ok", "compliance-1")]
    assert [r["detail"] for r in httpx.get(f"{edge.http}/api/audit", headers=CO,
                                           params={"clip_id": "c1", "limit": 1, "offset": 1}).json()] == [
        f"bytes 0-9/{mp4.stat().st_size}"]
    assert review(edge).list_audit(limit=1)[0].action == "audit_list"


# -- statistics -----------------------------------------------------------------------------------
def test_stats_per_staff_and_shanghai_hour(edge: LiveEdge) -> None:
    # given interactions at 09:05, 09:20 and 10:30 Shanghai time, one by unidentified staff, on two cameras
    store = review(edge)
    store.add_interaction(interaction("i1", T0 + timedelta(minutes=5), duration_s=60.0, wait_s=10.0))
    store.add_interaction(interaction("i2", T0 + timedelta(minutes=20), duration_s=180.0, wait_s=30.0))
    store.add_interaction(interaction("i3", T0 + timedelta(minutes=90), staff_id=None, duration_s=40.0))
    store.add_interaction(interaction("i4", T0 + timedelta(minutes=95), camera_id="counter-2"))
    store.add_unattended(camera_id="counter-1", customer_track=9, vip_id=None, zone="waiting", waited_s=61.0,
                         at=T0 + timedelta(minutes=45), alert_id=None)
    # when the lobby manager reads the day's statistics of counter-1
    response = httpx.get(f"{edge.http}/api/stats", headers=auth(LOBBY_TOKEN),
                         params={"date_from": "2026-03-02", "date_to": "2026-03-02", "camera_id": "counter-1"})
    # then hours are Shanghai hours and the medians are right
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from"], body["to"], body["timezone"]) == (
        "2026-03-02T00:00:00+08:00", "2026-03-03T00:00:00+08:00", "Asia/Shanghai")
    assert body["by_staff_hour"] == [
        {"staff_id": "staff-a", "hour": "2026-03-02T09:00:00+08:00", "interactions": 2, "median_service_s": 120.0,
         "median_wait_s": 20.0, "ongoing": 0, "interrupted": 0},
        {"staff_id": None, "hour": "2026-03-02T10:00:00+08:00", "interactions": 1, "median_service_s": 40.0,
         "median_wait_s": None, "ongoing": 0, "interrupted": 0},
    ]
    assert [(h["hour"], h["interactions"], h["unattended"]) for h in body["by_hour"]] == [
        ("2026-03-02T09:00:00+08:00", 2, 1), ("2026-03-02T10:00:00+08:00", 1, 0)]
    assert [(s["staff_id"], s["interactions"]) for s in body["by_staff"]] == [("staff-a", 2), (None, 1)]
    # and the previous local day holds none of it
    empty = httpx.get(f"{edge.http}/api/stats", headers=CO, params={"date_to": "2026-03-01"}).json()
    assert (empty["by_hour"], empty["from"]) == ([], "2026-03-01T00:00:00+08:00")


@pytest.mark.parametrize(("token", "params", "status", "code"), [
    (ENROLLER_TOKEN, {}, 403, "forbidden"),
    (None, {}, 401, "unauthorised"),
    (COMPLIANCE_TOKEN, {"date_from": "2026-03-02", "date_to": "2026-03-01"}, 422, "bad_range"),
    (LOBBY_TOKEN, {"date_from": "2024-01-01", "date_to": "2026-01-01"}, 422, "range_too_long"),
    (LOBBY_TOKEN, {"date_from": "soon"}, 422, "bad_date"),
])
def test_stats_refusals(edge: LiveEdge, token: str | None, params: dict[str, str], status: int,
                        code: str) -> None:
    response = httpx.get(f"{edge.http}/api/stats", headers={} if token is None else auth(token), params=params)
    assert response.status_code == status and response.json()["detail"]["code"] == code
    refused = [e for e in flushed_audit(edge) if e.outcome == "refused"]
    assert [e.action for e in refused] == (["stats"] if status in (401, 403) else [])


def test_stats_default_to_today(edge: LiveEdge) -> None:
    review(edge).add_interaction(interaction("now", datetime.now(UTC), duration_s=None))
    body = httpx.get(f"{edge.http}/api/stats", headers=auth(ADMIN_TOKEN)).json()
    today = datetime.now(SHANGHAI).date().isoformat()
    assert body["from"] == f"{today}T00:00:00+08:00"
    assert [s["interactions"] for s in body["by_staff"]] == [1]
