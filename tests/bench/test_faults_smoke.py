"""Smoke test of ``python -m bench.faults`` on one scenario, checking the JSON's keys and shape (not the
targets: the bench reports whatever the service does)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_KEYS = {"name", "fault", "expect", "passed", "skipped", "crashes", "alerts_lost", "half_written",
                 "refused_to_start", "crash_details", "alerts_lost_details", "half_written_details", "problems",
                 "details"}


@pytest.mark.slow
@pytest.mark.usefixtures("photos_dir")  # fetched once, cached for the bench's own process
def test_faults_writes_every_key_from_a_live_service(tmp_path: Path) -> None:
    # given one scenario: the data key changed between two runs of a service with a camera and terminals
    out = tmp_path / "faults.json"
    # when the bench runs as a command
    done = subprocess.run([sys.executable, "-m", "bench.faults", "--json", str(out), "--only", "wrong_key",
                           "--workdir", str(tmp_path / "work")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    # then the totals and the scenario's row are there, with their types
    for key in ("crashes", "alerts_lost", "half_written", "refused_to_start_correctly"):
        assert isinstance(result[key], int) and result[key] >= 0, key
    assert result["should_refuse"] == 1
    (row,) = result["scenarios"]
    assert set(row) == SCENARIO_KEYS
    assert row["name"] == "wrong_key" and row["expect"] == "refuse" and row["skipped"] is None
    assert isinstance(row["passed"], bool) and isinstance(row["refused_to_start"], bool)
    assert result["refused_to_start_correctly"] == int(row["refused_to_start"])
    # the service ran twice at least (the first run, then the wrong key), and each run left its log
    assert (tmp_path / "work" / "wrong-key" / "service-2.log").is_file()
    assert "refusal" in row["details"] or row["problems"]  # it refused (with a message) or says it did not
    assert "refused_to_start_correctly" in done.stdout
