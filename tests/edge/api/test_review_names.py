"""The review API speaks in names: staff, VIP customer and camera by name beside their ids, filters by name,
and a clip's whole verdict history."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.config import EdgeConfig, hash_token
from edge.store.db import Person, Store
from tests.edge.api.test_review_api import CO, COMPLIANCE_TOKEN, add_clip, auth
from tests.edge.conftest import LOBBY_TOKEN, LiveEdge, config_dict
from tests.edge.review_helpers import CLIPS, write_h264


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_h264(tmp_path_factory.mktemp("clips") / "master.mp4", frames=4)


@pytest.fixture()
def edge(make_config: Callable[..., EdgeConfig], live_edge: Callable[..., LiveEdge], tmp_path: Path) -> LiveEdge:
    """A live edge with two named counter cameras (counter-2 without a name) and a compliance token."""
    tokens = config_dict(tmp_path)["auth"]["tokens"] + [
        {"name": "compliance-1", "sha256": hash_token(COMPLIANCE_TOKEN), "roles": ["compliance"]}]
    (tmp_path / "frames").mkdir()
    cameras = [{"id": "counter-1", "name": "1号柜台", "role": "counter", "source": {"url": f"dir:{tmp_path}/frames"}},
               {"id": "counter-2", "role": "counter", "source": {"url": f"dir:{tmp_path}/frames"}}]
    return live_edge(make_config(cameras, auth={"tokens": tokens}))


def enrol(store: Store, name: str, role: str) -> Person:
    with store.session() as s, s.begin():
        return store.add_person(s, name=name, tier="钻石" if role == "vip" else "柜员", role=role, consent="test",
                                photo=b"jpeg", photo_sha256="0" * 64, model_id="m")


def five_clips(edge: LiveEdge, mp4: Path) -> dict[str, str]:
    """CLIPS with staff-a → 拜登 (staff), staff-b → Li Wei (staff); c-b1's customer is the VIP 王建国, c-a1's a
    VIP whose person was deleted. Returns the name → person id map."""
    store = edge.runtime.store
    ids = {name: enrol(store, name, role).id for name, role in (("拜登", "staff"), ("Li Wei", "staff"),
                                                                 ("王建国", "vip"))}
    staff = {"staff-a": ids["拜登"], "staff-b": ids["Li Wei"]}
    vips = {"c-b1": ids["王建国"], "c-a1": "f" * 32}
    for clip_id, started, duration, camera, staff_id in CLIPS:
        add_clip(edge, mp4, clip_id, started_at=started, duration_s=duration, camera_id=camera,
                 staff_id=None if staff_id is None else staff[staff_id], vip_id=vips.get(clip_id))
    return ids


def test_clips_carry_names_beside_ids(edge: LiveEdge, mp4: Path) -> None:
    ids = five_clips(edge, mp4)
    listed = {c["id"]: c for c in httpx.get(f"{edge.http}/api/clips", headers=CO).json()}
    b1, a1, u1 = listed["c-b1"], listed["c-a1"], listed["c-u1"]
    # the ids stay where they were; the names stand beside them
    assert (b1["camera_id"], b1["camera_name"]) == ("counter-2", "counter-2")  # no configured name: its id
    assert (a1["camera_id"], a1["camera_name"]) == ("counter-1", "1号柜台")
    p = b1["participants"]
    assert (p["staff_id"], p["staff_name"], p["vip_id"], p["vip_name"]) == (ids["Li Wei"], "Li Wei", ids["王建国"],
                                                                            "王建国")
    # a VIP whose person is gone and an unidentified staff member have no name, never an id in its place
    assert (a1["participants"]["vip_id"], a1["participants"]["vip_name"]) == ("f" * 32, None)
    assert (u1["participants"]["staff_id"], u1["participants"]["staff_name"]) == (None, None)
    assert u1["participants"]["vip_name"] is None and u1["participants"]["customer_track"] == 2
    # and one clip says the same
    assert httpx.get(f"{edge.http}/api/clips/c-b1", headers=CO).json() == b1


@pytest.mark.parametrize(("params", "expected"), [
    ({"staff_name": "拜登"}, ["c-a2", "c-a1"]),
    ({"staff_name": "li w"}, ["c-late", "c-b1"]),  # substring, case-insensitive
    ({"staff_name": "  WEI "}, ["c-late", "c-b1"]),
    ({"staff_name": "王建国"}, []),  # a VIP is not staff of any clip
    ({"vip_name": "建国"}, ["c-b1"]),
    ({"camera_name": "1号柜台"}, ["c-late", "c-a2", "c-a1"]),
    ({"camera_name": "柜台"}, ["c-late", "c-a2", "c-a1"]),
    ({"camera_name": "COUNTER-2"}, ["c-u1", "c-b1"]),  # an unnamed camera is found by its id
    ({"camera_name": "2号柜台"}, []),
    ({"camera_name": "1号", "staff_name": "li"}, ["c-late"]),
    ({"staff_name": "nobody"}, []),
])
def test_list_filters_by_name(edge: LiveEdge, mp4: Path, params: dict[str, Any], expected: list[str]) -> None:
    five_clips(edge, mp4)
    response = httpx.get(f"{edge.http}/api/clips", headers=CO, params=params)
    assert response.status_code == 200, response.text
    assert [c["id"] for c in response.json()] == expected
    # and the audit row names the filters
    [entry] = edge.runtime.review.list_audit()
    assert entry.action == "list" and all(f"{k}=" in entry.detail for k in params)


def test_a_name_filter_longer_than_a_name_is_a_shaped_422(edge: LiveEdge) -> None:
    response = httpx.get(f"{edge.http}/api/clips", headers=CO, params={"staff_name": "x" * 129})
    assert response.status_code == 422 and response.json()["detail"]["code"] == "bad_request"


def test_the_verdict_history_lists_every_verdict_oldest_first(edge: LiveEdge, mp4: Path) -> None:
    # given a clip judged twice
    add_clip(edge, mp4, "c1")
    assert httpx.get(f"{edge.http}/api/clips/c1/verdicts", headers=CO).json() == []
    first = httpx.post(f"{edge.http}/api/clips/c1/verdict", headers=CO,
                       json={"verdict": "needs_follow_up", "notes": "看不清"}).json()
    second = httpx.post(f"{edge.http}/api/clips/c1/verdict", headers=CO, json={"verdict": "compliant"}).json()
    # when its history is read, then both, oldest first, with who, when and notes
    response = httpx.get(f"{edge.http}/api/clips/c1/verdicts", headers=CO)
    assert response.status_code == 200
    assert response.json() == [first, second]
    assert [(v["verdict"], v["by"], v["notes"]) for v in response.json()] == [
        ("needs_follow_up", "compliance-1", "看不清"), ("compliant", "compliance-1", "")]
    # and reading it is audited
    assert [(e.action, e.detail) for e in edge.runtime.review.list_audit(clip_id="c1", limit=1)] == [
        ("view", "verdict history: 2")]


def test_the_verdict_history_of_an_unknown_clip_is_404_and_needs_compliance(edge: LiveEdge) -> None:
    missing = httpx.get(f"{edge.http}/api/clips/nope/verdicts", headers=CO)
    assert missing.status_code == 404 and missing.json()["detail"]["code"] == "not_found"
    refused = httpx.get(f"{edge.http}/api/clips/nope/verdicts", headers=auth(LOBBY_TOKEN))
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "forbidden"
