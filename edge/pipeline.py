"""The per-camera face pipeline and the thread that drives it.

detect -> track -> (new or improved tracks only) align, embed, search -> vote per track -> rule.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from calibration.zones import PolygonZone
from edge.config import CameraConfig, FaceConfig
from edge.metrics import EdgeMetrics
from edge.rules import Sighting, VipArrivalRule
from vision.engines.base import FaceEngine
from vision.gallery import Gallery
from vision.quality import assess
from vision.tracker import IoUTracker, TrackerConfig
from vision.types import FaceQuality, Frame, Image, Match
from vision.voter import IdentityVoter, VoterConfig

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class TrackFace:
    """Identity state of one face track, owned by the camera's pipeline thread."""

    first_seen_at: datetime
    last_embed_t: float = -1e9
    best_quality: float = -1.0
    best_crop: Image | None = None
    embedded_quality: float = -1.0
    match: Match | None = None


class FacePipeline:
    """Processes frames of one camera. Not thread-safe: one thread calls :meth:`process`."""

    def __init__(self, camera: CameraConfig, face: FaceConfig, *, engine: FaceEngine, gallery: Gallery,
                 rule: VipArrivalRule, metrics: EdgeMetrics | None = None) -> None:
        self.camera = camera
        self._face = face
        self._engine = engine
        self._gallery = gallery
        self._rule = rule
        self._metrics = metrics
        self._zone = PolygonZone(f"{camera.id}-zone", tuple(camera.zone)) if camera.zone else None
        self._tracker = IoUTracker(TrackerConfig(iou_threshold=face.track_iou,
                                                 max_missed_s=face.track_max_missed_s))
        v = face.voter
        self._voter = IdentityVoter(VoterConfig(v.threshold, v.min_margin, v.min_votes, v.max_observations))
        self._faces: dict[int, TrackFace] = {}

    def _timed(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        if self._metrics is not None:
            self._metrics.stage.labels(self.camera.id, stage).observe(now - start)
        return now

    def process(self, frame: Frame) -> list[Sighting]:
        """Run one frame; return the tracks newly decided as a known person."""
        t0 = time.perf_counter()
        dets = self._engine.detect(frame.image)
        if self._zone is not None and len(dets):
            dets = dets[self._zone.contains(dets.xyxy)]
        t1 = self._timed("detect", t0)
        dets, ended = self._tracker.update(dets, frame.t_mono)
        for track in ended:
            self._faces.pop(track.track_id, None)
            self._voter.forget(track.track_id)
        chips = self._engine.chips(frame.image, dets)
        qualities = assess(dets, chips, self._engine.min_face_px, layout=self._engine.landmark_layout)
        track_ids = [int(t) for t in dets.track_id] if dets.track_id is not None else []
        todo: list[int] = []
        for i, tid in enumerate(track_ids):
            state = self._faces.setdefault(tid, TrackFace(first_seen_at=frame.captured_at))
            self._keep_best(state, qualities[i], chips[i])
            if self._wants_embedding(tid, state, qualities[i], frame.t_mono):
                todo.append(i)
            elif state.match is not None and state.match.person_id is not None:
                self._rule.seen(state.match.person_id, frame.t_mono)
        t2 = self._timed("align", t1)
        sightings: list[Sighting] = []
        if todo:
            vectors = self._engine.embed_chips([chips[i] for i in todo])
            t3 = self._timed("embed", t2)
            results = self._gallery.search(vectors, k=2)
            self._timed("search", t3)
            for i, result in zip(todo, results, strict=True):
                tid = track_ids[i]
                state = self._faces[tid]
                state.last_embed_t = frame.t_mono
                state.embedded_quality = qualities[i].score
                was_decided = self._voter.decision(tid) is not None
                match = self._voter.observe(tid, result)
                state.match = match
                if match.person_id is not None and not was_decided:
                    sightings.append(Sighting(self.camera.id, self.camera.display_name, tid, match,
                                              state.first_seen_at, frame.captured_at, frame.t_mono))
        if self._metrics is not None:
            self._metrics.frames.labels(self.camera.id).inc()
            self._metrics.faces.labels(self.camera.id).inc(len(dets))
            self._metrics.embeddings.labels(self.camera.id).inc(len(todo))
        return sightings

    def flush(self) -> list[Sighting]:
        """Nothing to decide when the source ends: identity is decided while the face is in view."""
        return []

    @staticmethod
    def _keep_best(state: TrackFace, quality: FaceQuality, chip: Image) -> None:
        if quality.score > state.best_quality:
            state.best_quality = quality.score
            state.best_crop = chip

    def _wants_embedding(self, tid: int, state: TrackFace, quality: FaceQuality, t: float) -> bool:
        if state.embedded_quality < 0:
            return True  # a new track
        if self._voter.decision(tid) is not None:
            return False  # decided: identity is per track
        if self._voter.is_settled(tid):
            return quality.score >= state.embedded_quality + self._face.quality_gain
        return t - state.last_embed_t >= self._face.reembed_interval_s
