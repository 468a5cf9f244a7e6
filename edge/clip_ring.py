"""The per-camera ring buffer of recent frames that gives each clip its pre-roll."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from edge.clip_frames import PersonLike
from vision.types import Frame


@dataclass(frozen=True, slots=True)
class RingEntry:
    """A frame as pushed, with the people in it (for blurring later)."""

    frame: Frame
    people: tuple[PersonLike, ...]


class FrameRing:
    """The frames of the last ``keep_s`` seconds (by ``t_mono``, relative to the newest frame), at most
    ``max_frames`` of them. It holds references to the frames, never copies. One thread uses it."""

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
        oldest_kept = entry.frame.t_mono - self.keep_s
        while len(self._entries) > self.max_frames or self._entries[0].frame.t_mono < oldest_kept:
            self._entries.popleft()

    def since(self, t_mono: float) -> list[RingEntry]:
        """The buffered entries at or after ``t_mono``, oldest first."""
        return [e for e in self._entries if e.frame.t_mono >= t_mono]

    def clear(self) -> None:
        self._entries.clear()
