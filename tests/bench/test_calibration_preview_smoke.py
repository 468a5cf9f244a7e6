"""Smoke test of ``python -m bench.calibration_preview``: one short off/on pair on the real camera writes every key,
and the viewer did receive preview frames (correctness of the measurement, not its figure)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_preview_bench_writes_every_key(tmp_path: Path) -> None:
    out = tmp_path / "preview.json"
    done = subprocess.run([sys.executable, "-m", "bench.calibration_preview", "--seconds", "6", "--pairs", "1",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert isinstance(result["preview_fps_drop_pct"], float)
    assert result["fps_off"] > 0 and result["fps_on"] > 0
    assert result["preview_fps"] > 0, "the viewer received no preview frame"
    assert result["viewer_errors"] == [] and result["pairs"] == 1 and len(result["drops_pct"]) == 1
    assert result["preview_cpu_ms_per_frame"] > 0 and result["preview_cpu_pct_of_core"] > 0
    assert "preview_fps_drop_pct" in done.stdout
