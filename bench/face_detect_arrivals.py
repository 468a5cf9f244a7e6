"""The entrance benchmark's VIP visits for :mod:`bench.face_detect`: in real time through the edge service, and
offline (every frame processed, so the count does not depend on how busy the machine is), per detector."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.pipeline import alert_latency, arrivals_scene
from edge.cameras.config import CameraConfig
from edge.demo.assets import ensure_face_photos
from edge.demo.scene import SceneBuilder
from edge.faces.config import FaceConfig, VipArrivalRuleConfig
from edge.faces.pipeline import FacePipeline
from edge.faces.vip_rule import VipArrivalRule
from vision.engines.base import DlibEngineConfig, FaceEngine
from vision.engines.registry import build_camera_engine, build_engine
from vision.gallery import Gallery
from vision.imageio import decode_image
from vision.types import Frame

FPS = 10.0
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
KEYS = ("arrivals", "arrivals_alerted", "alerts_unmatched", "alert_latency_p50_s", "alert_latency_p95_s",
        "alert_latency_max_s", "latencies_s", "pipeline_stage_ms_mean")


def realtime(detectors: tuple[str, ...], n: int) -> dict[str, Any]:
    """:func:`bench.pipeline.alert_latency` once per detector: the walk-in video played at 10 fps in real time."""
    photos = ensure_face_photos()
    builder = SceneBuilder(build_engine(DlibEngineConfig(min_face_px=40)), photos)
    out = {}
    for name in detectors:
        with tempfile.TemporaryDirectory() as tmp:
            result = alert_latency(build_engine(DlibEngineConfig()), builder, photos, Path(tmp), n,
                                   face={"detector": name})
        out[name] = {k: result[k] for k in KEYS}
    return out


def offline(detectors: tuple[str, ...], n: int) -> dict[str, Any]:
    """Visits decided as the VIP when every frame of the same walk-in video is processed, per detector, whole-frame
    and motion-gated."""
    photos = ensure_face_photos()
    engine = build_engine(DlibEngineConfig())
    builder = SceneBuilder(build_engine(DlibEngineConfig(min_face_px=40)), photos)
    apps = arrivals_scene(n)
    duration = max(a.enter_s + 2 * a.walk_s + a.dwell_s for a in apps) + 1.0
    images = []
    seen: dict[int, list[int]] = {}
    for index, image, faces in builder.frames(apps, duration):
        images.append(image)
        for k, _box in faces:
            seen.setdefault(k, []).append(index)
    visits = [(min(seen[k]), max(seen[k])) for k, a in enumerate(apps) if a.actor.label == "vip" and k in seen]
    portrait = decode_image((photos / "obama.jpg").read_bytes())
    gallery = Gallery(engine.model_id, engine.dim)
    gallery.add("vip", engine.embed(portrait, engine.detect(portrait)))
    out: dict[str, Any] = {}
    for name in detectors:
        camera_engine = build_camera_engine(engine, name)
        for gated in (False, True):
            decided, wrong = _decided(images, visits, camera_engine, gallery, gated=gated)
            out[f"{name}{'_gated' if gated else ''}"] = {"visits": len(visits), "decided": len(decided),
                                                         "vip_sightings_outside_visits": wrong}
    return out


def _decided(images: list[Any], visits: list[tuple[int, int]], engine: FaceEngine, gallery: Gallery, *,
             gated: bool) -> tuple[set[int], int]:
    camera = CameraConfig.model_validate({"id": "door", "role": "entrance", "source": {"url": "file:x.mp4"},
                                          "motion": {"enabled": gated}})
    rule = VipArrivalRule(VipArrivalRuleConfig(cooldown_s=1.0), branch_id="b", lookup=lambda _p: None,
                          publish=lambda d: None)  # type: ignore[arg-type,return-value]
    pipeline = FacePipeline(camera, FaceConfig(), engine=engine, gallery=gallery, rule=rule)
    decided: set[int] = set()
    wrong = 0
    for i, image in enumerate(images):
        for sighting in pipeline.process(Frame("door", i + 1, T0 + timedelta(seconds=i / FPS), i / FPS, image)):
            if sighting.match.person_id != "vip":
                continue
            owners = {k for k, (first, last) in enumerate(visits) if first <= i <= last + 5}
            decided |= owners
            wrong += int(not owners)
    return decided, wrong
