"""IoU tracker with a track lifecycle (tentative, confirmed, lost, removed) and per-track best shot."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from vision.types import Detections, FloatArray, IntArray


class TrackState(Enum):
    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    iou_threshold: float = 0.25
    confirm_hits: int = 1
    max_missed_s: float = 1.5


@dataclass(slots=True)
class Track:
    """Mutable state owned by the tracker's thread."""

    track_id: int
    box: FloatArray
    first_seen: float
    last_seen: float
    hits: int = 1
    missed: int = 0
    state: TrackState = TrackState.TENTATIVE


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    out: FloatArray = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)
    return out


class IoUTracker:
    """Greedy highest-IoU association. Only its owner thread calls :meth:`update`."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: dict[int, Track] = {}
        self._next_id = 1

    @property
    def tracks(self) -> dict[int, Track]:
        return self._tracks

    def update(self, dets: Detections, t: float) -> tuple[Detections, list[Track]]:
        """Assign track ids to ``dets`` at monotonic time ``t``; return them and the tracks ended now."""
        ids = list(self._tracks)
        boxes = np.stack([self._tracks[i].box for i in ids]) if ids else np.zeros((0, 4), np.float32)
        iou = iou_matrix(boxes, dets.xyxy)
        assigned: IntArray = np.full(len(dets), -1, np.int64)
        used_tracks: set[int] = set()
        if iou.size:
            for flat in np.argsort(-iou, axis=None):
                ti, di = np.unravel_index(flat, iou.shape)
                if iou[ti, di] < self.config.iou_threshold:
                    break
                if ti in used_tracks or assigned[di] != -1:
                    continue
                used_tracks.add(int(ti))
                assigned[di] = ids[ti]
        for di in range(len(dets)):
            if assigned[di] == -1:
                track = Track(self._next_id, dets.xyxy[di].copy(), t, t)
                self._tracks[track.track_id] = track
                assigned[di] = track.track_id
                self._next_id += 1
            else:
                track = self._tracks[int(assigned[di])]
                track.box = dets.xyxy[di].copy()
                track.last_seen = t
                track.hits += 1
                track.missed = 0
            if track.hits >= self.config.confirm_hits:
                track.state = TrackState.CONFIRMED
        seen = {int(x) for x in assigned}
        ended: list[Track] = []
        for tid in list(self._tracks):
            if tid in seen:
                continue
            track = self._tracks[tid]
            track.missed += 1
            track.state = TrackState.LOST
            if t - track.last_seen > self.config.max_missed_s:
                ended.append(self._tracks.pop(tid))
        return dets.with_track_ids(assigned), ended
