"""Person detection at a lower cadence: the person detector need not run on every frame.

A person detector with a fixed input (NanoDet: 416 px) costs the same on any frame, and people at a counter
stand where they stand for seconds. The rule, per camera, on each frame the motion gate has observed:

- ``first`` / ``whole``: the detector runs when it never has, and on the gate's whole-frame looks (the first
  frame and every refresh), so nothing stays unseen for long; but not on a refresh when nothing has moved since
  its last run (``still``): it would look at the same picture again;
- ``outside``: it runs at once when something moves *outside* the people it found last: a blob that changed
  since the previous frame (``MotionResult.changed``: what moves now, not the lingering difference from the
  background where someone stopped or left) of which less than ``covered`` lies inside some person's box
  (padded by ``pad_px``). Someone arrives, leaves or walks away from where they stood;
- ``due``: it runs when something moves inside the people's boxes and ``every`` frames have passed since its
  last run (people shifting where they stand, a clerk leaning over the desk);
- ``settled``: it runs once when the picture stops moving, if something moved since its last run (or its last
  run was on a moving frame): it sees everyone where they came to rest, however few frames the camera gets;
- ``carried`` / ``still``: otherwise the people it found last are carried over unchanged: only small moves
  inside their boxes since a recent run, or nothing moves at all.

The person tracker downstream sees the carried boxes as the same people, so their tracks, roles, services
and waits go on. Not thread-safe: the camera's pipeline thread owns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vision.motion import MotionResult
from vision.types import FloatArray

Decision = Literal["first", "whole", "outside", "due", "settled", "carried", "still"]
RUNS: frozenset[Decision] = frozenset({"first", "whole", "outside", "due", "settled"})


class CadenceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    every: int = Field(default=3, ge=1, le=100,
                       description="While people only move inside their boxes, the person detector runs on every "
                                   "N-th frame and the boxes it found are carried over between (1: every frame "
                                   "with motion). Motion outside the people runs it at once.")
    covered: float = Field(default=0.8, gt=0.0, le=1.0,
                           description="A moving blob at least this much inside a person's (padded) box is that "
                                       "person moving where they stand; less is someone arriving or leaving.")
    pad_px: int = Field(default=24, ge=0, le=1000, description="Padding of each person's box, in frame pixels.")


def uncovered(blobs: Sequence[Sequence[float]], people: FloatArray, config: CadenceConfig) -> bool:
    """Whether some moving blob lies less than ``covered`` inside every person box in ``people`` (N, 4)."""
    for blob in blobs:
        x1, y1, x2, y2 = (float(v) for v in blob)
        area = max(0.0, x2 - x1) * max(0.0, y2 - y1)
        if area <= 0:
            continue
        if len(people) == 0:
            return True
        pad = config.pad_px
        ix = np.clip(np.minimum(x2, people[:, 2] + pad) - np.maximum(x1, people[:, 0] - pad), 0, None)
        iy = np.clip(np.minimum(y2, people[:, 3] + pad) - np.maximum(y1, people[:, 1] - pad), 0, None)
        if float((ix * iy).max()) / area < config.covered:
            return True
    return False


class PersonCadence:
    """One camera's person-detection cadence (see the module docstring): :meth:`decide` on each observed frame,
    :meth:`ran` with the boxes found whenever the decision was to run."""

    def __init__(self, config: CadenceConfig | None = None) -> None:
        self.config = config or CadenceConfig()
        self._since: int | None = None  # frames since the detector last ran; None: never
        self._moved = False  # something moved since the detector last ran (or it last ran on a moving frame)
        self._moving_now = False  # the frame being decided moved since the previous one
        self.carried: FloatArray = np.zeros((0, 4), np.float32)  # the boxes it found last

    def decide(self, motion: MotionResult) -> Decision:
        """Run the detector on this frame, or carry its last boxes over; counts the frame."""
        if self._since is None:
            return "first"
        self._since += 1
        self._moving_now = bool(motion.changed)
        moved_before, self._moved = self._moved, self._moved or self._moving_now
        if motion.full_frame:  # a refresh, or motion over most of the picture
            return "whole" if self._moved or motion.moving_fraction >= 0.5 else "still"
        if not motion.changed:
            return "settled" if moved_before else "still"
        if uncovered(motion.changed, self.carried, self.config):
            return "outside"
        return "due" if self._since >= self.config.every else "carried"

    def ran(self, boxes: FloatArray) -> None:
        """The detector ran on this frame and found ``boxes`` (N, 4)."""
        self._since = 0
        self._moved = self._moving_now
        self.carried = np.asarray(boxes, np.float32).reshape(-1, 4)
