"""IoU tracker with a track lifecycle (tentative, confirmed, lost, removed) and per-track best shot.

With ``max_speed`` set, a track also keeps its velocity: the IoU is taken with its last box and with that box moved
on to where it should be now, and a detection left over by the IoU pass continues a track left over by it when the
detection is about the same size and lies within ``max_speed`` box sizes per second of where the track was or should
be. A face that walks across the picture moves most of its own width between two frames, which IoU alone takes for
a new face every frame (and a new track has no votes); both places count because a prediction overshoots someone
who stops."""

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
    max_speed: float = 0.0  # box sizes per second a track may move between sightings; 0 = IoU on the last box only
    max_size_ratio: float = 1.5  # a detection continues a track by distance only if about its size
    max_gap_s: float = 0.4  # the longest gap over which a track is continued by distance (and its speed counted)


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
    velocity: FloatArray | None = None  # centre px per second, with max_speed


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
        last = np.stack([self._tracks[i].box for i in ids]) if ids else np.zeros((0, 4), np.float32)
        iou = iou_matrix(last, dets.xyxy)
        boxes = last
        if self.config.max_speed > 0 and ids:
            # where each track should be by now, or where it was: someone who stops stays by the last box
            boxes = np.stack([self._predicted(self._tracks[i], t) for i in ids])
            iou = np.maximum(iou, iou_matrix(boxes, dets.xyxy))
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
        if self.config.max_speed > 0 and iou.size:
            self._by_distance(ids, boxes, last, dets.xyxy, t, assigned, used_tracks)
        for di in range(len(dets)):
            if assigned[di] == -1:
                track = Track(self._next_id, dets.xyxy[di].copy(), t, t)
                self._tracks[track.track_id] = track
                assigned[di] = track.track_id
                self._next_id += 1
            else:
                track = self._tracks[int(assigned[di])]
                self._move(track, dets.xyxy[di], t)
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

    def _predicted(self, track: Track, t: float) -> FloatArray:
        """The track's box moved on by its velocity to ``t`` (over at most max_gap_s)."""
        if track.velocity is None:
            return track.box
        dx, dy = track.velocity * min(t - track.last_seen, self.config.max_gap_s)
        return track.box + np.array([dx, dy, dx, dy], np.float32)

    def _move(self, track: Track, box: FloatArray, t: float) -> None:
        dt = t - track.last_seen
        if self.config.max_speed > 0 and 0 < dt <= self.config.max_gap_s:
            step = (_centre(box) - _centre(track.box)) / dt
            track.velocity = step if track.velocity is None else (0.5 * track.velocity + 0.5 * step).astype(np.float32)
        elif dt > self.config.max_gap_s:
            track.velocity = None
        track.box = box.copy()
        track.last_seen = t

    def _by_distance(self, ids: list[int], predicted: FloatArray, last: FloatArray, dets: FloatArray, t: float,
                     assigned: IntArray, used_tracks: set[int]) -> None:
        """Pair the tracks and detections the IoU pass left, nearest first (in track sizes), where a detection of
        about the track's size lies within the distance the track may move since it was last seen (measured from
        where it should be by now or from where it was, whichever is nearer: a prediction overshoots someone
        who stops, and a face beside them must not take their track)."""
        pairs: list[tuple[float, int, int]] = []
        free = [di for di in range(len(dets)) if assigned[di] == -1]
        for ti, tid in enumerate(ids):
            track = self._tracks[tid]
            dt = t - track.last_seen
            if ti in used_tracks or not 0 < dt <= self.config.max_gap_s:
                continue
            size = _size(predicted[ti])
            reach = self.config.max_speed * size * dt
            for di in free:
                other = _size(dets[di])
                if max(size, other) > self.config.max_size_ratio * max(min(size, other), 1e-6):
                    continue
                centre = _centre(dets[di])
                distance = float(min(np.hypot(*(centre - _centre(predicted[ti]))),
                                     np.hypot(*(centre - _centre(last[ti])))))
                if distance <= reach:
                    pairs.append((distance / max(size, 1e-6), ti, di))
        for _, ti, di in sorted(pairs):
            if ti in used_tracks or assigned[di] != -1:
                continue
            used_tracks.add(ti)
            assigned[di] = ids[ti]


def _centre(box: FloatArray) -> FloatArray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float32)


def _size(box: FloatArray) -> float:
    """The longer side: a face cut by the picture's edge keeps its height."""
    return float(max(box[2] - box[0], box[3] - box[1]))
