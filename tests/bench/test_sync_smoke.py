"""Smoke test of ``python -m bench.sync``: a tiny run (a few edges, a few changes, a small snapshot) against the real
console on PostgreSQL and the real Mosquitto, checking the JSON's keys and that the numbers come from a real run
(every simulated edge got every change; the box applied the whole snapshot). Not the targets: the bench reports
whatever the machine does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.console.conftest import pg_problem

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.usefixtures("photos_dir")  # fetched once, cached for the bench's own process
def test_sync_bench_writes_every_key_from_a_real_run(tmp_path: Path) -> None:
    if pg_problem():
        pytest.skip(str(pg_problem()))
    out = tmp_path / "sync.json"
    done = subprocess.run([sys.executable, "-m", "bench.sync", "--json", str(out), "--edges", "4", "--changes", "2",
                           "--repeats", "1", "--event-edges", "2", "--events-per-edge", "600",
                           "--snapshot-persons", "120", "--snapshot-repeats", "2", "--poll-s", "5",
                           "--workdir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    for key in ("propagation_p50_s", "propagation_p95_s", "propagation_mqtt_p95_s", "events_per_s",
                "snapshot_100k_s"):
        assert isinstance(result[key], float) and result[key] > 0, key
    # every person's photo went over the wire (base64 in the JSON; gzip shrinks the shared photo's repeats)
    assert result["snapshot_100k_json_bytes"] > 120 * result["photo_bytes"] * 4 / 3 > result["snapshot_100k_bytes"] > 0
    for run in result["runs"]["longpoll"] + result["runs"]["mqtt"]:
        assert run["samples"] == 4 * 2 and run["missing"] == 0
    # every person at the console, and a repeat pulls the same persons (not 120 more)
    assert len(result["runs"]["snapshot"]) == 2
    for snapshot in result["runs"]["snapshot"]:
        assert snapshot["applied"] and snapshot["gallery_size"] == 120 + 2 * 2
    assert result["runs"]["events"][0]["stored"] == 2 * 600
    assert "propagation_mqtt_p95_s" in done.stdout and "snapshot_100k_s" in done.stdout
