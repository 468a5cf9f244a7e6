"""The per-camera plate pipeline for ``role: parking`` and the thread that drives it.

read plates in the entry zone -> IoU plate tracks -> per-track character vote -> PlateMatcher
-> (optional) driver-face check on the deciding frame -> vip_vehicle_arrival rule.

Motion-gated (the default), plates are read only where they can be new (:meth:`PlatePipeline._where`): in the
regions that differ from the background and around each plate track still being voted on, inside the entry zone,
on frames where something moves now (``MotionResult.changed``) or a vote is open; the whole zone on the gate's
whole-frame looks unless nothing has moved since the last read. A plate still being voted on is read on every
frame until it is decided, and a plate that moves on every frame it moves (its reads must follow it, or its track
splits: a vote of one read, or one car decided twice); any other motion is read at most every ``look_interval_s``,
and a parked car, a still lot or a frame with nothing moving cost the motion gate only. On a frame not read, the
plates the last read found are carried over where they were, so a parked car keeps its one track (and its one
decision) until a read no longer finds it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from alerts.envelope import DriverFace
from calibration.zones import PolygonZone
from edge.cameras.config import CameraConfig
from edge.metrics import EdgeMetrics
from edge.parking.config import PlatesConfig
from edge.parking.registry import PlateRegistry
from edge.parking.vehicle_rule import VehicleSighting, VipVehicleRule
from vision.engines.base import FaceEngine
from vision.engines.gated import CameraGate
from vision.gallery import Gallery
from vision.motion import MotionResult, focus
from vision.plates.reader import PlateReader
from vision.plates.voting import CharRead, PlateVoter, VoteResult
from vision.tracker import IoUTracker, TrackerConfig
from vision.types import Detections, Frame, PlateRead

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DriverCheck:
    """The face engine and gallery of the runtime, and the similarity that counts as the same person."""

    engine: FaceEngine
    gallery: Gallery
    threshold: float

    def check(self, frame: Frame, person_id: str) -> DriverFace:
        dets = self.engine.detect(frame.image)
        if len(dets) == 0:
            return DriverFace(confirmed=False, faces=0)
        chips = self.engine.chips(frame.image, dets)
        results = self.gallery.search(self.engine.embed_chips(chips), k=2)
        best: float | None = None
        confirmed = False
        for result in results:
            top = result.best
            for hit in result.hits:
                if hit.person_id == person_id:
                    best = hit.score if best is None else max(best, hit.score)
            if top is not None and top.person_id == person_id and top.score >= self.threshold:
                confirmed = True
        return DriverFace(confirmed=confirmed, score=None if best is None else round(best, 4), faces=len(dets))


def _overlap(a: tuple[float, float, float, float], b: np.ndarray, pad: float) -> bool:
    """Whether box ``a`` touches box ``b`` grown by ``pad`` on every side."""
    return bool(a[0] <= b[2] + pad and b[0] - pad <= a[2] and a[1] <= b[3] + pad and b[1] - pad <= a[3])


@dataclass(slots=True)
class PlateTrack:
    first_seen_at: datetime
    colours: Counter[str] = field(default_factory=Counter)
    last_frame: Frame | None = None
    decided: bool = False


class PlatePipeline:
    """Processes frames of one parking camera. Not thread-safe: one thread calls :meth:`process`."""

    def __init__(self, camera: CameraConfig, config: PlatesConfig, *, reader: PlateReader,
                 registry: PlateRegistry, rule: VipVehicleRule, driver: DriverCheck | None = None,
                 metrics: EdgeMetrics | None = None) -> None:
        self.camera = camera
        self._config = config
        self._reader = reader
        self._registry = registry
        self._rule = rule
        self._driver = driver if config.driver_face else None
        self._metrics = metrics
        self._zone = PolygonZone(f"{camera.id}-entry", tuple(camera.zone)) if camera.zone else None
        self._tracker = IoUTracker(TrackerConfig(iou_threshold=config.track_iou,
                                                 max_missed_s=config.track_max_missed_s))
        self._voter = PlateVoter(config.voter.voter_config())
        self._tracks: dict[int, PlateTrack] = {}
        # plates are read only in frames where something moves (vision.motion), when the camera turns it on
        self.gate = CameraGate(camera.motion) if camera.motion.enabled else None
        self._last_look: float | None = None  # t_mono of the last frame read for new plates
        self._carried = Detections.empty()  # the plates the last read found, carried over frames not read
        self._moved = True  # something moved since the last read (the first frame is read whole)
        self.looks: dict[str, int] = {}  # how each frame was read: whole, regions, skipped, bounded

    def _where(self, frame: Frame) -> tuple[str, MotionResult | None]:
        """Where to read plates in this frame (see the module docstring), and how the frame counts."""
        if self.gate is None:
            return "whole", None
        t0 = time.perf_counter()
        motion = self.gate.observe(frame.image, frame.t_mono)
        if self._metrics is not None:
            self._metrics.stage.labels(self.camera.id, "motion").observe(time.perf_counter() - t0)
        voting = [self._tracker.tracks[t].box.tolist() for t, s in self._tracks.items()
                  if not s.decided and t in self._tracker.tracks]
        self._moved = self._moved or bool(motion.changed)
        where = focus(motion, voting, self.camera.motion)
        if where.idle or not (voting or motion.changed or (where.full_frame and self._moved)):
            # nothing to read, nothing moving now (a parked car, a car just gone), or a refresh of the picture
            # the last read saw
            return "skipped", None
        following = any(_overlap(blob, track.box, self.camera.motion.pad_px)
                        for blob in motion.changed for track in self._tracker.tracks.values())
        bounded = (not voting and not following and self._last_look is not None
                   and frame.t_mono - self._last_look < self._config.look_interval_s)
        if bounded and not where.full_frame:
            return "bounded", None
        self._last_look = frame.t_mono
        self._moved = False
        return ("whole" if where.full_frame else "regions"), where

    def _read(self, frame: Frame, where: MotionResult | None) -> list[PlateRead]:
        """The plates read in the entry zone, or in each region of ``where`` that lies in it."""
        if where is None or where.full_frame:
            return self._reader.read(frame.image, self._zone)
        reads: list[PlateRead] = []
        for x1, y1, x2, y2 in where.regions:
            rect = PolygonZone("region", ((x1, y1), (x2, y1), (x2, y2), (x1, y2)))
            for read in self._reader.read(frame.image, rect):
                centre = np.array([[(read.box[0] + read.box[2]) / 2, (read.box[1] + read.box[3]) / 2] * 2],
                                  np.float32)
                if self._zone is None or self._zone.contains(centre)[0]:
                    reads.append(read)
        return reads

    @property
    def urgent(self) -> bool:
        """A plate in view is still being voted on: its next frames decide whether a VIP's car arrived (the
        scheduler serves them first)."""
        return any(not s.decided and t in self._tracker.tracks for t, s in self._tracks.items())

    def process(self, frame: Frame) -> list[VehicleSighting]:
        """Run one frame; return the plate tracks decided now (matched or not)."""
        how, where = self._where(frame)
        self.looks[how] = self.looks.get(how, 0) + 1
        t0 = time.perf_counter()
        reads = self._read(frame, where) if how in ("whole", "regions") else []
        if self._metrics is not None:
            if how in ("whole", "regions"):  # the stage's time is that of the reads
                self._metrics.stage.labels(self.camera.id, "plates").observe(time.perf_counter() - t0)
            self._metrics.detector_frames.labels(self.camera.id, "plates", how).inc()
            self._metrics.frames.labels(self.camera.id).inc()
        dets = (Detections(np.asarray([r.box for r in reads], np.float32).reshape(-1, 4),
                           np.asarray([r.score for r in reads], np.float32)) if reads else Detections.empty())
        if how in ("whole", "regions"):
            self._carried = dets
        else:  # not read: the plates the last read found stand where they were (nothing moved by them)
            dets, reads = self._carried, []
        dets, ended = self._tracker.update(dets, frame.t_mono)
        decided: list[tuple[int, VoteResult, PlateTrack, Frame]] = []
        track_ids = [int(t) for t in dets.track_id] if dets.track_id is not None else []
        for read, tid in zip(reads, track_ids[:len(reads)], strict=True):
            track = self._tracks.setdefault(tid, PlateTrack(first_seen_at=frame.captured_at))
            track.last_frame = frame
            if read.color:
                track.colours[read.color] += 1
            result = self._voter.observe(tid, CharRead(read.text, read.char_scores or (read.score,) * len(read.text)))
            if result is not None:
                track.decided = True
                decided.append((tid, result, track, frame))
        for gone in ended:
            track_state = self._tracks.pop(gone.track_id, None)
            result = self._voter.end(gone.track_id)
            if result is not None and track_state is not None and track_state.last_frame is not None:
                decided.append((gone.track_id, result, track_state, track_state.last_frame))
        return [self._decide(tid, result, track, seen, frame) for tid, result, track, seen in decided]

    def flush(self) -> list[VehicleSighting]:
        """End every open track (the source has ended) and return the decisions that brings."""
        out: list[VehicleSighting] = []
        for tid in list(self._tracker.tracks):
            self._tracker.tracks.pop(tid)
            track = self._tracks.pop(tid, None)
            result = self._voter.end(tid)
            if result is not None and track is not None and track.last_frame is not None:
                out.append(self._decide(tid, result, track, track.last_frame, track.last_frame))
        return out

    def _decide(self, tid: int, result: VoteResult, track: PlateTrack, seen: Frame, now: Frame) -> VehicleSighting:
        match = self._registry.matcher.match(result.text)
        colour = track.colours.most_common(1)[0][0] if track.colours else None
        logger.info("camera %s: plate track %s read %s (score %.2f, %s reads) -> %s%s", self.camera.id, tid,
                    result.text, result.score, result.reads, match.person_id or "no match",
                    " (ambiguous)" if match.ambiguous else "")
        driver = None
        if match.person_id is not None and self._driver is not None:
            driver = self._driver.check(seen, match.person_id)
        return VehicleSighting(self.camera.id, self.camera.display_name, tid, result, match, colour,
                               track.first_seen_at, seen.captured_at, now.t_mono, driver)
