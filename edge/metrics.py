"""Prometheus metrics of one edge box, on a registry of its own (no import-time globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)


class EdgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.frames = Counter("smartbranch_frames_processed_total", "Frames processed", ["camera"],
                              registry=self.registry)
        self.faces = Counter("smartbranch_faces_detected_total", "Faces detected", ["camera"],
                             registry=self.registry)
        self.embeddings = Counter("smartbranch_faces_embedded_total", "Faces embedded", ["camera"],
                                  registry=self.registry)
        self.stage = Histogram("smartbranch_stage_seconds", "Time per pipeline stage", ["camera", "stage"],
                               registry=self.registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2))
        self.frame_age = Histogram("smartbranch_frame_age_seconds",
                                   "Capture-to-processed delay of each frame", ["camera"],
                                   registry=self.registry, buckets=_LATENCY_BUCKETS)
        self.queue_age = Histogram("smartbranch_queue_age_seconds",
                                   "Capture-to-start delay of each processed frame (waiting for a core included)",
                                   ["camera"], registry=self.registry, buckets=_LATENCY_BUCKETS)
        self.frames_dropped = Counter("smartbranch_frames_dropped_total",
                                      "Frames never processed: a newer one was taken instead (newest-wins)",
                                      ["camera"], registry=self.registry)
        self.detector_frames = Counter(
            "smartbranch_detector_frames_total",
            "Frames per detector and how it looked: whole, regions, skipped (nothing moved), run by the person "
            "cadence (first, outside, due) or its last boxes carried over (carried, still)",
            ["camera", "detector", "how"], registry=self.registry)
        self.camera_fps = Gauge("smartbranch_camera_processed_fps", "Frames processed per second (last 5 s)",
                                ["camera"], registry=self.registry)
        self.alerts = Counter("smartbranch_alerts_total", "Alerts published", ["type"], registry=self.registry)
        self.camera_up = Gauge("smartbranch_camera_up", "1 when the camera delivers frames", ["camera"],
                               registry=self.registry)
        self.camera_reconnects = Gauge("smartbranch_camera_reconnects", "Reconnect attempts", ["camera"],
                                       registry=self.registry)
        self.terminals = Gauge("smartbranch_terminals_connected", "Connected terminals", registry=self.registry)
        self.gallery_size = Gauge("smartbranch_gallery_embeddings", "Embeddings in the gallery",
                                  registry=self.registry)
