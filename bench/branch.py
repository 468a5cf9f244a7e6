"""Whole-branch benchmark: one box, eight 720p cameras at 10 fps in real time, motion-gated and scheduled.

    python -m bench.branch --json OUT.json [--seconds 60] [--static-seconds 20] [--gating both|on|off]

The cameras (``bench.branch_scenes``, real photos): the entrance with the VIP walking in every 4.5 s, two
lobby cameras with strangers walking in, four counters with a clerk, customers served in turn and 0-2
waiting (2, 3, 4 and 3 people in view), and a parking camera with a real car driving in. Each plays its
video in real time through the real edge runtime (reader threads, scheduler, pipelines, rules, SQLite, hub).

Per run: processed fps of each camera (frames processed / seconds of video), VIP alert latency (capture of
the first frame showing the VIP's face -> the alert published by the hub), the visits alerted, the
interactions stored, the process's CPU (100 % = one core) and what limits it: mean ms per pipeline stage,
the time cameras waited for a core, and CPU seconds per thread group. ``--gating both`` runs the same
videos motion-gated and whole-frame, one after the other, to show the gate loses no arrival or interaction.
The static phase plays still videos (nobody in view) on all eight cameras, gated, and reports the CPU per
camera, total and of its pipeline thread alone.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography.fernet import Fernet

from alerts.envelope import Alert
from bench import branch_scenes as scenes
from bench.common import percentile, print_table, write_json
from bench.pipeline import TOKEN
from edge.config import hash_token, load_config
from edge.demo.assets import ensure_face_photos
from edge.demo.counter_scene import load_cast, scene_camera
from edge.demo.scene import SceneBuilder, Truth
from edge.runtime import EdgeRuntime
from vault.keys import KEY_ENV
from vision.engines.base import DlibEngineConfig
from vision.engines.nanodet import NanoDetPersonDetector
from vision.engines.registry import build_engine

COUNTER = {"interaction": {"max_distance_m": 1.6, "start_after_s": 2.0, "end_after_s": 3.0},
           "zone_dwell_s": 1.0, "unattended_after_s": 600, "unstaffed_after_s": 600}
COUNTER_PEOPLE = (2, 3, 4, 3)


@dataclass(frozen=True, slots=True)
class Videos:
    files: dict[str, Path]  # camera id -> video
    roles: dict[str, str]
    visits: list[Truth]
    services: int
    car: bool
    cars: int = 0  # times the car drives in


def make_videos(workdir: Path, seconds: float) -> Videos:
    photos = ensure_face_photos()
    engine = build_engine(DlibEngineConfig(min_face_px=40))
    builder = SceneBuilder(engine, photos)
    cast = load_cast(photos, NanoDetPersonDetector(), engine)
    files: dict[str, Path] = {}
    roles: dict[str, str] = {}
    visits = scenes.entrance(builder, workdir / "entrance.mp4", seconds)
    files["door"], roles["door"] = workdir / "entrance.mp4", "entrance"
    scenes.lobby(builder, workdir / "lobby.mp4", seconds)
    for i in (1, 2):
        files[f"lobby-{i}"], roles[f"lobby-{i}"] = workdir / "lobby.mp4", "lobby"
    truths = {people: scenes.counter(cast, workdir / f"counter-{people}.mp4", seconds, people)
              for people in sorted(set(COUNTER_PEOPLE))}
    services = 0
    for i, people in enumerate(COUNTER_PEOPLE, start=1):
        files[f"counter-{i}"], roles[f"counter-{i}"] = workdir / f"counter-{people}.mp4", "counter"
        services += truths[people].services
    cars = scenes.parking(workdir / "parking.mp4", seconds)
    files["parking"], roles["parking"] = workdir / "parking.mp4", "parking"
    return Videos(files, roles, visits, services, cars > 0, cars)


def still_videos(workdir: Path, videos: Videos, seconds: float) -> Videos:
    kinds = {"entrance": "lobby", "lobby": "lobby", "counter": "counter", "parking": "parking"}
    for kind in set(kinds.values()):
        scenes.still(workdir / f"still-{kind}.mp4", kind, seconds)
    files = {cam: workdir / f"still-{kinds[role]}.mp4" for cam, role in videos.roles.items()}
    return Videos(files, videos.roles, [], 0, False)


def camera_entries(videos: Videos, gated: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for cam, path in videos.files.items():
        role = videos.roles[cam]
        if role == "counter":
            entry = scene_camera(f"file:{path}", fps=scenes.FPS, camera_id=cam, name=cam)
        else:
            entry = {"id": cam, "role": role, "source": {"url": f"file:{path}", "fps": scenes.FPS}}
        out.append({**entry, "motion": {"enabled": gated}})
    return out


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live Python thread by name (native threads of onnxruntime are not listed)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for thread in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[thread.name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_groups(before: dict[str, float], after: dict[str, float], total_s: float) -> dict[str, float]:
    groups: dict[str, float] = {}
    for name, cpu in after.items():
        group = name.split("-")[0] if "-" in name else name
        group = {"source": "decode (source-*)", "pipeline": "pipelines (pipeline-*)",
                 "persons": "person detector (persons-*)", "face": "face engine owners", "clips": "clip encoders"
                 }.get(group, "other named threads")
        groups[group] = groups.get(group, 0.0) + cpu - before.get(name, 0.0)
    groups["unnamed (onnxruntime, main, ...)"] = total_s - sum(groups.values())
    return {k: round(v, 2) for k, v in sorted(groups.items())}


def stage_table(runtime: EdgeRuntime, roles: dict[str, str]) -> dict[str, dict[str, float]]:
    """Mean ms per call and calls per second of each stage, per camera role (from the /metrics histograms)."""
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], float] = {}
    for metric in runtime.metrics.registry.collect():
        if metric.name != "smartbranch_stage_seconds":
            continue
        for s in metric.samples:
            key = (roles.get(s.labels.get("camera", ""), "?"), s.labels.get("stage", ""))
            if s.name.endswith("_sum"):
                sums[key] = sums.get(key, 0.0) + s.value
            elif s.name.endswith("_count"):
                counts[key] = counts.get(key, 0.0) + s.value
    out: dict[str, dict[str, float]] = {}
    for (role, stage), n in sorted(counts.items()):
        if n:
            out.setdefault(role, {})[f"{stage}_ms"] = round(1000 * sums[(role, stage)] / n, 2)
            out[role][f"{stage}_calls"] = n
    return out


def run_branch(videos: Videos, workdir: Path, *, gated: bool, seconds: float, tag: str,
               warmup_s: float = 0.0) -> dict[str, Any]:
    """One run of the branch on ``videos``; CPU is counted from ``warmup_s`` after the start to the end."""
    cfg = workdir / f"{tag}.yaml"
    cfg.write_text(yaml.safe_dump({
        "branch": {"id": "bench"}, "cameras": camera_entries(videos, gated), "counter": COUNTER,
        "rules": {"vip_arrival": {"cooldown_s": 1.0}, "vip_vehicle_arrival": {"cooldown_s": 1.0}},
        "server": {"host": "127.0.0.1", "port": 0},
        "auth": {"tokens": [{"name": "bench", "sha256": hash_token(TOKEN), "roles": ["admin"]}]},
        "paths": {"data_dir": str(workdir / f"data-{tag}")},
    }, allow_unicode=True), encoding="utf-8")
    runtime = EdgeRuntime(load_config(cfg))
    photos = ensure_face_photos()
    vip = runtime.enroller.enrol(name="VIP", tier="钻石", photo=(photos / "obama.jpg").read_bytes(), consent="bench")
    runtime.plates.register(person_id=vip.id, plate=scenes.CAR_PLATE)  # the parking scene's real car
    captured: dict[int, datetime] = {}
    door = next(w for w in runtime.workers if w.source.camera_id == "door")
    door.source.add_observer(lambda f: captured.__setitem__(f.index, f.captured_at))
    parked: dict[int, datetime] = {}
    for worker in runtime.workers:
        if worker.source.camera_id == "parking":
            worker.source.add_observer(lambda f: parked.__setitem__(f.index, f.captured_at))
    received: list[tuple[float, Alert]] = []
    runtime.hub.add_listener(lambda alert: received.append((time.time(), alert)))
    t_start = time.monotonic()
    runtime.start()
    time.sleep(warmup_s)  # the static phase: past the first whole-frame looks of every camera
    cpu0, threads0, t0 = os.times(), thread_cpu(), time.monotonic()
    threads1 = dict(threads0)
    while not runtime.cameras_done:
        time.sleep(1.0)  # the bench's own polling is counted in the process's CPU: seldom
        threads1.update(thread_cpu())  # a pipeline thread ends with its video: keep its last reading
        if time.monotonic() - t_start > seconds * 3 + 60:
            break
    wall = time.monotonic() - t0
    cpu1 = os.times()
    threads1.update(thread_cpu())
    time.sleep(1.0)
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    fps = {w.source.camera_id: w.processed / seconds for w in runtime.workers}
    out: dict[str, Any] = {
        "gated": gated, "seconds": seconds, "wall_s": round(wall, 1), "cameras": len(runtime.workers),
        "fps_per_camera": {k: round(v, 2) for k, v in fps.items()},
        "fps_per_camera_min": round(min(fps.values()), 2),
        "fps_per_camera_median": round(statistics.median(fps.values()), 2),
        "frames_dropped": {w.source.camera_id: w.source.health().dropped for w in runtime.workers},
        "cpu_percent": round(100 * cpu_s / wall, 1),
        "cpu_s_by_thread_group": cpu_groups(threads0, threads1, cpu_s),
        "stage_ms_by_role": stage_table(runtime, videos.roles),
        "detector_frames": detector_frames(runtime),
        "vehicle_arrivals": videos.cars,
        "vehicle_arrivals_alerted": len([a for _, a in received if a.type.value == "vip_vehicle_arrival"]),
    }
    frames = sum(w.processed for w in runtime.workers)
    out["cpu_ms_per_processed_frame_by_thread_group"] = {
        k: round(1000 * v / max(frames, 1), 1) for k, v in out["cpu_s_by_thread_group"].items()}
    out["stage_ms_per_processed_frame_by_role"] = {
        role: {k[:-3]: round(v * stages[k.replace("_ms", "_calls")] / max(processed_by_role(runtime, videos.roles,
                                                                                            role), 1), 2)
               for k, v in stages.items() if k.endswith("_ms")}
        for role, stages in out["stage_ms_by_role"].items()}
    if runtime.scheduler is not None:
        out["scheduler_wait_ms_per_frame"] = {s.camera_id: round(1000 * s.waited_s / max(s.granted, 1), 1)
                                              for s in runtime.scheduler.stats()}
        out["scheduler_urgent_frames"] = {s.camera_id: s.urgent for s in runtime.scheduler.stats() if s.urgent}
    gates = {w.source.camera_id: getattr(w.pipeline, "gate", None) for w in runtime.workers}
    out["gate"] = {cam: {"frames": g.counts.frames, "whole_frame_looks": g.counts.full,
                         "skipped": dict(g.counts.skipped), "carried": dict(g.counts.carried),
                         "area_looked_at": {k: round(v / max(g.counts.frames, 1), 3) for k, v in g.counts.area.items()}}
                   for cam, g in gates.items() if g is not None}
    out["pipeline_cpu_percent_per_camera"] = {
        cam: round(100 * (threads1.get(f"pipeline-{cam}", 0.0) - threads0.get(f"pipeline-{cam}", 0.0)) / wall, 1)
        for cam in videos.files}
    out.update(latency(videos.visits, captured, received))
    out.update(vehicle_latency(videos.cars, parked, received))
    out["interactions_detected"] = len([i for i in runtime.review.list_interactions() if i.ended_at is not None])
    out["interactions_scripted"] = videos.services
    runtime.stop()
    return out


def processed_by_role(runtime: EdgeRuntime, roles: dict[str, str], role: str) -> int:
    return sum(w.processed for w in runtime.workers if roles.get(w.source.camera_id) == role)


def detector_frames(runtime: EdgeRuntime) -> dict[str, dict[str, float]]:
    """Per camera and detector, how it looked at each frame (smartbranch_detector_frames_total in /metrics)."""
    out: dict[str, dict[str, float]] = {}
    for metric in runtime.metrics.registry.collect():
        if metric.name != "smartbranch_detector_frames":
            continue
        for s in metric.samples:
            if s.name.endswith("_total"):
                key = f"{s.labels['detector']}:{s.labels['how']}"
                out.setdefault(s.labels["camera"], {})[key] = s.value
    return out


def latency(visits: list[Truth], captured: dict[int, datetime], received: list[tuple[float, Alert]]
            ) -> dict[str, Any]:
    """Each VIP alert matched to the visit on screen when its deciding frame was captured (as bench.pipeline)."""
    latencies: list[float] = []
    used: set[int] = set()
    stray: list[float | None] = []  # alerts that matched no visit (seconds of video), for a look at the misses
    start = captured[min(captured)].timestamp() if captured else None
    for recv_t, alert in received:
        if alert.type.value != "vip_arrival":
            continue
        decided = alert.captured_at.timestamp()
        owner = [k for k, v in enumerate(visits) if v.first_visible_frame + 1 in captured
                 and captured[v.first_visible_frame + 1].timestamp() - 1e-3 <= decided
                 <= captured[v.first_visible_frame + 1].timestamp()
                 + (v.last_visible_frame - v.first_visible_frame) / scenes.FPS + 1.0]
        if len(owner) != 1 or owner[0] in used:
            stray.append(round(decided - start, 2) if start is not None else None)
            continue
        used.add(owner[0])
        latencies.append(recv_t - captured[visits[owner[0]].first_visible_frame + 1].timestamp())
    return {"arrivals": len(visits), "arrivals_alerted": len(latencies),
            "alert_latency_p50_s": round(percentile(latencies, 0.5), 3) if latencies else None,
            "alert_latency_p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
            "alert_latency_max_s": round(max(latencies), 3) if latencies else None,
            "alert_latencies_s": [round(v, 3) for v in latencies],
            "visits_missed_at_s": [round(v.first_visible_frame / scenes.FPS, 1) for k, v in enumerate(visits)
                                   if k not in used],
            "alerts_matching_no_visit_at_s": stray}


def vehicle_latency(cars: int, captured: dict[int, datetime], received: list[tuple[float, Alert]]
                    ) -> dict[str, Any]:
    """Each VIP car alert matched to the latest drive-in before its deciding frame: from the first frame showing
    the car (its front edge entering the picture, before the plate is in view) to the alert."""
    entries: list[datetime | None] = []
    for j in range(cars):
        first = round(j * scenes.CAR_EVERY_S * scenes.FPS) + 2  # scene frame j*150+1, source frames count from 1
        later = [k for k in captured if k >= first]
        entries.append(captured[min(later)] if later else None)
    latencies: list[float] = []
    used: set[int] = set()
    for recv_t, alert in received:
        if alert.type.value != "vip_vehicle_arrival":
            continue
        decided = alert.captured_at.timestamp()
        owners = [j for j, e in enumerate(entries) if e is not None and e.timestamp() - 1e-3 <= decided]
        if not owners or owners[-1] in used:
            continue
        used.add(owners[-1])
        entry = entries[owners[-1]]
        assert entry is not None
        latencies.append(recv_t - entry.timestamp())
    return {"vehicle_alert_latency_p50_s": round(percentile(latencies, 0.5), 3) if latencies else None,
            "vehicle_alert_latency_max_s": round(max(latencies), 3) if latencies else None,
            "vehicle_alert_latencies_s": [round(v, 3) for v in latencies]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of every camera's video (>= 60)")
    parser.add_argument("--static-seconds", type=float, default=20.0, help="length of the still phase; 0 skips it")
    parser.add_argument("--gating", choices=("both", "on", "off"), default="both",
                        help="motion-gated run, whole-frame run, or both on the same videos")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault(KEY_ENV, Fernet.generate_key().decode("ascii"))  # throw-away data, throw-away key
    result: dict[str, Any] = {"load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        videos = make_videos(work, args.seconds)
        result["parking_car"] = videos.car
        modes = {"both": (True, False), "on": (True,), "off": (False,)}[args.gating]
        runs = {("gated" if g else "ungated"): run_branch(videos, work, gated=g, seconds=args.seconds,
                                                          tag="gated" if g else "ungated") for g in modes}
        if args.static_seconds > 0:
            still = still_videos(work, videos, args.static_seconds)
            static = run_branch(still, work, gated=True, seconds=args.static_seconds, tag="static",
                                warmup_s=min(5.0, args.static_seconds / 4))
            per_cam = static["pipeline_cpu_percent_per_camera"]
            result["static"] = static
            result["static_cpu_percent_per_camera"] = round(static["cpu_percent"] / static["cameras"], 2)
            result["static_pipeline_cpu_percent_per_camera_max"] = max(per_cam.values())
    result["load_after"] = os.getloadavg()
    result.update(runs)
    main_run = runs.get("gated") or next(iter(runs.values()))
    for key in ("cameras", "fps_per_camera_min", "fps_per_camera_median", "alert_latency_p95_s", "arrivals",
                "arrivals_alerted", "interactions_detected", "interactions_scripted", "cpu_percent"):
        result[key] = main_run[key]
    rows = []
    for name, run in runs.items():
        rows += [(f"{name}: fps min / median", f"{run['fps_per_camera_min']} / {run['fps_per_camera_median']}",
                  "per camera, target >= 5"),
                 (f"{name}: VIP alerts", f"{run['arrivals_alerted']}/{run['arrivals']}",
                  f"p95 {run['alert_latency_p95_s']} s (target <= 1.0)"),
                 (f"{name}: interactions", f"{run['interactions_detected']}/{run['interactions_scripted']}",
                  "stored / scripted"),
                 (f"{name}: VIP cars", f"{run['vehicle_arrivals_alerted']}/{run['vehicle_arrivals']}",
                  f"alerts / drive-ins, latency max {run['vehicle_alert_latency_max_s']} s from the car in view"),
                 (f"{name}: cpu_percent", f"{run['cpu_percent']}", "process, 100 = one core")]
    if "static" in result:
        rows.append(("static: cpu % per camera", f"{result['static_cpu_percent_per_camera']}",
                     f"pipeline thread alone max {result['static_pipeline_cpu_percent_per_camera_max']} "
                     "(target <= 5)"))
    print_table(rows)
    for name, run in runs.items():
        print(f"\n{name}: stage ms by role: {run['stage_ms_by_role']}")
        print(f"{name}: CPU s by thread group: {run['cpu_s_by_thread_group']}")
        print(f"{name}: CPU ms per processed frame by thread group: "
              f"{run['cpu_ms_per_processed_frame_by_thread_group']}")
        print(f"{name}: stage ms per processed frame by role: {run['stage_ms_per_processed_frame_by_role']}")
    write_json(args.json, result)
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
