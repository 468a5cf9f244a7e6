"""A camera with a ``lens:`` section: its pipeline sees undistorted frames, from maps built once per camera
config; a bad lens section is refused by the config; a frame the lens does not fit passes through raw."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from calibration.lens import LensModel, find_board, render_checkerboard, synthetic_poses, undistort_maps
from edge.cameras.config import CameraConfig
from edge.cameras.undistort import FrameUndistorter, LensConfig
from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from vision.engines.owner import EnginePool
from vision.types import Frame

SIZE = (960, 540)
LENS = LensModel(fx=700.0, fy=700.0, cx=480.0, cy=270.0, dist=(-0.3, 0.1, 0.0, 0.0, 0.0), image_size=SIZE, rms=0.2)


def _row_bend(corners: np.ndarray) -> float:
    """The largest sideways spread of a board row about its best straight line (pixels)."""
    rows = corners.reshape(6, 9, 2)
    return max(float(np.linalg.svd(row - row.mean(axis=0), compute_uv=False)[1]) for row in rows)


@pytest.fixture()
def camera_with_lens(tmp_path: Path, make_config: Callable[..., EdgeConfig],
                     engine_pool: EnginePool) -> Iterator[tuple[EdgeRuntime, np.ndarray]]:
    frames = tmp_path / "frames"
    frames.mkdir()
    [(rvec, tvec)] = synthetic_poses(LENS, 1, seed=5)
    raw, _ = render_checkerboard(LENS, rvec, tvec, seed=1)
    for i in range(3):
        cv2.imwrite(str(frames / f"f{i}.png"), raw)
    camera: dict[str, Any] = {"id": "door", "role": "entrance", "lens": LENS.to_config(),
                              "source": {"url": f"dir:{frames}", "fps": 5, "loop": True}}
    runtime = EdgeRuntime(make_config([camera]), engine=engine_pool)
    yield runtime, raw
    runtime.stop()


def test_given_a_camera_with_a_lens_when_it_runs_then_the_pipeline_sees_undistorted_frames_from_maps_built_once(
        camera_with_lens: tuple[EdgeRuntime, np.ndarray]) -> None:
    runtime, raw = camera_with_lens
    [worker] = runtime.workers
    raw_corners = find_board(raw)
    assert raw_corners is not None and _row_bend(raw_corners) > 2.0  # the lens bends the board's rows
    runtime.start()
    deadline = time.monotonic() + 60
    while worker.processed < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker.processed >= 4
    newest = worker.tap.newest()
    assert newest is not None
    np.testing.assert_array_equal(newest.frame.image, undistort_maps(LENS).apply(raw))
    seen = find_board(newest.frame.image)
    assert seen is not None and _row_bend(seen) < 0.5  # straight again
    assert worker.undistorter is not None and worker.undistorter.maps_built == 1


def test_given_a_frame_of_another_aspect_ratio_when_undistorted_then_it_passes_through_raw() -> None:
    undistort = FrameUndistorter(LensConfig(**LENS.to_config()), camera_id="door")
    frame = Frame(camera_id="door", index=1, captured_at=datetime.now(UTC), t_mono=0.0,
                  image=np.full((480, 640, 3), 90, np.uint8))
    assert undistort(frame) is frame
    half = Frame(camera_id="door", index=2, captured_at=datetime.now(UTC), t_mono=0.0,
                 image=np.full((270, 480, 3), 90, np.uint8))
    assert undistort(half).image.shape == (270, 480, 3)  # a sub-stream of the same shape: the lens is scaled
    assert undistort.maps_built == 1


@pytest.mark.parametrize(("lens", "message"), [
    ({**LENS.to_config(), "cx": 5000.0}, "principal point"),
    ({**LENS.to_config(), "dist": [0.1, 0.0]}, "dist"),
    ({**LENS.to_config(), "fx": 0.0}, "fx"),
    ({**LENS.to_config(), "colour": "red"}, "colour"),
])
def test_given_a_bad_lens_section_then_the_camera_config_is_refused_with_the_reason(
        lens: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CameraConfig.model_validate({"id": "door", "role": "entrance", "source": {"url": "usb:0"}, "lens": lens})


def test_given_nearest_interpolation_in_the_lens_section_then_frames_are_remapped_without_blending() -> None:
    undistort = FrameUndistorter(LensConfig(**LENS.to_config(), interpolation="nearest"), camera_id="door")
    [(rvec, tvec)] = synthetic_poses(LENS, 1, seed=5)
    raw, _ = render_checkerboard(LENS, rvec, tvec, seed=1)
    frame = Frame(camera_id="door", index=1, captured_at=datetime.now(UTC), t_mono=0.0, image=raw)
    np.testing.assert_array_equal(undistort(frame).image, undistort_maps(LENS).apply(raw, nearest=True))
