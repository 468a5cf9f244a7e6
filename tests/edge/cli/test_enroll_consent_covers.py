"""``smartbranch enroll --consent-covers visit_template``: a box without a console records that the consent covers
template improvement from confirmed live visits; an unknown code is refused naming it, in the chosen language."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli.main import main
from edge.config import load_config
from edge.faces.visit_shots import consent_purposes
from edge.runtime import EdgeRuntime
from tests.edge.cli.test_cli import write_config


def _purposes(config: Path, person_id: str) -> frozenset[str]:
    runtime = EdgeRuntime(load_config(config))
    try:
        return consent_purposes(runtime.store, person_id)
    finally:
        runtime.stop()


def test_enroll_records_the_uses_the_consent_covers(tmp_path: Path, photos_dir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["--lang", "en", "enroll", "--config", str(config), "--name", "Obama", "--tier", "金卡",
                 "--photo", str(photos_dir / "obama.jpg"), "--consent", "书面同意 2026-11-28",
                 "--consent-covers", "visit_template"]) == 0
    person_id = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    assert _purposes(config, person_id) == {"enrolment", "visit_template"}


@pytest.mark.parametrize(("lang", "needle"), [("zh", "未知的同意用途代码 marketing"),
                                              ("en", "unknown consent purpose code marketing")])
def test_enroll_refuses_an_unknown_code_naming_it(lang: str, needle: str, tmp_path: Path, photos_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["--lang", lang, "enroll", "--config", str(config), "--name", "Obama", "--tier", "金卡",
                 "--photo", str(photos_dir / "obama.jpg"), "--consent", "c", "--consent-covers", "marketing"]) == 2
    assert needle in capsys.readouterr().err
