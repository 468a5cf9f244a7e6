"""load_config: one strict pydantic tree from YAML; every bad config names the offending field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.cameras.config import SourceConfig
from edge.config import EdgeConfig, load_config
from edge.errors import ConfigError
from vision.engines.registry import build_engine
from vision.types import Image

MINIMAL = "branch:\n  id: sh-001\n"


def _write(tmp_path: Path, text: str, name: str = "smartbranch.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _camera(cam_id: str = "door", url: str = "rtsp://10.0.0.5/stream1", **extra: Any) -> dict[str, Any]:
    return {"id": cam_id, "role": "entrance", "source": {"url": url}, **extra}


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, allow_unicode=True)


def test_minimal_config_loads_with_defaults(tmp_path: Path) -> None:
    # given a config naming only the branch
    path = _write(tmp_path, MINIMAL)
    # when loaded
    config = load_config(path)
    # then every section has its defaults
    assert isinstance(config, EdgeConfig)
    assert config.branch.id == "sh-001" and config.cameras == []
    assert config.face.engine.type == "dlib" and config.face.engine.min_face_px == 80
    assert config.face.voter.threshold == 0.9585
    assert config.rules.vip_arrival.cooldown_s == 600.0
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8000)
    assert config.auth.tokens == []


def test_default_voter_threshold_is_the_calibrated_one() -> None:
    # given the model defaults (no file at all), then the VIP threshold is the calibrated 0.9585
    assert EdgeConfig.model_validate({"branch": {"id": "b"}}).face.voter.threshold == 0.9585


def test_full_config_round_trips(tmp_path: Path) -> None:
    # given a config using every section, with unicode names
    data = {
        "branch": {"id": "sh-001", "name": "上海分行"},
        "cameras": [_camera("door", name="正门", zone=[[0, 0], [100, 0], [100, 100]]),
                    _camera("cnt", "usb:0", role="counter"),
                    _camera("lot", "file:clips/lot.mp4", role="parking", enabled=False),
                    _camera("dir", "dir:frames", role="lobby"),
                    _camera("hls", "https://cam.local/live.m3u8", role="lobby")],
        "face": {"engine": {"type": "dlib", "min_face_px": 40}, "voter": {"threshold": 0.9, "min_votes": 2}},
        "rules": {"vip_arrival": {"cooldown_s": 0}},
        "server": {"port": 9000},
        "paths": {"data_dir": "state"},
    }
    # when loaded
    config = load_config(_write(tmp_path, _dump(data)))
    # then the values and derived properties are as written
    assert [c.id for c in config.cameras] == ["door", "cnt", "lot", "dir", "hls"]
    assert [c.source.kind for c in config.cameras] == ["stream", "usb", "file", "dir", "stream"]
    assert config.cameras[0].display_name == "正门" and config.cameras[1].display_name == "cnt"
    assert config.cameras[0].zone == [(0, 0), (100, 0), (100, 100)]
    assert config.cameras[2].source.path == Path("clips/lot.mp4") and not config.cameras[2].enabled
    assert config.face.engine.min_face_px == 40 and config.face.voter.min_votes == 2
    assert config.rules.vip_arrival.cooldown_s == 0 and config.server.port == 9000


@pytest.mark.parametrize(
    ("data_dir", "expected"),
    [(None, "var"), ("state", "state"), ("./a/b", "a/b"), ("../shared-state", "../shared-state")],
    ids=["default", "relative", "dot-relative", "parent"],
)
def test_relative_data_dir_resolves_against_the_config_folder(tmp_path: Path, data_dir: str | None,
                                                              expected: str) -> None:
    # given a config in a sub-folder with a relative (or default) data_dir
    folder = tmp_path / "etc"
    folder.mkdir()
    text = MINIMAL + (f"paths:\n  data_dir: {data_dir}\n" if data_dir else "")
    # when loaded
    config = load_config(_write(folder, text))
    # then data_dir is absolute and relative to the config's folder, not the working directory
    assert config.paths.data_dir.is_absolute()
    assert config.paths.data_dir == (folder.resolve() / expected)


def test_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    # given an absolute data_dir, when loaded, then it is used as is
    target = tmp_path / "elsewhere"
    config = load_config(_write(tmp_path, MINIMAL + f"paths:\n  data_dir: {target}\n"))
    assert config.paths.data_dir == target


BAD_CONFIGS: list[tuple[str, str, list[str]]] = [
    ("empty-file", "", ["mapping"]),
    ("only-comment", "# nothing here\n", ["mapping"]),
    ("invalid-yaml", "branch: {id: b\ncameras: [\n", ["not valid YAML"]),
    ("tab-indent", "branch:\n\tid: b\n", ["not valid YAML"]),
    ("top-level-list", "- branch\n- cameras\n", ["mapping"]),
    ("top-level-scalar", "hello\n", ["mapping"]),
    ("no-branch", "cameras: []\n", ["branch", "Field required"]),
    ("unknown-top-level-key", MINIMAL + "camras: []\n", ["camras", "Extra inputs"]),
    ("unknown-nested-key", MINIMAL + "face:\n  voter:\n    threshhold: 0.9\n", ["face.voter.threshhold"]),
    ("unknown-engine-key", MINIMAL + "face:\n  engine:\n    type: dlib\n    min_face: 40\n",
     ["face.engine", "min_face", "Extra inputs"]),
    ("unknown-engine-type", MINIMAL + "face:\n  engine:\n    type: magic\n", ["face.engine", "magic"]),
    ("bad-branch-id", "branch:\n  id: 'sh 001/x'\n", ["branch.id"]),
    ("ftp-url", _dump({"branch": {"id": "b"}, "cameras": [_camera(url="ftp://x")]}),
     ["cameras.0.source.url", "ftp"]),
    ("rtsp-no-host", _dump({"branch": {"id": "b"}, "cameras": [_camera(url="rtsp://")]}),
     ["cameras.0.source.url", "no host"]),
    ("http-no-host", _dump({"branch": {"id": "b"}, "cameras": [_camera(url="http:///live")]}),
     ["cameras.0.source.url", "no host"]),
    ("usb-not-a-number", _dump({"branch": {"id": "b"}, "cameras": [_camera(url="usb:abc")]}),
     ["cameras.0.source.url", "usb:N"]),
    ("empty-url", _dump({"branch": {"id": "b"}, "cameras": [_camera(url="  ")]}),
     ["cameras.0.source.url", "empty"]),
    ("second-camera-bad", _dump({"branch": {"id": "b"}, "cameras": [_camera("a"), _camera("b", "ftp://x")]}),
     ["cameras.1.source.url"]),
    ("bad-role", _dump({"branch": {"id": "b"}, "cameras": [_camera(role="garage")]}), ["cameras.0.role"]),
    ("duplicate-camera-ids", _dump({"branch": {"id": "b"}, "cameras": [_camera("door"), _camera("door")]}),
     ["camera ids must be unique", "door"]),
    ("negative-cooldown", MINIMAL + "rules:\n  vip_arrival:\n    cooldown_s: -1\n",
     ["rules.vip_arrival.cooldown_s"]),
    ("threshold-above-1", MINIMAL + "face:\n  voter:\n    threshold: 1.5\n", ["face.voter.threshold"]),
    ("port-too-high", MINIMAL + "server:\n  port: 65536\n", ["server.port"]),
    ("port-negative", MINIMAL + "server:\n  port: -1\n", ["server.port"]),
    ("port-not-a-number", MINIMAL + "server:\n  port: eighty\n", ["server.port"]),
    ("bad-token-hash", MINIMAL + "auth:\n  tokens:\n  - {name: t, sha256: abc, roles: [admin]}\n",
     ["auth.tokens.0.sha256"]),
    ("bad-token-role", MINIMAL + f"auth:\n  tokens:\n  - {{name: t, sha256: {'a' * 64}, roles: [root]}}\n",
     ["auth.tokens.0.roles"]),
    ("negative-track-speed", MINIMAL + "face:\n  track_max_speed: -1\n", ["face.track_max_speed"]),
    ("negative-opencv-threads", MINIMAL + "scheduler:\n  opencv_threads: -2\n", ["scheduler.opencv_threads"]),
    ("too-many-decode-threads", _dump({"branch": {"id": "b"}, "cameras": [
        {"id": "door", "role": "entrance", "source": {"url": "rtsp://10.0.0.5/s", "decode_threads": 99}}]}),
     ["cameras.0.source.decode_threads"]),
]


@pytest.mark.parametrize(("text", "fields"), [(t, f) for _, t, f in BAD_CONFIGS], ids=[i for i, _, _ in BAD_CONFIGS])
def test_bad_configs_raise_config_error_naming_the_field(tmp_path: Path, text: str, fields: list[str]) -> None:
    # given a bad config file
    path = _write(tmp_path, text)
    # when loaded
    with pytest.raises(ConfigError) as info:
        load_config(path)
    # then ConfigError names the file and the offending field(s)
    message = str(info.value)
    assert str(path) in message
    for field in fields:
        assert field in message


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    # given a path with no file, when loaded, then ConfigError says it cannot be read and names the path
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="cannot read config") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_a_directory_is_a_config_error(tmp_path: Path) -> None:
    # given a folder instead of a file, when loaded, then ConfigError rather than a raw OSError
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path)


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    # given a config with three independent mistakes
    text = MINIMAL + "server:\n  port: 65536\nrules:\n  vip_arrival:\n    cooldown_s: -5\nextra: 1\n"
    # when loaded, then the message lists all three fields
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    for field in ("server.port", "rules.vip_arrival.cooldown_s", "extra"):
        assert field in str(info.value)


@pytest.mark.parametrize(
    ("url", "kind"),
    [("rtsp://user:pw@10.0.0.5:554/h264", "stream"), ("RTSP://cam/1", "stream"), ("rtsps://cam/1", "stream"),
     ("http://cam/mjpg", "stream"), ("usb:0", "usb"), ("usb:12", "usb"), ("file:/videos/a.mp4", "file"),
     ("/videos/a.mp4", "file"), ("videos/a.mp4", "file"), ("C:\\videos\\a.mp4", "file"), ("dir:/frames", "dir")],
)
def test_valid_source_urls(url: str, kind: str) -> None:
    # given a valid source url, when validated, then it is accepted with the right kind
    assert SourceConfig(url=url).kind == kind


def test_config_objects_are_frozen(tmp_path: Path) -> None:
    # given a loaded config, when a field is assigned, then pydantic refuses (configs are values)
    config = load_config(_write(tmp_path, MINIMAL))
    with pytest.raises(ValueError, match="frozen"):
        config.branch.id = "other"


def test_engine_section_builds_a_real_engine(tmp_path: Path, photo: Callable[[str], Image]) -> None:
    # given a config asking for 40 px faces
    config = load_config(_write(tmp_path, MINIMAL + "face:\n  engine:\n    type: dlib\n    min_face_px: 40\n"))
    # when the engine is built from its own sub-config (not the whole tree)
    engine = build_engine(config.face.engine)
    # then the real dlib engine honours it and finds the six faces of t1.jpg
    assert engine.min_face_px == 40 and engine.model_id == "dlib_resnet_v1_flip"
    assert len(engine.detect(photo("t1.jpg"))) == 6


def test_engine_type_may_be_left_out(tmp_path: Path) -> None:
    # given an engine section without `type`, when loaded, then it means the default dlib engine
    config = load_config(_write(tmp_path, MINIMAL + "face:\n  engine:\n    min_face_px: 40\n"))
    assert config.face.engine.type == "dlib" and config.face.engine.min_face_px == 40


@pytest.mark.parametrize(("voter", "ok"), [("", False), ("  voter:\n    threshold: 0.42\n", True)])
def test_another_engine_needs_its_own_threshold(tmp_path: Path, voter: str, ok: bool) -> None:
    # given the insightface engine, when no voter threshold is set, then the config is refused (0.96 is dlib's)
    text = MINIMAL + "face:\n  engine:\n    type: insightface\n    pack: buffalo_l\n    models_dir: /m\n" + voter
    if ok:
        assert load_config(_write(tmp_path, text)).face.voter.threshold == 0.42
    else:
        with pytest.raises(ConfigError, match="threshold"):
            load_config(_write(tmp_path, text))


def test_face_config_picks_the_engine_by_type(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from edge.faces.config import FaceConfig
    from vision.engines.insightface_engine import InsightFaceEngineConfig

    insight = FaceConfig.model_validate({"engine": {"type": "insightface", "models_dir": str(tmp_path)},
                                         "voter": {"threshold": 0.4}})
    assert isinstance(insight.engine, InsightFaceEngineConfig) and insight.engine.pack == "buffalo_l"
    assert FaceConfig.model_validate({"engine": {}}).engine.type == "dlib"
    with pytest.raises(ValidationError, match="max_upsample"):
        FaceConfig.model_validate({"engine": {"type": "insightface", "models_dir": "x", "max_upsample": 1},
                                   "voter": {"threshold": 0.4}})
