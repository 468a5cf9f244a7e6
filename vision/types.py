"""Core value types shared by every vision stage.

All types are frozen; functions return new objects and never mutate their input. Boxes are
``xyxy`` in absolute pixels and images are BGR uint8 HxWx3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Image = npt.NDArray[np.uint8]


def _check_image(image: Image) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be BGR uint8 HxWx3, got dtype={image.dtype} shape={image.shape}")


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded camera frame."""

    camera_id: str
    index: int
    captured_at: datetime
    t_mono: float
    image: Image

    def __post_init__(self) -> None:
        _check_image(self.image)
        if self.captured_at.tzinfo is None:
            raise ValueError("captured_at must be timezone-aware (UTC)")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, slots=True)
class Detections:
    """Struct-of-arrays detections: boxes, scores and optional landmarks and track ids."""

    xyxy: FloatArray
    score: FloatArray
    landmarks: FloatArray | None = None
    track_id: IntArray | None = None

    def __post_init__(self) -> None:
        n = self.xyxy.shape[0] if self.xyxy.ndim == 2 else -1
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {self.xyxy.shape}")
        if self.score.shape != (n,):
            raise ValueError(f"score must have shape ({n},), got {self.score.shape}")
        if self.landmarks is not None and (self.landmarks.ndim != 3 or self.landmarks.shape[0] != n
                                           or self.landmarks.shape[2] != 2):
            raise ValueError(f"landmarks must have shape ({n}, K, 2), got {self.landmarks.shape}")
        if self.track_id is not None and self.track_id.shape != (n,):
            raise ValueError(f"track_id must have shape ({n},), got {self.track_id.shape}")

    @classmethod
    def empty(cls, with_landmarks: bool = False) -> Detections:
        lm = np.zeros((0, 5, 2), np.float32) if with_landmarks else None
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), lm)

    @classmethod
    def from_lists(cls, boxes: list[list[float]], scores: list[float],
                   landmarks: list[list[list[float]]] | None = None) -> Detections:
        if not boxes:
            return cls.empty(with_landmarks=landmarks is not None)
        lm = np.asarray(landmarks, np.float32) if landmarks is not None else None
        return cls(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32), lm)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.int64] | slice) -> Detections:
        return Detections(
            xyxy=self.xyxy[index],
            score=self.score[index],
            landmarks=None if self.landmarks is None else self.landmarks[index],
            track_id=None if self.track_id is None else self.track_id[index],
        )

    def with_track_ids(self, track_id: IntArray) -> Detections:
        return Detections(self.xyxy, self.score, self.landmarks, np.asarray(track_id, np.int64))

    @property
    def widths(self) -> FloatArray:
        return (self.xyxy[:, 2] - self.xyxy[:, 0]).astype(np.float32)

    @property
    def heights(self) -> FloatArray:
        return (self.xyxy[:, 3] - self.xyxy[:, 1]).astype(np.float32)

    @property
    def centers(self) -> FloatArray:
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2,
                         (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2], axis=1).astype(np.float32)


@dataclass(frozen=True, slots=True)
class FaceQuality:
    """A face's usability for recognition: an overall score in [0, 1] and its parts."""

    score: float
    size_px: float
    size: float
    blur: float
    sharpness: float
    pose: float
    yaw: float
    detector: float


@dataclass(frozen=True, slots=True)
class FaceObservation:
    """One embedded face of one track."""

    track_id: int
    embedding: FloatArray
    quality: FaceQuality
    crop: Image
    box: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        if self.embedding.ndim != 1 or self.embedding.dtype != np.float32:
            raise ValueError("embedding must be a 1-d float32 vector")


@dataclass(frozen=True, slots=True)
class Match:
    """Gallery answer for one probe. ``person_id`` None means unknown."""

    person_id: str | None
    score: float
    margin: float
    votes: int = 0


@dataclass(frozen=True, slots=True)
class PlateRead:
    """One plate read in one frame: normalised ``text``, the recogniser's unconstrained ``raw`` output,
    ``score`` (weakest character's confidence), background colour, box (xyxy) and per-character scores."""

    text: str
    raw: str
    score: float
    color: str | None
    box: tuple[float, float, float, float]
    char_scores: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Interaction:
    """One staff-customer service on one camera. ``staff_id`` None: staff by zone, identity unknown.
    ``duration_s`` comes from the monotonic clock; it is None while the service is open."""

    staff_id: str | None
    customer_track: int
    started_at: datetime
    ended_at: datetime | None
    camera_id: str
    staff_track: int = -1
    vip_id: str | None = None
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class GalleryHit:
    """One person's best score in a gallery search."""

    person_id: str
    score: float


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Per-person hits, best first."""

    hits: tuple[GalleryHit, ...] = field(default_factory=tuple)

    @property
    def best(self) -> GalleryHit | None:
        return self.hits[0] if self.hits else None

    @property
    def margin(self) -> float:
        if not self.hits:
            return 0.0
        runner_up = self.hits[1].score if len(self.hits) > 1 else 0.0
        return self.hits[0].score - max(runner_up, 0.0)
