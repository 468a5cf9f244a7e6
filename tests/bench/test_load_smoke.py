"""Smoke test of ``python -m bench.load``: a tiny run against a real service, checking the JSON's keys and shape
(not the targets: the bench reports whatever the service does)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.usefixtures("photos_dir")  # fetched once, cached for the bench's own process
def test_load_writes_every_key_from_a_live_service(tmp_path: Path) -> None:
    # given a tiny load: one camera, three terminals, five seconds
    out = tmp_path / "load.json"
    # when the bench runs as a command
    done = subprocess.run([sys.executable, "-m", "bench.load", "--json", str(out), "--seconds", "5",
                           "--terminals", "3", "--cameras", "1", "--enrol-every", "1.5", "--grace", "5",
                           "--workdir", str(tmp_path / "work")],
                          cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    # then every key is there with its type, and the numbers come from a real run
    assert result["terminals"] == 3
    assert result["terminals_connected"] == 3
    for key in ("alerts_sent", "alerts_lost", "crashes", "http_5xx", "deliveries", "reconnects"):
        assert isinstance(result[key], int) and result[key] >= 0, key
    assert result["push_p95_s"] is None or isinstance(result["push_p95_s"], float)
    assert result["server_rss_mb_max"] > 50  # the service process really ran (dlib and ONNX loaded)
    assert result["enrolments"]["attempted"] >= 1
    assert set(result["cameras"]) == {"entrance-1"} and result["cameras"]["entrance-1"]["frames"] > 0
    assert "created_at" in result["push_clock"]
    assert isinstance(result["alerts_lost_by_terminal"], dict)
    assert "alerts_lost" in done.stdout and "push_p95_s" in done.stdout  # the printed table
    assert (tmp_path / "work" / "edge" / "service-1.log").is_file()
