"""Versioned, atomic saves of the edge config: each save keeps the file it replaced, validates with the config
models before writing, records who saved and the diff, keeps the last N, and rolls back in one step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.calibrate.camera_yaml import set_camera
from edge.calibrate.versions import ConfigVersions
from edge.errors import ConfigError
from tests.edge.conftest import config_dict

CAMERA = {"id": "counter-1", "name": "1号柜台", "role": "counter", "source": {"url": "dir:frames"}}


def write_config(tmp_path: Path, cameras: list[dict[str, Any]]) -> Path:
    path = tmp_path / "smartbranch.yaml"
    text = "# branch box config, kept by hand\n" + yaml.safe_dump(config_dict(tmp_path / "data", cameras),
                                                                  allow_unicode=True, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def waiting(points: list[list[float]]) -> dict[str, Any]:
    return {**CAMERA, "counter": {"waiting_zones": [{"name": "等候区", "points": points}]}}


SQUARE = [[760.0, 600.0], [1280.0, 600.0], [1280.0, 720.0], [760.0, 720.0]]


def test_set_camera_replaces_one_entry_and_keeps_the_comments(tmp_path: Path) -> None:
    # Given a config with a comment and two cameras
    other = {"id": "entrance-1", "role": "entrance", "source": {"url": "dir:frames"}}
    text = write_config(tmp_path, [CAMERA, other]).read_text(encoding="utf-8")
    # When the counter camera gets a waiting zone
    new = set_camera(text, waiting(SQUARE))
    # Then exactly that camera changed, the other and the comment are kept
    data = yaml.safe_load(new)
    assert data["cameras"][0] == waiting(SQUARE)
    assert data["cameras"][1] == other
    assert new.startswith("# branch box config, kept by hand\n")


def test_set_camera_appends_a_new_camera(tmp_path: Path) -> None:
    text = write_config(tmp_path, [CAMERA]).read_text(encoding="utf-8")
    added = {"id": "lobby-1", "role": "lobby", "source": {"url": "rtsp://10.0.0.9/main"}}
    data = yaml.safe_load(set_camera(text, added))
    assert [c["id"] for c in data["cameras"]] == ["counter-1", "lobby-1"]
    assert data["cameras"][1] == added


def test_set_camera_into_an_empty_camera_list(tmp_path: Path) -> None:
    text = write_config(tmp_path, []).read_text(encoding="utf-8")
    data = yaml.safe_load(set_camera(text, CAMERA))
    assert data["cameras"] == [CAMERA]


def test_a_save_writes_a_version_with_user_and_diff_and_rolls_back(tmp_path: Path) -> None:
    # Given a config file and its version store
    path = write_config(tmp_path, [CAMERA])
    original = path.read_text(encoding="utf-8")
    versions = ConfigVersions(path, keep=5)
    # When it-1 saves a waiting zone
    saved = versions.save(set_camera(original, waiting(SQUARE)), user="it-1", summary="counter-1: zones")
    # Then the file holds it, loads with the zone, and two versions exist: the original and the save
    assert saved.config.cameras[0].counter is not None
    assert saved.config.cameras[0].counter.waiting_zones[0].name == "等候区"
    listed = versions.history()
    assert [v.version for v in listed] == [2, 1]
    assert listed[0].user == "it-1" and listed[0].summary == "counter-1: zones"
    assert "+" in saved.diff and "等候区" in saved.diff
    # When it rolls back to version 1
    back = versions.rollback(1, user="admin")
    # Then the file is the original text again, saved as version 3
    assert path.read_text(encoding="utf-8") == original
    assert back.version == 3 and back.config.cameras[0].counter is None
    assert "-" in back.diff and "等候区" in back.diff
    assert versions.history()[0].summary.startswith("rollback to version 1")


def test_an_invalid_config_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    # Given a saved config
    path = write_config(tmp_path, [CAMERA])
    before = path.read_text(encoding="utf-8")
    versions = ConfigVersions(path, keep=5)
    # When a save would put a two-point waiting zone into it
    bad = set_camera(before, waiting([[0.0, 0.0], [10.0, 10.0]]))
    with pytest.raises(ConfigError, match="waiting_zones"):
        versions.save(bad, user="it-1", summary="bad")
    # Then the file is unchanged and no version was recorded
    assert path.read_text(encoding="utf-8") == before
    assert versions.history() == []


def test_only_the_last_n_versions_are_kept(tmp_path: Path) -> None:
    path = write_config(tmp_path, [CAMERA])
    versions = ConfigVersions(path, keep=3)
    for i in range(5):
        cam = {**CAMERA, "name": f"柜台{i}"}
        versions.save(set_camera(path.read_text(encoding="utf-8"), cam), user="it-1", summary=f"save {i}")
    assert [v.version for v in versions.history()] == [6, 5, 4]
    with pytest.raises(ConfigError, match="version 1"):
        versions.rollback(1, user="it-1")


def test_an_edit_made_outside_is_kept_as_its_own_version(tmp_path: Path) -> None:
    # Given one save through the store, then a hand edit of the file
    path = write_config(tmp_path, [CAMERA])
    versions = ConfigVersions(path, keep=10)
    versions.save(set_camera(path.read_text(encoding="utf-8"), {**CAMERA, "name": "A"}), user="it-1", summary="a")
    hand = set_camera(path.read_text(encoding="utf-8"), {**CAMERA, "name": "by hand"})
    path.write_text(hand, encoding="utf-8")
    # When the next save comes through the store
    versions.save(set_camera(hand, {**CAMERA, "name": "B"}), user="it-1", summary="b")
    # Then the hand edit is a version of its own, so a rollback can return to it
    listed = versions.history()
    assert [v.summary for v in listed[:2]] == ["b", "changed outside the calibration page"]
    versions.rollback(listed[1].version, user="it-1")
    assert path.read_text(encoding="utf-8") == hand
