"""People, not only faces: person boxes tracked with the IoU tracker, and faces attached to them.

A face belongs to a person when its centre lies inside the upper part of the person box (the top
``head_fraction`` of its height). Each face goes to at most one person (the one whose head region
centre is nearest), so an identity decided on a face track is carried by the person track and
persists while the face is turned away or too small to detect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from vision.tracker import IoUTracker, Track, TrackerConfig
from vision.types import Detections, FloatArray, IntArray

logger = logging.getLogger(__name__)


def associate_faces(persons: FloatArray, faces: FloatArray, head_fraction: float = 0.4) -> IntArray:
    """For each face (M, 4), the index of its person (N, 4), or -1. One face per person, nearest first."""
    if not 0 < head_fraction <= 1:
        raise ValueError(f"head_fraction must be in (0, 1], got {head_fraction}")
    out: IntArray = np.full(faces.shape[0], -1, np.int64)
    if persons.shape[0] == 0 or faces.shape[0] == 0:
        return out
    fx = (faces[:, 0] + faces[:, 2]) / 2
    fy = (faces[:, 1] + faces[:, 3]) / 2
    head_bottom = persons[:, 1] + head_fraction * (persons[:, 3] - persons[:, 1])
    inside = ((persons[None, :, 0] <= fx[:, None]) & (fx[:, None] <= persons[None, :, 2])
              & (persons[None, :, 1] <= fy[:, None]) & (fy[:, None] <= head_bottom[None, :]))
    hx = (persons[:, 0] + persons[:, 2]) / 2
    hy = (persons[:, 1] + head_bottom) / 2
    cost = np.hypot(fx[:, None] - hx[None, :], fy[:, None] - hy[None, :])
    cost = np.where(inside, cost, np.inf)
    taken: set[int] = set()
    for flat in np.argsort(cost, axis=None):
        fi, pi = np.unravel_index(flat, cost.shape)
        if not np.isfinite(cost[fi, pi]):
            break
        if out[fi] != -1 or int(pi) in taken:
            continue
        out[fi] = pi
        taken.add(int(pi))
    return out


def _box(row: FloatArray) -> tuple[float, float, float, float]:
    return float(row[0]), float(row[1]), float(row[2]), float(row[3])


def _relative(box: tuple[float, float, float, float], frame: tuple[float, float, float, float]
              ) -> tuple[float, float, float, float]:
    """``box`` in units of ``frame``'s width and height, from its top-left corner."""
    w, h = max(frame[2] - frame[0], 1e-6), max(frame[3] - frame[1], 1e-6)
    return (box[0] - frame[0]) / w, (box[1] - frame[1]) / h, (box[2] - frame[0]) / w, (box[3] - frame[1]) / h


def _absolute(rel: tuple[float, float, float, float], frame: tuple[float, float, float, float]
              ) -> tuple[float, float, float, float]:
    w, h = frame[2] - frame[0], frame[3] - frame[1]
    return frame[0] + rel[0] * w, frame[1] + rel[1] * h, frame[0] + rel[2] * w, frame[1] + rel[3] * h


@dataclass(slots=True)
class PersonState:
    """What is known about one person track; owned by the camera's pipeline thread."""

    track_id: int
    first_seen: float
    person_id: str | None = None  # identity from a face decided on this person
    face_track: int | None = None
    face_seen: float | None = None
    face_in_box: tuple[float, float, float, float] | None = None  # last face box, relative to the person box


@dataclass(frozen=True, slots=True)
class PersonView:
    """One tracked person in one frame."""

    track_id: int
    box: tuple[float, float, float, float]
    face_box: tuple[float, float, float, float] | None
    face_track: int | None
    person_id: str | None
    first_seen: float


class PeopleTracker:
    """Tracks person boxes and carries face identities on them. One thread calls :meth:`update`."""

    def __init__(self, config: TrackerConfig | None = None, head_fraction: float = 0.4) -> None:
        self._tracker = IoUTracker(config or TrackerConfig(iou_threshold=0.3, max_missed_s=2.0))
        self._head_fraction = head_fraction
        self._states: dict[int, PersonState] = {}

    def update(self, persons: Detections, faces: Detections, identities: dict[int, str], t: float,
               *, faces_looked: bool = True) -> tuple[list[PersonView], list[Track]]:
        """Track ``persons`` at time ``t``; attach ``faces`` (with track ids) and their decided ``identities``
        (face track -> person id). Return this frame's people and the person tracks that ended.

        ``faces_looked=False``: faces were not looked for on this frame (a face cadence); each person keeps the
        face box of the last look, moved and scaled with their body box."""
        tracked, ended = self._tracker.update(persons, t)
        for track in ended:
            self._states.pop(track.track_id, None)
        owner = associate_faces(tracked.xyxy, faces.xyxy, self._head_fraction)
        face_of: dict[int, int] = {int(p): f for f, p in enumerate(owner) if p >= 0}
        ids = tracked.track_id if tracked.track_id is not None else np.zeros((0,), np.int64)
        views: list[PersonView] = []
        for i, tid in enumerate(int(x) for x in ids):
            state = self._states.setdefault(tid, PersonState(tid, t))
            face_box: tuple[float, float, float, float] | None = None
            body = _box(tracked.xyxy[i])
            fi = face_of.get(i)
            if fi is not None:
                face_box = _box(faces.xyxy[fi])
                state.face_seen = t
                state.face_in_box = _relative(face_box, body)
                if faces.track_id is not None:
                    state.face_track = int(faces.track_id[fi])
            elif faces_looked:
                state.face_in_box = None
            elif state.face_in_box is not None:
                face_box = _absolute(state.face_in_box, body)
            if state.person_id is None and state.face_track is not None:
                decided = identities.get(state.face_track)  # may be decided after the face turned away
                if decided is not None:
                    logger.debug("person track %s is %s (face track %s)", tid, decided, state.face_track)
                    state.person_id = decided
            views.append(PersonView(tid, body, face_box, state.face_track, state.person_id,
                                    state.first_seen))
        return views, ended
