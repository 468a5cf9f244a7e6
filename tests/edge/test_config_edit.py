"""Writing calibrated face.voter values into a YAML config in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config_edit import set_voter_values
from edge.errors import ConfigError

VALUES = {"threshold": 0.9123, "min_margin": 0.02, "min_votes": 2}
BRANCH = "# the box at Pudong\nbranch: {id: b1}  # keep\n"


@pytest.mark.parametrize(
    ("body", "comments_kept"),
    [
        ("face:\n  engine: {type: dlib}\n  voter:\n    threshold: 0.96   # measured\n    min_votes: 1\n", True),
        ("face:\n  voter: {threshold: 0.96, min_margin: 0.0}\n", True),
        ("face:\n  voter: {}\n", True),
        ("face:\n  engine:\n    type: dlib\n", True),
        ("server: {port: 8000}\n", True),
        ("face: {engine: {type: dlib}}\n", True),
        ("", True),
        # an anchor shared by two values cannot be edited in place: rewritten, comments lost, still right
        ("face:\n  voter: {threshold: &t 0.5, min_margin: *t}\n", False),
    ],
    ids=["block-voter", "flow-voter", "empty-voter", "no-voter", "no-face", "flow-face", "branch-only", "alias"],
)
def test_values_are_written_and_the_file_still_loads(body: str, comments_kept: bool, tmp_path: Path) -> None:
    # given a config laid out this way
    path = tmp_path / "smartbranch.yaml"
    path.write_text(BRANCH + body, encoding="utf-8")
    # when the calibrated values are written
    result = set_voter_values(path, VALUES)
    # then the file loads with them, and keeps its comments where it can
    voter = result.config.face.voter
    assert (voter.threshold, voter.min_margin, voter.min_votes) == (0.9123, 0.02, 2)
    assert result.comments_kept is comments_kept
    assert path.read_text(encoding="utf-8").startswith(BRANCH) is comments_kept
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_value_the_config_refuses_is_never_written(tmp_path: Path) -> None:
    # given a valid config, when a threshold out of range would be written
    path = tmp_path / "smartbranch.yaml"
    path.write_text(BRANCH, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"refusing to write .*smartbranch.yaml.*threshold"):
        set_voter_values(path, {"threshold": 5.0})
    # then the file is unchanged and no temporary file is left
    assert path.read_text(encoding="utf-8") == BRANCH
    assert [p.name for p in tmp_path.iterdir()] == ["smartbranch.yaml"]


@pytest.mark.parametrize(("text", "message"), [("branch: [unclosed\n", "not valid YAML"), (None, "cannot read")])
def test_unusable_files_are_reported(text: str | None, message: str, tmp_path: Path) -> None:
    path = tmp_path / "smartbranch.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        set_voter_values(path, VALUES)
