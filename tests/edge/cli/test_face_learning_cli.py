"""``smartbranch faces shots list|undo`` and ``faces adaptation`` against a running box (real HTTP server)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from edge.cli.main import main
from edge.config import EdgeConfig, load_config
from edge.faces.tracks import LiveShot
from edge.faces.vip_rule import Sighting
from edge.faces.visit_shots import record_consent_purposes
from tests.edge.conftest import ENROLLER_TOKEN, IT_TOKEN, LiveEdge, config_dict
from vision.engines.base import FaceEngine
from vision.enrolment import embed_photo
from vision.types import FaceQuality, Match

GOOD = FaceQuality(score=0.9, size_px=150, size=1.0, blur=1.0, sharpness=80.0, pose=1.0, yaw=0.05, detector=1.2)


@pytest.fixture()
def config(tmp_path: Path) -> EdgeConfig:
    path = tmp_path / "smartbranch.yaml"
    face = {"visit_shots": {"enabled": True}}
    path.write_text(yaml.safe_dump(config_dict(tmp_path / "data", face=face), allow_unicode=True), encoding="utf-8")
    return load_config(path)


def test_shots_are_listed_and_undone_and_the_adaptation_shown_in_chinese_and_english(
        config: EdgeConfig, live_edge: Callable[..., LiveEdge], engine: FaceEngine,
        photo_bytes: Callable[[str], bytes], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # given a running box with a VIP and one confirmed visit's shot
    edge = live_edge(config)
    runtime = edge.runtime
    vip = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama2.jpg"), consent="同意")
    record_consent_purposes(runtime.store, vip.id, {"visit_template"})  # the console's consent
    vector = embed_photo(engine, photo_bytes("obama.jpg"))
    assert vector is not None
    shot = LiveShot(vip.id, vector, GOOD, 0.975, 0.5)
    alert = runtime.vip_rule.identified(Sighting("door", "正门", 1, Match(vip.id, 0.975, 0.5, 3), datetime.now(UTC),
                                                 datetime.now(UTC), 0.0, shot))
    assert alert is not None and runtime.hub.ack(alert.id, "lobby-1") is not None
    [kept] = runtime.visit_shots.of_person(vip.id)
    config_path = str(Path(config.paths.data_dir).parent / "smartbranch.yaml")
    service = ["--config", config_path, "--url", edge.http]
    monkeypatch.setenv("SMARTBRANCH_TOKEN", ENROLLER_TOKEN)
    # when the shots are listed, then the one is shown with who confirmed it
    assert main(["faces", "shots", "list", "--person", vip.id, *service]) == 0
    out = capsys.readouterr().out
    assert kept.id in out and "确认人 lobby-1" in out
    # when it is undone, then it is gone
    assert main(["--lang", "en", "faces", "shots", "undo", "--id", kept.id, *service]) == 0
    assert f"live shot {kept.id}" in capsys.readouterr().out
    assert runtime.visit_shots.of_person(vip.id) == []
    assert main(["faces", "shots", "list", "--person", vip.id, *service]) == 0
    assert "没有" in capsys.readouterr().out
    # and an unknown shot, or no token, is a clear refusal
    assert main(["faces", "shots", "undo", "--id", "nope", *service]) == 2
    assert "HTTP 404" in capsys.readouterr().err
    monkeypatch.setenv("SMARTBRANCH_TOKEN", IT_TOKEN)
    assert main(["faces", "adaptation", *service]) == 0
    assert "未启用" in capsys.readouterr().out
    monkeypatch.delenv("SMARTBRANCH_TOKEN")
    assert main(["faces", "adaptation", *service]) == 2
    assert "SMARTBRANCH_TOKEN" in capsys.readouterr().err
