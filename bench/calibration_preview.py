"""What a live preview costs the camera it shows: processed fps of one real camera, with and without a viewer.

One entrance camera plays the demo's walk-in clip (real photos, the real dlib engine) unpaced, so that its
worker processes frames as fast as the cores allow and any time taken from it shows up as fewer processed
frames. The service runs as it does on a box (uvicorn, the edge app). Windows without and with a 5 fps
MJPEG viewer alternate (off, on, off, on, ...) on the same running camera, so that both see the same load;
each on-window is compared with the mean of the off-windows either side of it, and the median over the
pairs is reported.

    python -m bench.calibration_preview [--seconds 60] [--json OUT]

Keys: ``preview_fps_drop_pct`` (median drop of processed fps, percent; target <= 5), ``fps_off`` and
``fps_on`` (medians), ``preview_fps`` (frames the viewer received per second), ``pairs``, ``window_s``, and
``preview_cpu_ms_per_frame`` / ``preview_cpu_pct_of_core``: the CPU time (process time, measured once the camera
has stopped, so the box's other load barely counts) to draw and encode the last frame shown, and what 5 of them a
second take of one core - the cost the fps comparison tries to see through the noise of a busy machine.
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from alerts.server import ServerThread
from bench.common import print_table, write_json
from edge.api.app import create_app
from edge.calibrate.live_draw import camera_zones, encode_jpeg, render
from edge.cameras.tap import Tapped
from edge.config import EdgeConfig, hash_token
from edge.demo.assets import ensure_face_photos
from edge.demo.run import write_entrance_video
from edge.demo.scene import SceneBuilder
from edge.runtime import EdgeRuntime
from vision.engines.base import DlibEngineConfig
from vision.engines.registry import build_engine

TOKEN = "bench-branch-it"
PREVIEW_FPS = 5.0
WARMUP_S = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Viewer:
    """A browser stand-in: reads the MJPEG stream in its own thread and counts the frames."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self.frames = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="preview-viewer", daemon=True)

    def __enter__(self) -> Viewer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=30) as client, client.stream(
                    "GET", self._url, params={"fps": PREVIEW_FPS},
                    headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                resp.raise_for_status()
                for chunk in resp.iter_bytes():
                    self.frames += chunk.count(b"--smartbranchframe\r\n")
                    if self._stop.is_set():
                        return
        except httpx.HTTPError as exc:
            self.error = str(exc)


def _config(workdir: Path, video: Path, port: int) -> EdgeConfig:
    return EdgeConfig.model_validate({
        "branch": {"id": "bench-branch", "name": "基准网点"},
        "cameras": [{"id": "entrance-1", "name": "正门", "role": "entrance",
                     "source": {"url": f"file:{video}", "loop": True, "realtime": False}}],
        "server": {"host": "127.0.0.1", "port": port},
        "auth": {"tokens": [{"name": "bench-it", "sha256": hash_token(TOKEN), "roles": ["branch_it"]}]},
        "paths": {"data_dir": str(workdir / "data")},
        "preview": {"max_fps": PREVIEW_FPS},
    })


def _processed_fps(runtime: EdgeRuntime, seconds: float) -> float:
    [worker] = runtime.workers
    before, t0 = worker.processed, time.monotonic()
    time.sleep(seconds)
    return (worker.processed - before) / (time.monotonic() - t0)


def measure_preview_drop(seconds: float = 60.0, pairs: int = 3) -> dict[str, Any]:
    """Processed fps of one real camera without and with a 5 fps preview viewer, alternating windows over about
    ``seconds`` seconds in all (after a warm-up)."""
    window = max(2.0, seconds / (2 * pairs + 1))
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
        workdir = Path(tmp)
        video = workdir / "entrance.mp4"
        write_entrance_video(SceneBuilder(build_engine(DlibEngineConfig(min_face_px=40)), ensure_face_photos()),
                             video)
        runtime = EdgeRuntime(_config(workdir, video, _free_port()))
        server = ServerThread(create_app(runtime), "127.0.0.1", runtime.config.server.port)
        server.start()
        url = f"http://127.0.0.1:{server.port}/api/calibrate/cameras/entrance-1/preview.mjpg"
        try:
            time.sleep(WARMUP_S)
            off = [_processed_fps(runtime, window)]
            on: list[float] = []
            received: list[float] = []
            errors: list[str] = []
            shown: Tapped | None = None
            for _ in range(pairs):
                with Viewer(url) as viewer:
                    time.sleep(1.0)  # the stream is open and the tap records overlays
                    frames0 = viewer.frames
                    on.append(_processed_fps(runtime, window))
                    received.append((viewer.frames - frames0) / window)
                    shown = runtime.workers[0].tap.newest() or shown
                if viewer.error:
                    errors.append(viewer.error)
                time.sleep(2.5)  # the viewer has gone and the tap stops recording overlays (2 s window)
                off.append(_processed_fps(runtime, window))
        finally:
            server.stop()
            runtime.stop()
    cpu_ms = _draw_cpu_ms(shown, runtime.config) if shown is not None else None
    drops = [100.0 * (1.0 - o / ((a + b) / 2)) for o, a, b in zip(on, off, off[1:], strict=False) if a + b > 0]
    return {"preview_fps_drop_pct": round(statistics.median(drops), 2) if drops else None,
            "fps_off": round(statistics.median(off), 2), "fps_on": round(statistics.median(on), 2),
            "preview_fps": round(statistics.median(received), 2), "drops_pct": [round(d, 2) for d in drops],
            "pairs": pairs, "window_s": round(window, 1), "viewer_errors": errors,
            "preview_cpu_ms_per_frame": cpu_ms,
            "preview_cpu_pct_of_core": None if cpu_ms is None else round(PREVIEW_FPS * cpu_ms / 10.0, 2)}


def _draw_cpu_ms(shown: Tapped, config: EdgeConfig, repeats: int = 20) -> float:
    """CPU time of this process (the camera has stopped by now; OpenCV's own threads count) to draw and encode
    one preview frame, median."""
    zones = camera_zones(config.cameras[0])
    samples = []
    for _ in range(repeats):
        t0 = time.process_time()
        encode_jpeg(render(shown.frame.image, zones, shown.overlay), config.preview.max_width,
                    config.preview.jpeg_quality)
        samples.append((time.process_time() - t0) * 1000)
    return round(statistics.median(samples), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="Measuring time in all (after a warm-up).")
    parser.add_argument("--pairs", type=int, default=3, help="Off/on window pairs.")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = measure_preview_drop(args.seconds, args.pairs)
    print_table([
        ("preview_fps_drop_pct", str(result["preview_fps_drop_pct"]), "median over pairs; target <= 5"),
        ("fps_off", str(result["fps_off"]), "processed fps, no viewer (median)"),
        ("fps_on", str(result["fps_on"]), f"processed fps, one {PREVIEW_FPS:g} fps viewer (median)"),
        ("preview_fps", str(result["preview_fps"]), "frames the viewer received per second"),
        ("drops_pct", str(result["drops_pct"]), f"per pair, {result['window_s']} s windows"),
        ("preview_cpu_ms_per_frame", str(result["preview_cpu_ms_per_frame"]), "draw + encode one frame (CPU)"),
        ("preview_cpu_pct_of_core", str(result["preview_cpu_pct_of_core"]), f"at {PREVIEW_FPS:g} fps"),
    ])
    if args.json is not None:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
