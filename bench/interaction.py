"""Counter-camera benchmark: processed frames per second at 720p with 2 to 4 people in view, with and
without the clip encoder running, and what each stage costs.

    python -m bench.interaction --json OUT.json [--frames 60] [--repeats 3] [--preset veryfast]

Each scene is real people cut out of real photos (``edge.demo.counter_scene``): the clerk serving a
customer at the counter, plus waiting customers. Frames are rendered first, then fed to the real
counter pipeline (NanoDet persons, dlib faces with the gallery, tracking, roles, interactions,
attendance) as fast as it takes them; the interaction starts at once, so the clip recorder encodes
H.264 (libx264) on its own thread for the whole run. fps = frames / wall time; figures are medians
over ``--repeats`` runs. Target: >= 5 processed frames per second per counter camera on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import faiss

from bench.common import print_table, write_json
from edge.cameras.config import CameraConfig
from edge.clips.config import ClipConfig
from edge.clips.encoder import Mp4Writer
from edge.clips.recorder import ClipRecorder
from edge.counter.config import CounterConfig
from edge.counter.pipeline import CounterPipeline
from edge.demo.assets import ensure_face_photos
from edge.demo.counter_scene import CounterScene, Cutout, Role, load_cast, scene_camera
from edge.faces.config import FaceConfig
from edge.metrics import EdgeMetrics
from vision.engines.base import DlibEngineConfig, FaceEngine
from vision.engines.nanodet import NanoDetPersonDetector
from vision.engines.registry import build_engine
from vision.gallery import Gallery
from vision.imageio import decode_image
from vision.types import Frame

CAMERA = CameraConfig.model_validate(scene_camera("dir:/unused"))
COUNTER = CounterConfig.model_validate({"interaction": {"max_distance_m": 1.6, "start_after_s": 0.4}})
STAGES = ("persons", "detect", "align", "embed", "search")


def scene(cast: dict[str, Cutout], people: int, frames: int) -> list[Frame]:
    """The clerk serving a customer at the counter, and ``people - 2`` customers waiting; 5 fps frame clock."""
    roles = [Role(cast["clerk"], ((0, 250),)), Role(cast["customer"], ((0, 530),))]
    for name, x in (("customer2", 1000.0), ("customer3", 780.0))[:people - 2]:
        roles.append(Role(cast[name], ((0, x),)))
    return [frame for frame, _ in CounterScene(roles, frames / 5.0).frames()]


def one_run(frames: list[Frame], *, detector: NanoDetPersonDetector, engine: FaceEngine, gallery: Gallery,
            clips: ClipConfig | None, workdir: Path) -> dict[str, Any]:
    metrics = EdgeMetrics()
    recorder = None
    written: list[object] = []
    if clips is not None:
        recorder = ClipRecorder(CAMERA.id, clips, workdir, on_written=written.append, key=os.urandom(32))
    pipeline = CounterPipeline(CAMERA, COUNTER, FaceConfig(), persons=detector, engine=engine, gallery=gallery,
                               role_of={"staff": "staff"}.get, tz=ZoneInfo("Asia/Shanghai"), recorder=recorder,
                               metrics=metrics)
    warm = 3
    for frame in frames[:warm]:
        pipeline.process(frame)
    t0 = time.perf_counter()
    for frame in frames[warm:]:
        pipeline.process(frame)
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {"fps": (len(frames) - warm) / wall}
    for stage in STAGES:
        total = metrics.registry.get_sample_value("smartbranch_stage_seconds_sum",
                                                  {"camera": CAMERA.id, "stage": stage}) or 0.0
        out[f"{stage}_ms"] = 1000 * total / len(frames)
    if recorder is not None:
        pipeline.flush()
        t1 = time.perf_counter()
        recorder.close()
        stats = recorder.stats
        out.update(encode_ms_per_frame=stats.encode_ms_per_frame, frames_encoded=stats.frames_encoded,
                   frames_dropped=stats.frames_dropped, drain_s=time.perf_counter() - t1, clips=len(written))
    return out


def encode_ms(frames: list[Frame], preset: str, workdir: Path) -> float:
    """Wall ms per frame to encode ``frames`` into one MP4 (x264's own threads included), file closed."""
    # a new file per run: a writer refuses to overwrite an existing clip (repeats used to crash here)
    writer = Mp4Writer(workdir / f"encode-{preset}-{uuid.uuid4().hex}.mp4.part", key=os.urandom(32), preset=preset,
                       crf=ClipConfig().crf)
    t0 = time.perf_counter()
    for frame in frames:
        writer.write(frame.image, frame.t_mono)
    writer.finish()
    return 1000 * (time.perf_counter() - t0) / len(frames)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: round(statistics.median(float(r[k]) for r in runs), 2) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="Frames per run (5 fps scene clock).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="veryfast", help="libx264 preset of the clips.")
    parser.add_argument("--people", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    faiss.omp_set_num_threads(1)
    photos = ensure_face_photos()
    detector, engine = NanoDetPersonDetector(), build_engine(DlibEngineConfig())
    cast = load_cast(photos, detector, engine)
    gallery = Gallery(engine.model_id, engine.dim)
    image = decode_image((photos / "obama.jpg").read_bytes())
    gallery.add("staff", engine.embed(image, engine.detect(image)))
    clips = ClipConfig(preset=args.preset)
    results: dict[str, Any] = {"frames": args.frames, "repeats": args.repeats, "preset": args.preset, "rows": []}
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for people in args.people:
            frames = scene(cast, people, args.frames)
            runs: dict[str, list[dict[str, Any]]] = {"no_clips": [], "clips": []}
            for _ in range(args.repeats):  # interleaved, so load changes hit both alike
                runs["no_clips"].append(one_run(frames, detector=detector, engine=engine, gallery=gallery,
                                                clips=None, workdir=Path(tmp)))
                runs["clips"].append(one_run(frames, detector=detector, engine=engine, gallery=gallery,
                                             clips=clips, workdir=Path(tmp)))
            row = {"people": people, "without_encoder": median_of(runs["no_clips"]),
                   "with_encoder": median_of(runs["clips"])}
            results["rows"].append(row)
            w, c = row["without_encoder"], row["with_encoder"]
            rows.append((f"{people} people: fps (encoder off | on)", f"{w['fps']:.1f} | {c['fps']:.1f}",
                         f"target >= 5; encode {c['encode_ms_per_frame']:.1f} ms/frame, "
                         f"{c['frames_dropped']:.0f} dropped"))
            rows.append((f"{people} people: ms persons / faces / embed", f"{c['persons_ms']:.0f} / "
                         f"{c['detect_ms']:.0f} / {c['embed_ms']:.0f}", "per frame, with the encoder on"))
        frames = scene(cast, 4, args.frames)
        presets = ("ultrafast", "veryfast")
        encode = {p: [encode_ms(frames, p, Path(tmp)) for _ in range(args.repeats)] for p in presets}
        results["encode_only_ms_per_frame"] = {p: round(statistics.median(v), 2) for p, v in encode.items()}
        rows.append(("encoder alone, ms per 720p frame", " | ".join(
            f"{results['encode_only_ms_per_frame'][p]:.1f}" for p in presets), "ultrafast | veryfast, wall time"))
    results["load_avg_1m"] = os.getloadavg()[0]
    print_table(rows)
    print(f"(medians of {args.repeats} runs of {args.frames} frames at 1280x720, preset {args.preset}; "
          f"load {results['load_avg_1m']:.2f})")
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
