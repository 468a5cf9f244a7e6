"""Per-camera health in /metrics: processed fps, dropped frames, queue age and per-stage time, from cameras
that share the cores through the scheduler and play the real walk-in video in real time."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from edge.config import EdgeConfig
from tests.edge.conftest import LiveEdge
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


def sample(edge: LiveEdge, name: str, **labels: str) -> float:
    value = edge.runtime.metrics.registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} is not exported"
    return value


def test_each_camera_reports_fps_drops_queue_age_and_stages(
        make_config: Callable[..., EdgeConfig], live_edge: Callable[[EdgeConfig], LiveEdge],
        walk_in_video: Path) -> None:
    # given two entrance cameras on the walk-in video at 10 fps, motion-gated, sharing one slot
    cameras = [{"id": f"door{i}", "role": "entrance", "motion": {"enabled": True},
                "source": {"url": f"file:{walk_in_video}", "fps": 10}} for i in (1, 2)]
    edge = live_edge(make_config(cameras, scheduler={"slots": 1, "urgent_roles": ["entrance"]}))
    assert edge.runtime.scheduler is not None and edge.runtime.scheduler.slots == 1
    # when they play the video to the end
    edge.runtime.start()
    wait_for(lambda: edge.runtime.cameras_done, timeout_s=120, what="the cameras to finish the video")
    time.sleep(0.2)
    text = httpx.get(f"{edge.http}/metrics", timeout=5).text
    # then each camera's health is exported, consistent with what its worker and the scheduler counted
    granted = {s.camera_id: s.granted for s in edge.runtime.scheduler.stats()}
    # (the frames each camera asked for while a face of the video was being voted on went first)
    assert all(s.urgent >= 1 for s in edge.runtime.scheduler.stats()), edge.runtime.scheduler.stats()
    for worker in edge.runtime.workers:
        cam = worker.source.camera_id
        assert worker.processed > 0  # how many depends on how busy the machine is
        assert granted[cam] >= worker.processed
        assert sample(edge, "smartbranch_camera_processed_fps", camera=cam) > 0
        assert sample(edge, "smartbranch_queue_age_seconds_count", camera=cam) == granted[cam]
        # newest-wins: every frame the camera delivered was either processed or counted as dropped
        dropped = sample(edge, "smartbranch_frames_dropped_total", camera=cam)
        assert dropped == worker.source.health().frames - granted[cam]
        assert sample(edge, "smartbranch_stage_seconds_count", camera=cam, stage="motion") == worker.processed
        assert sample(edge, "smartbranch_stage_seconds_count", camera=cam, stage="detect") == worker.processed
        # and how the face detector looked (whole frame, regions or skipped) is counted once per processed frame
        looks = {s.labels["how"]: s.value for m in edge.runtime.metrics.registry.collect() for s in m.samples
                 if s.name == "smartbranch_detector_frames_total" and s.labels.get("camera") == cam
                 and s.labels.get("detector") == "faces"}
        assert sum(looks.values()) == worker.processed and looks.get("whole", 0) >= 1, looks
        for name in ("smartbranch_camera_processed_fps", "smartbranch_frames_dropped_total",
                     "smartbranch_queue_age_seconds_bucket"):
            assert f'{name}{{camera="{cam}"' in text
