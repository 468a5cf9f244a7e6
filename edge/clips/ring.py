"""The per-camera ring buffer of recent frames that gives each clip its pre-roll.

The ring is sized in seconds, not frames: a busy box processes fewer frames (the camera reader keeps only
the newest), so the frames get sparse, but the ring still reaches as far back. It keeps the frame that was
showing ``keep_s`` before the newest one, however long ago it was captured, and a pre-roll starts with the
frame that was showing at its start (:meth:`FrameRing.covering`): a clip never shows less than its
configured pre-roll because frames were sparse.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from edge.clips.frames import PersonLike
from vision.types import Frame


@dataclass(frozen=True, slots=True)
class RingEntry:
    """A frame as pushed, with the people in it (for blurring later)."""

    frame: Frame
    people: tuple[PersonLike, ...]


class FrameRing:
    """The frames of the last ``keep_s`` seconds (by ``t_mono``, relative to the newest frame) and the one
    before them (the frame showing ``keep_s`` ago), at most ``max_frames`` of them (a memory bound for fast
    cameras). It holds references to the frames, never copies. One thread uses it."""

    def __init__(self, keep_s: float, max_frames: int) -> None:
        if keep_s < 0 or max_frames < 1:
            raise ValueError(f"keep_s must be >= 0 and max_frames >= 1, got {keep_s} and {max_frames}")
        self.keep_s = keep_s
        self.max_frames = max_frames
        self._entries: deque[RingEntry] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def newest_t(self) -> float | None:
        return self._entries[-1].frame.t_mono if self._entries else None

    def push(self, entry: RingEntry) -> None:
        self._entries.append(entry)
        horizon = entry.frame.t_mono - self.keep_s
        # drop the oldest frame once the next one was already showing at the horizon
        while len(self._entries) > self.max_frames or (
                len(self._entries) > 1 and self._entries[1].frame.t_mono <= horizon):
            self._entries.popleft()

    def since(self, t_mono: float) -> list[RingEntry]:
        """The buffered entries at or after ``t_mono``, oldest first."""
        return [e for e in self._entries if e.frame.t_mono >= t_mono]

    def covering(self, t_mono: float) -> list[RingEntry]:
        """The buffered entries from the one showing at ``t_mono`` (the last captured at or before it; the
        oldest buffered one when none is that old) on, oldest first."""
        entries = list(self._entries)
        start = 0
        for i, e in enumerate(entries):
            if e.frame.t_mono > t_mono:
                break
            start = i
        return entries[start:]

    def clear(self) -> None:
        self._entries.clear()
