"""One scheduler across the branch's cameras: which camera's newest frame is processed next.

The rule:

- At most ``slots`` frames are processed at once, over all cameras (one per core: more threads than cores
  only make every frame later, and a VIP's frame waits behind a counter's).
- When a slot frees, it goes to a waiting camera in this order:
  0. *urgent* cameras under budget: a camera of a role in ``urgent_roles`` (none by default) whose
     pipeline is deciding who just arrived (a face or a plate track still being voted on). A VIP's alert is
     due within a second of the arrival, and each vote needs a new frame: while the vote is open, the camera's
     frames go before every other camera's, up to its budget; the counters make up their frames afterwards;
  1. cameras still *under budget* (fewer frames processed in the last ``window_s`` than their role's
     ``budget_fps`` allows) before cameras over it;
  2. then weighted fair shares: each grant advances the camera's virtual time by ``1 / weight`` of its
     role (entrance and parking 3, lobby 2, counter 1.5) and the camera with the earliest virtual time goes
     first, so that when the cores cannot serve every budget, an entrance gets twice a counter's frames and
     no camera starves, however long its frames take (a camera that starts waiting is brought up to the
     earliest virtual time of those already waiting: time it spent idle is not saved up as a burst);
  3. then the higher weight, then the camera that has waited longest.
  A camera over budget still gets a slot nobody under budget wants: idle cores are never left idle.
- Drop policy **newest-wins**: a camera never queues frames. Its reader keeps only the newest frame, a
  waiting camera processes the newest frame once it is granted a slot, and every frame it never processed
  is counted as dropped (``FrameSource.health().dropped``, exported per camera in /metrics).

Each camera's pipeline thread asks for a slot with :meth:`FrameScheduler.slot`; the scheduler's state is
guarded by one condition variable and changed only inside it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CameraRole = Literal["entrance", "lobby", "counter", "parking"]
DEFAULT_BUDGET_FPS: dict[CameraRole, float] = {"entrance": 10.0, "parking": 5.0, "lobby": 5.0, "counter": 5.0}
DEFAULT_WEIGHT: dict[CameraRole, float] = {"entrance": 3.0, "parking": 3.0, "lobby": 2.0, "counter": 1.5}


class SchedulerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Share the cores between cameras by priority and budget. "
                                                    "Off: every camera processes frames as fast as it can.")
    slots: int | None = Field(default=None, ge=1, le=256,
                              description="Frames processed at once over all cameras; None: one per core this "
                                          "process may run on.")
    window_s: float = Field(default=1.0, gt=0.0, le=60.0,
                            description="Window over which a camera's processed frames are counted for its budget.")
    budget_fps: dict[CameraRole, float] = Field(
        default_factory=lambda: dict(DEFAULT_BUDGET_FPS),
        description="Frames per second each role is due before cameras over their budget are served.")
    weight: dict[CameraRole, float] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHT),
        description="Share of the cores of each role among cameras under budget; higher is served first.")
    opencv_threads: int = Field(default=1, ge=0, le=64,
                                description="Threads OpenCV may use inside one image operation (cv2.setNumThreads). "
                                            "1: the cameras' own threads share the cores, and OpenCV's pool of "
                                            "waiting workers cost 7 % of a core on a still scene of 8 cameras "
                                            "(python -m bench.branch); 0: OpenCV's choice.")
    urgent_roles: frozenset[CameraRole] = Field(
        default=frozenset(),
        description="Roles whose frames go first, up to their budget, while their pipeline is voting on who "
                    "arrived (a face or plate track not yet decided), e.g. [entrance, parking]. Empty (the "
                    "default): no camera goes first. With [entrance, parking], bench.branch alerted every VIP "
                    "visit in 6 of 6 motion-gated runs with a VIP alert p95 of 0.35-0.71 s, but its overloaded "
                    "whole-frame run lost 1 of 12 visits in 2 of 3 runs (none in 3 runs without), for a cause "
                    "not yet found.")


@dataclass(slots=True)
class CameraShare:
    """One camera's place in the scheduler (guarded by the scheduler's condition)."""

    camera_id: str
    weight: float
    budget_fps: float
    may_hurry: bool = False  # its role is one of urgent_roles
    urgent: bool = False  # it asked for its waiting frame's slot as urgent
    recent: deque[float] = field(default_factory=deque)  # grant times within the window
    vtime: float = 0.0  # weighted frames granted (fair-share virtual time)
    waiting_since: float | None = None
    granted: int = 0
    waited_s: float = 0.0
    urgent_granted: int = 0


@dataclass(frozen=True, slots=True)
class ShareStats:
    camera_id: str
    granted: int
    waited_s: float
    urgent: int = 0  # grants asked for as urgent


class FrameScheduler:
    """Grants processing slots to cameras (see the module docstring)."""

    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self.config = config or SchedulerConfig()
        self._cond = threading.Condition()
        self.slots = self.config.slots or len(os.sched_getaffinity(0))
        self._free = self.slots
        self._shares: dict[str, CameraShare] = {}

    def register(self, camera_id: str, role: CameraRole) -> None:
        with self._cond:
            self._shares[camera_id] = CameraShare(camera_id, max(self.config.weight.get(role, 1.0), 1e-3),
                                                  self.config.budget_fps.get(role, 5.0),
                                                  may_hurry=role in self.config.urgent_roles)

    def _trim(self, share: CameraShare, now: float) -> None:
        while share.recent and share.recent[0] <= now - self.config.window_s:
            share.recent.popleft()

    def _rank(self, share: CameraShare, now: float) -> tuple[bool, bool, float, float, float]:
        self._trim(share, now)
        over = len(share.recent) >= share.budget_fps * self.config.window_s
        return (over or not share.urgent, over, share.vtime, -share.weight, share.waiting_since or now)

    def _next(self, now: float) -> str | None:
        waiting = [s for s in self._shares.values() if s.waiting_since is not None]
        if not waiting:
            return None
        return min(waiting, key=lambda s: self._rank(s, now)).camera_id

    def acquire(self, camera_id: str, urgent: bool = False) -> float:
        """Wait for a slot (``urgent``: see the module docstring); returns the seconds waited."""
        with self._cond:
            share = self._shares[camera_id]
            share.urgent = urgent and share.may_hurry
            start = time.monotonic()
            others = [s.vtime for s in self._shares.values() if s.waiting_since is not None]
            share.vtime = max(share.vtime, min(others, default=share.vtime))
            share.waiting_since = start
            while not (self._free > 0 and self._next(time.monotonic()) == camera_id):
                self._cond.wait(0.5)
            now = time.monotonic()
            self._free -= 1
            share.waiting_since = None
            share.recent.append(now)
            share.vtime += 1.0 / share.weight
            share.granted += 1
            share.urgent_granted += int(share.urgent)
            share.urgent = False
            share.waited_s += now - start
            self._cond.notify_all()  # another slot may be free for the next camera in line
            return now - start

    def release(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()

    @contextmanager
    def slot(self, camera_id: str, urgent: bool = False) -> Iterator[float]:
        """Hold a processing slot for one frame; yields the seconds waited for it."""
        waited = self.acquire(camera_id, urgent)
        try:
            yield waited
        finally:
            self.release()

    def waiting(self) -> list[str]:
        """Cameras waiting for a slot now."""
        with self._cond:
            return [s.camera_id for s in self._shares.values() if s.waiting_since is not None]

    def stats(self) -> list[ShareStats]:
        with self._cond:
            return [ShareStats(s.camera_id, s.granted, s.waited_s, s.urgent_granted) for s in self._shares.values()]
