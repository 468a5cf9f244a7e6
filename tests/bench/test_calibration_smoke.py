"""Smoke test of ``python -m bench.calibration``: the JSON has every key with its type, and the lens is recovered
from rendered boards (correctness, not speed; the preview figure is measured by its own bench)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_calibration_bench_writes_every_key(tmp_path: Path) -> None:
    out = tmp_path / "calibration.json"
    done = subprocess.run([sys.executable, "-m", "bench.calibration", "--json", str(out), "--repeats", "5",
                           "--views", "6", "--trials", "1", "--skip-preview"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    for key in ("undistort_ms_720p", "undistort_ms_720p_1thread", "undistort_cpu_ms_720p",
                "undistort_ms_720p_nearest", "undistort_cpu_ms_720p_nearest", "undistort_maps_build_ms"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert result["preview_fps_drop_pct"] is None and "skipped" in result["preview_reason"]
    assert result["lens_fx_err_pct"] < 1 and result["lens_fy_err_pct"] < 1 and result["lens_k1_abs_err"] < 0.02
    assert result["lens_boards_found_min"] == 6
    assert "undistort_ms_720p" in done.stdout and "lens_k1_abs_err" in done.stdout
