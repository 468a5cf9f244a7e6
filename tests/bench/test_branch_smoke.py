"""Smoke test of ``python -m bench.branch``: a tiny run of the eight cameras, checking the JSON's keys and shape
(not the targets: the bench reports whatever the box does)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("cameras", "fps_per_camera_min", "fps_per_camera_median", "alert_latency_p95_s", "arrivals_alerted",
        "interactions_detected", "cpu_percent", "static_cpu_percent_per_camera")


@pytest.mark.slow
@pytest.mark.usefixtures("photos_dir", "person_detector")  # fetched once, cached for the bench's own process
def test_branch_writes_every_key_for_eight_cameras(tmp_path: Path) -> None:
    # given eight cameras on 6 s videos and a 4 s still phase, gated only
    out = tmp_path / "branch.json"
    # when the bench runs as a command
    done = subprocess.run([sys.executable, "-m", "bench.branch", "--json", str(out), "--seconds", "6",
                           "--static-seconds", "4", "--gating", "on"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    # then every key is there, for the eight cameras of a branch, from a real run
    for key in KEYS:
        assert key in result, key
    assert result["cameras"] == 8
    run = result["gated"]
    assert set(run["fps_per_camera"]) == {"door", "lobby-1", "lobby-2", "counter-1", "counter-2", "counter-3",
                                          "counter-4", "parking"}
    assert all(fps > 0 for fps in run["fps_per_camera"].values())
    assert run["arrivals"] == 1 and isinstance(run["arrivals_alerted"], int)
    assert {"entrance", "lobby", "counter", "parking"} <= set(run["stage_ms_by_role"])
    assert "detect_ms" in run["stage_ms_by_role"]["entrance"] and "persons_ms" in run["stage_ms_by_role"]["counter"]
    assert set(run["scheduler_wait_ms_per_frame"]) == set(run["fps_per_camera"])
    assert set(result["static"]["gate"]) == set(run["fps_per_camera"])
    assert "fps min / median" in done.stdout  # the printed table
