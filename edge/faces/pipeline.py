"""The per-camera face pipeline of entrance and lobby cameras: face tracks with identities -> vip_arrival rule."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from calibration.zones import PolygonZone
from edge.cameras.config import CameraConfig
from edge.cameras.tap import Overlay, OverlayBox
from edge.faces.config import FaceConfig
from edge.faces.tracks import FaceTracks, FaceUpdate, GallerySearch, TrackFace
from edge.faces.vip_rule import Sighting, VipArrivalRule
from edge.metrics import EdgeMetrics
from vision.engines.base import FaceEngine
from vision.engines.gated import CameraGate, GatedFaceEngine
from vision.gallery import Gallery
from vision.types import Frame

logger = logging.getLogger(__name__)

__all__ = ["FacePipeline", "TrackFace"]


class FacePipeline:
    """Processes frames of one camera. Not thread-safe: one thread calls :meth:`process`."""

    def __init__(self, camera: CameraConfig, face: FaceConfig, *, engine: FaceEngine,
                 gallery: Gallery | GallerySearch, rule: VipArrivalRule, metrics: EdgeMetrics | None = None,
                 strangers: Callable[[str, TrackFace], object] | None = None) -> None:
        self.camera = camera
        self._rule = rule
        self._strangers = strangers  # gets each ended unknown track (edge.faces.stranger_crops keeps its crop)
        self._metrics = metrics
        zone = PolygonZone(f"{camera.id}-zone", tuple(camera.zone)) if camera.zone else None
        # faces are detected only where the picture moves (vision.motion), when the camera turns it on
        self.gate = CameraGate(camera.motion) if camera.motion.enabled else None
        gated = GatedFaceEngine(engine, self.gate) if self.gate is not None else engine
        self._tracks = FaceTracks(camera.id, face, engine=gated, gallery=gallery, zone=zone, metrics=metrics)
        self._last: FaceUpdate | None = None  # the last frame's faces, for the live preview's overlay

    @property
    def urgent(self) -> bool:
        """A face in view is still being voted on: its next frames decide whether a VIP arrived (the scheduler
        serves them first)."""
        return self._tracks.pending()

    def process(self, frame: Frame) -> list[Sighting]:
        """Run one frame; return the tracks newly decided as a known person."""
        if self.gate is not None:
            t0 = time.perf_counter()
            self.gate.observe(frame.image, frame.t_mono)
            if self._metrics is not None:
                self._metrics.stage.labels(self.camera.id, "motion").observe(time.perf_counter() - t0)
        update = self._tracks.update(frame)
        self._last = update
        if self._strangers is not None:
            for gone in update.ended_unknown:
                self._strangers(self.camera.id, gone)
        sightings: list[Sighting] = []
        newly = set(update.newly_decided)
        for tid in update.track_ids:
            state = self._tracks.state(tid)
            if state is None or state.match is None or state.match.person_id is None:
                continue
            if tid in newly:
                sightings.append(Sighting(self.camera.id, self.camera.display_name, tid, state.match,
                                          state.first_seen_at, frame.captured_at, frame.t_mono, state.shot))
            else:
                self._rule.seen(state.match.person_id, frame.t_mono)
        if self._metrics is not None:
            self._metrics.frames.labels(self.camera.id).inc()
            how = self.gate.looks.get("faces", "skipped") if self.gate is not None else "whole"
            self._metrics.detector_frames.labels(self.camera.id, "faces", how).inc()
        return sightings

    def overlay(self) -> Overlay:
        """The last frame's faces with track ids; a face decided as an enrolled person is marked identified."""
        if self._last is None:
            return Overlay()
        boxes = []
        for box, tid in zip(self._last.faces.xyxy.tolist(), self._last.track_ids, strict=False):
            person_id = self._tracks.person_id(tid)
            boxes.append(OverlayBox((box[0], box[1], box[2], box[3]), "identified" if person_id else "face",
                                    tid, person_id))
        return Overlay(tuple(boxes))

    def flush(self) -> list[Sighting]:
        """Nothing to decide when the source ends: identity is decided while the face is in view."""
        return []
