"""Face tracks of one camera and the identity decided on each: shared by the face and counter pipelines.

detect -> track -> (new or improving undecided tracks only) align, embed, search -> vote per track.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from calibration.zones import PolygonZone
from edge.faces.config import FaceConfig
from edge.metrics import EdgeMetrics
from vision.engines.base import FaceEngine
from vision.gallery import Gallery
from vision.quality import assess
from vision.tracker import IoUTracker, TrackerConfig
from vision.types import Detections, FaceQuality, FloatArray, Frame, Image, Match, SearchResult
from vision.voter import IdentityVoter, VoterConfig

logger = logging.getLogger(__name__)


class GallerySearch(Protocol):
    """What a pipeline searches live faces in: a :class:`~vision.gallery.Gallery`, or one seen through the
    branch's population transform (:class:`edge.faces.adapt.PopulationAdapter`)."""

    def search(self, vectors: FloatArray, k: int = 5) -> list[SearchResult]: ...


@dataclass(frozen=True, slots=True)
class LiveShot:
    """A track's best-quality embedding among those that matched one enrolled person (never a stranger's: an
    embedding that matched nobody is not kept). Held in memory with the track, and with its visit until the visit
    is confirmed or expires (:mod:`edge.faces.visit_shots`)."""

    person_id: str
    vector: FloatArray  # (dim,), unadapted, L2-normalised
    quality: FaceQuality
    score: float
    margin: float


@dataclass(slots=True)
class TrackFace:
    """Identity state of one face track, owned by the camera's pipeline thread."""

    first_seen_at: datetime
    last_embed_t: float = -1e9
    best_quality: float = -1.0
    best_crop: Image | None = None
    best_face: FaceQuality | None = None  # the quality of best_crop
    embedded_quality: float = -1.0
    match: Match | None = None
    voted: dict[str, LiveShot] = field(default_factory=dict)  # person -> best shot that matched them
    shot: LiveShot | None = None  # once decided: the best shot of the decided person


@dataclass(frozen=True, slots=True)
class FaceUpdate:
    """One frame's faces: detections with track ids, and the tracks decided as a known person just now."""

    faces: Detections
    track_ids: list[int]
    newly_decided: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    ended_unknown: list[TrackFace] = field(default_factory=list)  # ended, embedded, never decided as a person


class FaceTracks:
    """Not thread-safe: the camera's pipeline thread alone calls :meth:`update`."""

    def __init__(self, camera_id: str, face: FaceConfig, *, engine: FaceEngine, gallery: Gallery | GallerySearch,
                 zone: PolygonZone | None = None, metrics: EdgeMetrics | None = None) -> None:
        self._camera_id = camera_id
        self._face = face
        self._engine = engine
        self._gallery = gallery
        self._zone = zone
        self._metrics = metrics
        self._tracker = IoUTracker(TrackerConfig(iou_threshold=face.track_iou, max_missed_s=face.track_max_missed_s,
                                                   max_speed=face.track_max_speed))
        v = face.voter
        self._voter = IdentityVoter(VoterConfig(v.threshold, v.min_margin, v.min_votes, v.max_observations))
        self._faces: dict[int, TrackFace] = {}

    def state(self, track_id: int) -> TrackFace | None:
        return self._faces.get(track_id)

    def person_id(self, track_id: int) -> str | None:
        """The person a face track was decided as; None while undecided or unknown."""
        state = self._faces.get(track_id)
        return None if state is None or state.match is None else state.match.person_id

    def settled(self, track_id: int) -> bool:
        """Whether a live face track's identity is settled: decided, or unknown after its observations."""
        return track_id in self._faces and self._voter.is_settled(track_id)

    def pending(self) -> bool:
        """Whether some live face track is still being voted on (neither decided nor settled as unknown)."""
        return any(not self._voter.is_settled(tid) for tid in self._faces)

    def identities(self) -> dict[int, str]:
        """Every live face track decided as a known person."""
        return {tid: s.match.person_id for tid, s in self._faces.items()
                if s.match is not None and s.match.person_id is not None}

    def _timed(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        if self._metrics is not None:
            self._metrics.stage.labels(self._camera_id, stage).observe(now - start)
        return now

    def update(self, frame: Frame) -> FaceUpdate:
        t0 = time.perf_counter()
        dets = self._engine.detect(frame.image)
        if self._zone is not None and len(dets):
            dets = dets[self._zone.contains(dets.xyxy)]
        t1 = self._timed("detect", t0)
        missed = {tid: track.missed for tid, track in self._tracker.tracks.items()}
        dets, ended = self._tracker.update(dets, frame.t_mono)
        unknown: list[TrackFace] = []
        for track in ended:
            gone = self._faces.pop(track.track_id, None)
            self._voter.forget(track.track_id)
            if gone is not None and gone.embedded_quality >= 0 and (gone.match is None or gone.match.person_id is None):
                unknown.append(gone)
        chips = self._engine.chips(frame.image, dets)
        qualities = assess(dets, chips, self._engine.min_face_px, layout=self._engine.landmark_layout)
        track_ids = [int(t) for t in dets.track_id] if dets.track_id is not None else []
        todo: list[int] = []
        for i, tid in enumerate(track_ids):
            if missed.get(tid, 0) >= self._face.revote_after_missed:
                self._revote(tid)
            state = self._faces.setdefault(tid, TrackFace(first_seen_at=frame.captured_at))
            self._keep_best(state, qualities[i], chips[i])
            if self._wants_embedding(tid, state, qualities[i], frame.t_mono):
                todo.append(i)
        t2 = self._timed("align", t1)
        decided: list[int] = []
        if todo:
            vectors = self._engine.embed_chips([chips[i] for i in todo])
            t3 = self._timed("embed", t2)
            results = self._gallery.search(vectors, k=2)
            self._timed("search", t3)
            for row, (i, result) in enumerate(zip(todo, results, strict=True)):
                tid = track_ids[i]
                state = self._faces[tid]
                state.last_embed_t = frame.t_mono
                state.embedded_quality = qualities[i].score
                was_decided = self._voter.decision(tid) is not None
                self._keep_shot(state, vectors[row], qualities[i], result)
                state.match = self._voter.observe(tid, result)
                if state.match.person_id is not None and not was_decided:
                    decided.append(tid)
                    state.shot = state.voted.get(state.match.person_id)
                    state.voted.clear()
        if self._metrics is not None:
            self._metrics.faces.labels(self._camera_id).inc(len(dets))
            self._metrics.embeddings.labels(self._camera_id).inc(len(todo))
        return FaceUpdate(dets, track_ids, decided, [t.track_id for t in ended], unknown)

    def _revote(self, tid: int) -> None:
        """A settled track (a stranger, or decided) reappeared after a gap: its face may be someone else's (the
        tracker continues a box where a face left and another came); vote again. The same VIP is decided again
        within min_votes frames, and the arrival rule's cooldown keeps that from a second alert."""
        state = self._faces.get(tid)
        if state is None or not self._voter.is_settled(tid):
            return
        self._voter.forget(tid)
        state.embedded_quality = -1.0  # embedded again at once, as a new track
        state.match = None

    def _keep_shot(self, state: TrackFace, vector: FloatArray, quality: FaceQuality, result: SearchResult) -> None:
        """Remember the embedding if it matched an enrolled person (as a vote would count it) and is that person's
        best-quality one on this track."""
        best, v = result.best, self._face.voter
        if best is None or best.score < v.threshold or result.margin < v.min_margin:
            return
        held = state.voted.get(best.person_id)
        if held is None or quality.score > held.quality.score:
            state.voted[best.person_id] = LiveShot(best.person_id, np.asarray(vector, np.float32).copy(), quality,
                                                   best.score, result.margin)

    @staticmethod
    def _keep_best(state: TrackFace, quality: FaceQuality, chip: Image) -> None:
        if quality.score > state.best_quality:
            state.best_quality = quality.score
            state.best_crop = chip
            state.best_face = quality

    def _wants_embedding(self, tid: int, state: TrackFace, quality: FaceQuality, t: float) -> bool:
        if state.embedded_quality < 0:
            return True  # a new track
        if self._voter.decision(tid) is not None:
            return False  # decided: identity is per track
        if self._voter.is_settled(tid):
            return quality.score >= state.embedded_quality + self._face.quality_gain
        return t - state.last_embed_t >= self._face.reembed_interval_s
