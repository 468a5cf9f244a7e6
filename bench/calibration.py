"""Calibration benchmark: what undistortion costs per 720p frame, how much a live preview slows a camera, and how
well the lens is recovered from rendered checkerboards.

    python -m bench.calibration --json OUT.json [--repeats 200] [--views 10] [--trials 3] [--preview-seconds 20]

- ``undistort_ms_720p``: median extra time per 1280x720 frame of the camera worker's undistortion step (one
  remap through tables built once, plus the new frame object), the step the pipeline pays before detection.
  Target <= 3 ms. ``undistort_ms_720p_1thread`` is the same with OpenCV on one thread (the worst case when the
  other cameras keep the cores busy); ``undistort_cpu_ms_720p`` is the step's CPU time on one thread, which
  a busy machine inflates far less than the wall time; ``undistort_maps_build_ms`` is the one-off cost per
  camera config. The ``_nearest`` figures are the same step with ``lens.interpolation: nearest``.
- ``preview_fps_drop_pct``: how much a 5 fps preview with overlays lowers one real camera's processed fps,
  measured side by side by ``bench.calibration_preview.measure_preview_drop`` (target <= 5); null with the
  reason when that measurement is not available.
- ``lens_fx_err_pct``, ``lens_fy_err_pct``, ``lens_k1_abs_err``: recovery of a known lens (fx 900, fy 905,
  k1 -0.28, k2 0.09, slight tangential terms) from ``--views`` rendered 1280x720 checkerboard views with sensor
  noise, through the same find_board + calibrate_lens the page and the CLI use. Each figure is the worst over
  ``--trials`` independent sets of views (targets: 1 % and 0.02); the medians are reported beside them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

from bench.common import median_ms, print_table, write_json
from calibration.lens import LensModel, calibrate_lens, find_board, render_checkerboard, synthetic_poses
from edge.cameras.undistort import FrameUndistorter, LensConfig
from vision.types import Frame

SIZE = (1280, 720)
TRUTH = LensModel(fx=900.0, fy=905.0, cx=652.0, cy=355.0, dist=(-0.28, 0.09, 0.0008, -0.0005, 0.0),
                  image_size=SIZE)


def _cpu_ms(step: Callable[[], object], repeats: int) -> float:
    """Median CPU time of ``step`` on this thread (OpenCV set to one thread by the caller)."""
    samples = []
    for _ in range(repeats):
        c0 = time.thread_time()
        step()
        samples.append((time.thread_time() - c0) * 1000)
    return statistics.median(samples)


def measure_undistort(repeats: int) -> dict[str, float]:
    """Per-frame cost of the worker's undistortion step on a 720p frame; maps are built once, beforehand."""
    [(rvec, tvec)] = synthetic_poses(TRUTH, 1, seed=1)
    image, _ = render_checkerboard(TRUTH, rvec, tvec, seed=1)
    frame = Frame(camera_id="bench", index=1, captured_at=datetime.now(UTC), t_mono=time.monotonic(), image=image)
    linear = FrameUndistorter(LensConfig(**TRUTH.to_config()), camera_id="bench")
    nearest = FrameUndistorter(LensConfig(**TRUTH.to_config(), interpolation="nearest"), camera_id="bench")
    t0 = time.perf_counter()
    linear(frame)  # builds the tables
    build_ms = (time.perf_counter() - t0) * 1000
    nearest(frame)
    threads = cv2.getNumThreads()
    result = {"undistort_ms_720p": median_ms(lambda: linear(frame), repeats, warmup=5),
              "undistort_ms_720p_nearest": median_ms(lambda: nearest(frame), repeats, warmup=5)}
    cv2.setNumThreads(1)
    try:
        result["undistort_ms_720p_1thread"] = median_ms(lambda: linear(frame), repeats, warmup=5)
        result["undistort_cpu_ms_720p"] = _cpu_ms(lambda: linear(frame), repeats)
        result["undistort_cpu_ms_720p_nearest"] = _cpu_ms(lambda: nearest(frame), repeats)
    finally:
        cv2.setNumThreads(threads)
    return {**result, "undistort_maps_build_ms": build_ms, "opencv_threads": float(threads)}


def measure_lens(views: int, trials: int) -> dict[str, Any]:
    fx_errs, fy_errs, k1_errs, rms, found = [], [], [], [], []
    for trial in range(trials):
        corners = []
        for i, (rvec, tvec) in enumerate(synthetic_poses(TRUTH, views, seed=100 + trial)):
            image, _ = render_checkerboard(TRUTH, rvec, tvec, seed=1000 * trial + i)
            c = find_board(image)
            if c is not None:
                corners.append(c)
        model = calibrate_lens(corners, image_size=SIZE)
        found.append(len(corners))
        fx_errs.append(abs(model.fx - TRUTH.fx) / TRUTH.fx * 100)
        fy_errs.append(abs(model.fy - TRUTH.fy) / TRUTH.fy * 100)
        k1_errs.append(abs(model.dist[0] - TRUTH.dist[0]))
        rms.append(model.rms)
    return {"lens_fx_err_pct": max(fx_errs), "lens_fy_err_pct": max(fy_errs), "lens_k1_abs_err": max(k1_errs),
            "lens_fx_err_pct_median": statistics.median(fx_errs), "lens_k1_abs_err_median": statistics.median(k1_errs),
            "lens_rms_px_median": statistics.median(rms), "lens_views": views, "lens_trials": trials,
            "lens_boards_found_min": min(found)}


def measure_preview(seconds: float) -> dict[str, Any]:
    try:
        from bench.calibration_preview import measure_preview_drop
    except ImportError as exc:
        return {"preview_fps_drop_pct": None, "preview_reason": f"bench.calibration_preview is not available: {exc}"}
    try:
        detail = measure_preview_drop(seconds)
    except Exception as exc:  # the other figures still stand; the reason is reported instead
        return {"preview_fps_drop_pct": None, "preview_reason": f"measurement failed: {type(exc).__name__}: {exc}"}
    return {"preview_fps_drop_pct": detail.get("preview_fps_drop_pct"), "preview": detail}


def _fmt(value: Any, digits: int = 2) -> str:
    return "null" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=200, help="frames timed per undistortion figure")
    parser.add_argument("--views", type=int, default=10, help="rendered checkerboard views per lens trial")
    parser.add_argument("--trials", type=int, default=3, help="independent lens trials")
    parser.add_argument("--preview-seconds", type=float, default=20.0, help="per side of the preview measurement")
    parser.add_argument("--skip-preview", action="store_true", help="report preview_fps_drop_pct as null")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    result.update(measure_undistort(args.repeats))
    result.update(measure_lens(args.views, args.trials))
    if args.skip_preview:
        result.update({"preview_fps_drop_pct": None, "preview_reason": "skipped (--skip-preview)"})
    else:
        result.update(measure_preview(args.preview_seconds))
    print_table([
        ("undistort_ms_720p", _fmt(result["undistort_ms_720p"]),
         f"median of {args.repeats}, OpenCV threads {int(result['opencv_threads'])} (target <= 3)"),
        ("undistort_ms_720p_1thread", _fmt(result["undistort_ms_720p_1thread"]), "OpenCV on one thread"),
        ("undistort_cpu_ms_720p", _fmt(result["undistort_cpu_ms_720p"]),
         "CPU time of the step on one thread (what it takes from the cores, whatever the load)"),
        ("undistort_ms_720p_nearest", _fmt(result["undistort_ms_720p_nearest"]),
         "lens.interpolation: nearest (wall time)"),
        ("undistort_cpu_ms_720p_nearest", _fmt(result["undistort_cpu_ms_720p_nearest"]), "its CPU time on one thread"),
        ("undistort_maps_build_ms", _fmt(result["undistort_maps_build_ms"]), "once per camera config"),
        ("preview_fps_drop_pct", _fmt(result["preview_fps_drop_pct"], 1),
         result.get("preview_reason", "5 fps preview with overlays, side by side (target <= 5)")),
        ("lens_fx_err_pct", _fmt(result["lens_fx_err_pct"], 3),
         f"worst of {args.trials} trials x {args.views} views (target < 1); median "
         f"{result['lens_fx_err_pct_median']:.3f}"),
        ("lens_fy_err_pct", _fmt(result["lens_fy_err_pct"], 3), "worst of the trials"),
        ("lens_k1_abs_err", _fmt(result["lens_k1_abs_err"], 4),
         f"worst of the trials (target < 0.02); median {result['lens_k1_abs_err_median']:.4f}"),
        ("lens_rms_px_median", _fmt(result["lens_rms_px_median"], 3), "reprojection RMS of the fits"),
    ])
    if args.json is not None:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
