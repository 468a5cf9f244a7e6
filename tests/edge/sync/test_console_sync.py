"""The edge against a real console over loopback HTTP: registration by code, a VIP enrolled at the console applied
at the edge, scope, erasure and its confirmation, another model's edge embedding the photos itself, the console
going away and coming back, and a revoked token. Real photos, the real dlib engine pool (shared by both sides)."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from edge.api.app import create_app
from edge.cli.main import main
from edge.config import EdgeConfig, load_config
from edge.runtime import EdgeRuntime
from edge.sync.apply import GalleryApplier
from edge.sync.changes import parse_answer
from edge.sync.client import ConsoleClient
from edge.sync.credentials import read_credentials, token_path
from edge.sync.tables import StagedPersonRow
from tests.edge.conftest import IT_TOKEN
from tests.edge.sync.live_console import LiveConsole, live_console
from tests.waiting import wait_for
from vision.engines.base import FaceEngine
from vision.engines.owner import EnginePool
from vision.enrolment import embed_photo

__all__ = ["live_console"]  # the fixture, imported for pytest

SYNC = {"long_poll_s": 2, "status_interval_s": 1}


@pytest.fixture()
def edge_yaml(make_config: Callable[..., EdgeConfig], tmp_path: Path) -> Path:
    make_config(sync=SYNC)
    return tmp_path / "smartbranch.yaml"


@pytest.fixture()
def boxes(engine_pool: EnginePool) -> Iterator[Callable[[Path], EdgeRuntime]]:
    started: list[EdgeRuntime] = []

    def start(path: Path) -> EdgeRuntime:
        runtime = EdgeRuntime(load_config(path), engine=engine_pool)
        started.append(runtime)
        runtime.start()
        return runtime
    yield start
    for runtime in started:
        runtime.stop()


def register(edge_yaml: Path, console: LiveConsole, code: str) -> int:
    return main(["edge", "register", "--config", str(edge_yaml), "--console", console.url, "--code", code])


def best(runtime: EdgeRuntime, engine: FaceEngine, photo: bytes) -> str | None:
    vector = embed_photo(engine, photo)
    assert vector is not None
    [result] = runtime.gallery.search(vector[None, :], k=1)
    return result.hits[0].person_id if result.hits and result.hits[0].score > 0.9 else None


def applied(runtime: EdgeRuntime, version: int) -> Callable[[], bool]:
    return lambda: runtime.sync is not None and runtime.sync.applier.version >= version


def test_register_writes_the_token_encrypted_and_the_url_into_the_yaml(
        live_console: LiveConsole, edge_yaml: Path, engine_pool: EnginePool,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = edge_yaml.read_text(encoding="utf-8")
    # when the box redeems a code of branch A001
    last_code = [live_console.code("A001")]
    assert register(edge_yaml, live_console, last_code[0]) == 0
    # then it says which branch it joined, in Chinese
    assert "已加入网点 A001 支行（A001）" in capsys.readouterr().out
    # the YAML gained sync.console_url and kept everything else; the token is not in it
    config = load_config(edge_yaml)
    assert config.sync.console_url == live_console.url and config.sync.long_poll_s == 2
    after = edge_yaml.read_text(encoding="utf-8")
    assert yaml.safe_load(after) == {**yaml.safe_load(before), "sync": {**SYNC, "console_url": live_console.url}}
    # the token file is 0600 and encrypted: readable only with the data key
    path = token_path(config.paths.data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    runtime = EdgeRuntime(config, engine=engine_pool)  # the session's pool: no dlib loaded for this test
    try:
        creds = read_credentials(config.paths.data_dir, runtime.data.key.fernet)
    finally:
        runtime.stop()
    assert creds is not None and creds.branch_code == "A001" and creds.token not in after
    assert creds.token.encode() not in path.read_bytes()
    assert live_console.edge(int(creds.edge_id)).revoked_at is None
    # and the code is spent: a second use is refused and changes nothing
    code_again = main(["edge", "register", "--config", str(edge_yaml), "--console", live_console.url, "--code",
                       last_code[0]])
    assert code_again == 2 and edge_yaml.read_text(encoding="utf-8") == after


def test_a_bad_code_or_an_unreachable_console_writes_nothing(
        live_console: LiveConsole, edge_yaml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = edge_yaml.read_text(encoding="utf-8")
    data_dir = load_config(edge_yaml).paths.data_dir
    assert register(edge_yaml, live_console, "ABCD-EFGH") == 2
    assert "注册码无效" in capsys.readouterr().err
    live_console.stop()
    assert register(edge_yaml, live_console, live_console.code("A001")) == 2
    assert "无法连接控制台" in capsys.readouterr().err
    assert edge_yaml.read_text(encoding="utf-8") == before
    assert not token_path(data_dir).exists()


def test_a_console_vip_reaches_his_branch_only_and_his_erasure_is_confirmed(
        live_console: LiveConsole, edge_yaml: Path, boxes: Callable[[Path], EdgeRuntime], engine: FaceEngine,
        photo_bytes: Callable[[str], bytes]) -> None:
    assert register(edge_yaml, live_console, live_console.code("A001")) == 0
    obama = live_console.enrol("奥巴马", [photo_bytes("obama.jpg"), photo_bytes("obama2.jpg")], ("A001",),
                               plates=("京A12345",))
    biden = live_console.enrol("拜登", [photo_bytes("biden.jpg")], ("B001",))
    runtime = boxes(edge_yaml)
    assert runtime.sync is not None
    version = live_console_version(live_console)
    wait_for(applied(runtime, version), what="the first snapshot")
    # then A's VIP is in the store with his card photo and plate, and the gallery finds him in another photo
    person = runtime.store.get_person(obama)
    assert person is not None and person.name == "奥巴马"
    assert runtime.store.person_photo(obama) == photo_bytes("obama.jpg")
    assert runtime.plates.matcher.match("京A12345").person_id == obama
    assert best(runtime, engine, photo_bytes("obama3.jpg")) == obama
    # B's VIP never arrives
    assert runtime.store.get_person(biden) is None and biden not in runtime.gallery.persons
    # the console knows what the box applied
    wait_for(lambda: live_console.edge(1).gallery_version == version, what="the status report")
    # when the console erases him
    erased_at = live_console.erase(obama)
    wait_for(applied(runtime, erased_at), what="the erasure")
    assert runtime.store.get_person(obama) is None and runtime.store.person_photos(obama) == []
    assert obama not in runtime.gallery.persons and best(runtime, engine, photo_bytes("obama.jpg")) is None
    assert runtime.plates.matcher.match("京A12345").person_id is None
    # and the box confirms it: the console audits erasure_confirmed
    wait_for(lambda: obama in live_console.confirmed_erasures(), what="the erasure confirmation")
    wait_for(lambda: runtime.sync is not None and runtime.sync.applier.erased_pending() == [], what="pending cleared")


def live_console_version(console: LiveConsole) -> int:
    from console.sync.feed import current_version

    with console.ctx.db.transaction() as session:
        return current_version(session)


def test_an_edge_of_another_model_gets_photos_and_embeds_them_itself(
        live_console: LiveConsole, edge_yaml: Path, engine_pool: EnginePool, engine: FaceEngine,
        photo_bytes: Callable[[str], bytes]) -> None:
    assert register(edge_yaml, live_console, live_console.code("A001")) == 0
    obama = live_console.enrol("奥巴马", [photo_bytes("obama.jpg")], ("A001",))
    config = load_config(edge_yaml)
    runtime = EdgeRuntime(config, engine=engine_pool)
    try:
        creds = read_credentials(config.paths.data_dir, runtime.data.key.fernet)
        assert creds is not None
        client = ConsoleClient(live_console.url, creds.token)
        # when the box asks as an edge of another model, the console sends the photos and no template
        body: dict[str, Any] = client.gallery(since=0, model_id="insightface-buffalo_l", wait_s=0, limit=50)
        assert body["persons"][0]["template"] is None and body["persons"][0]["photos"]
        applier = GalleryApplier(store=runtime.store, data_dir=runtime.data_dir, gallery=runtime.gallery,
                                 engine=runtime.engine, enroller=runtime.enroller, plates=runtime.plates)
        applier.apply(parse_answer(body)[0])
        # then the box embedded them with its own engine, and finds him
        assert best(runtime, engine, photo_bytes("obama2.jpg")) == obama
        assert applier.embed_failures() == {}
    finally:
        runtime.stop()


def test_the_puller_backs_off_while_the_console_is_down_and_catches_up(
        live_console: LiveConsole, edge_yaml: Path, boxes: Callable[[Path], EdgeRuntime],
        photo_bytes: Callable[[str], bytes]) -> None:
    assert register(edge_yaml, live_console, live_console.code("A001")) == 0
    first = live_console.enrol("奥巴马", [photo_bytes("obama.jpg")], ("A001",))
    runtime = boxes(edge_yaml)
    assert runtime.sync is not None
    wait_for(lambda: runtime.store.get_person(first) is not None, what="the first VIP")
    # when the console goes away, the box keeps running and says it is retrying
    live_console.stop()
    wait_for(lambda: runtime.sync is not None and runtime.sync.status().state == "retrying", what="retrying")
    second = live_console.enrol("拜登", [photo_bytes("biden.jpg")], ("A001",))  # enrolled meanwhile
    # and when the console returns, the box catches up without a restart
    live_console.start()
    wait_for(lambda: runtime.store.get_person(second) is not None, what="the VIP enrolled during the outage")
    wait_for(lambda: runtime.sync is not None and runtime.sync.status().state == "ok", what="ok again")
    assert runtime.store.get_person(first) is not None


def test_a_revoked_box_says_so_in_its_health_and_keeps_its_gallery(
        live_console: LiveConsole, edge_yaml: Path, boxes: Callable[[Path], EdgeRuntime],
        photo_bytes: Callable[[str], bytes]) -> None:
    assert register(edge_yaml, live_console, live_console.code("A001")) == 0
    obama = live_console.enrol("奥巴马", [photo_bytes("obama.jpg")], ("A001",))
    runtime = boxes(edge_yaml)
    wait_for(lambda: runtime.store.get_person(obama) is not None, what="the VIP")
    live_console.revoke(1)
    wait_for(lambda: runtime.sync is not None and runtime.sync.status().state == "revoked", what="revoked")
    # /healthz says it: degraded for anyone, the reason for branch IT
    with TestClient(create_app(runtime, start_cameras=False)) as http:
        assert http.get("/healthz").json()["status"] == "degraded"
        sync = http.get("/healthz", headers={"Authorization": f"Bearer {IT_TOKEN}"}).json()["sync"]
    assert sync["state"] == "revoked" and "register" in sync["error"] and sync["branch"] == "A001"
    assert obama in runtime.gallery.persons  # the box keeps greeting with what it has


def test_a_box_that_was_off_during_changes_catches_up_before_its_cameras_start(
        live_console: LiveConsole, edge_yaml: Path, engine_pool: EnginePool, photo_bytes: Callable[[str], bytes],
        boxes: Callable[[Path], EdgeRuntime]) -> None:
    assert register(edge_yaml, live_console, live_console.code("A001")) == 0
    first = live_console.enrol("奥巴马", [photo_bytes("obama.jpg")], ("A001",))
    runtime = boxes(edge_yaml)
    assert runtime.store.get_person(first) is not None  # start() returned with the snapshot applied
    runtime.stop()
    # when three changes happen while the box is off
    second = live_console.enrol("拜登", [photo_bytes("biden.jpg")], ("A001",))
    live_console.erase(first)
    third = live_console.enrol("奥巴马（重新登记）", [photo_bytes("obama3.jpg")], ("A001",))
    version = live_console_version(live_console)
    # then, as soon as start() returns (before any camera frame), the box holds all three
    runtime = boxes(edge_yaml)
    assert runtime.sync is not None and runtime.sync.applier.version == version
    assert runtime.gallery.persons == {second, third}
    assert runtime.store.get_person(first) is None


def test_a_snapshot_of_several_pages_is_staged_and_applied_once(
        live_console: LiveConsole, make_config: Callable[..., EdgeConfig], tmp_path: Path,
        boxes: Callable[[Path], EdgeRuntime], photo_bytes: Callable[[str], bytes]) -> None:
    # given two VIPs of A at the console and a box that asks for one person per page
    make_config(sync={**SYNC, "page_limit": 1})
    edge_yaml = tmp_path / "smartbranch.yaml"
    assert register(edge_yaml, live_console, live_console.code("A001")) == 0
    people = {live_console.enrol(name, [photo_bytes(photo)], ("A001",))
              for name, photo in (("奥巴马", "obama.jpg"), ("拜登", "biden.jpg"))}
    # when the box starts (its first snapshot comes in pages)
    runtime = boxes(edge_yaml)
    # then every page arrived and the whole snapshot was applied at once, the stage emptied in that transaction
    assert runtime.sync is not None and runtime.sync.applier.version == live_console_version(live_console)
    assert runtime.gallery.persons == people and {p.id for p in runtime.store.list_persons()} == people
    with runtime.store.session() as s:
        assert s.scalar(select(func.count()).select_from(StagedPersonRow)) == 0
    # and the puller tells where the snapshot's time went, page by page (the benchmark reports it)
    assert runtime.sync.puller is not None
    timings = runtime.sync.puller.last_snapshot
    assert timings["pages"] == 2
    assert set(timings) >= {"first_page_s", "wait_page_s", "stage_s", "parse_s", "apply_s", "apply_cpu_s"}
    assert all(v >= 0 for v in timings.values())
