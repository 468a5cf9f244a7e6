"""One thread per camera: take the newest frame, run the camera's pipeline, hand results to its rule."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Generic, Protocol, TypeVar

from edge.cameras.config import CameraConfig
from edge.cameras.scheduler import FrameScheduler
from edge.cameras.sources import FrameSource
from edge.cameras.tap import FrameTap
from edge.cameras.undistort import undistorter_for
from edge.metrics import EdgeMetrics
from vision.types import Frame

logger = logging.getLogger(__name__)

T = TypeVar("T")
FPS_WINDOW_S = 5.0  # processed frames per second are counted over this window
T_co = TypeVar("T_co", covariant=True)


class FramePipeline(Protocol[T_co]):
    """A camera's processing: per frame, and once more when a finite source has ended."""

    @property
    def camera(self) -> CameraConfig: ...

    def process(self, frame: Frame) -> Sequence[T_co]: ...

    def flush(self) -> Sequence[T_co]: ...


class CameraWorker(Generic[T]):
    """Owns the pipeline's thread; a failing frame is logged and counted, never fatal."""

    def __init__(self, source: FrameSource, pipeline: FramePipeline[T], deliver: Callable[[T], object],
                 metrics: EdgeMetrics | None = None, scheduler: FrameScheduler | None = None) -> None:
        self.source = source
        self._scheduler = scheduler  # shares the cores with the branch's other cameras (edge.cameras.scheduler)
        self._recent: deque[float] = deque()  # when the last FPS_WINDOW_S of frames were processed
        self.pipeline = pipeline
        self._deliver = deliver
        self._metrics = metrics
        if metrics is not None:  # a camera that never drops a frame still exports its zero
            metrics.frames_dropped.labels(source.camera_id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pipeline-{source.camera_id}", daemon=True)
        self.processed = 0
        self.errors = 0
        self.undistorter = undistorter_for(pipeline.camera)  # lens maps, built once per camera config
        self.tap = FrameTap()  # newest processed frame (+ overlay while watched), for the live preview

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # a runtime stopped before it started has nothing to join
            self._thread.join(timeout)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def close_pipeline(self) -> bool:
        """After :meth:`stop`: end what the pipeline holds open (tracks, services, clips) as when a file ends.
        Only once the worker's thread has ended (the pipeline has one thread); False when it has not."""
        return self.done and self._hand_over(self.pipeline.flush, "closing tracks")

    def _run(self) -> None:
        last = 0
        while not self._stop.is_set():
            frame = self.source.wait_newer(last, timeout=0.5)
            if frame is None:
                if self.source.finished:
                    self._hand_over(self.pipeline.flush, "closing tracks")
                    return
                continue
            if self._scheduler is None:
                last = self._step(frame, last)
                continue
            # a pipeline voting on who arrived (a face or a plate track) asks for its frame first
            with self._scheduler.slot(self.source.camera_id, urgent=bool(getattr(self.pipeline, "urgent", False))):
                # newest-wins: a frame that arrived while this camera waited for its slot replaces the older one
                last = self._step(self.source.wait_newer(frame.index - 1, timeout=0.0) or frame, last)

    def _step(self, frame: Frame, last: int) -> int:
        """Process one frame; returns its index (the frames between ``last`` and it were dropped)."""
        self.source.mark_consumed(frame.index)
        if self.undistorter is not None:  # the pipeline, its overlay and the tap see the undistorted frame
            frame = self.undistorter(frame)
        if self._metrics is not None:
            self._metrics.queue_age.labels(frame.camera_id).observe(time.monotonic() - frame.t_mono)
            if frame.index > last + 1:
                self._metrics.frames_dropped.labels(frame.camera_id).inc(frame.index - last - 1)
        if not self._hand_over(partial(self.pipeline.process, frame), f"frame {frame.index}"):
            self.errors += 1
            return frame.index
        self.processed += 1
        self.tap.put(frame, self.pipeline)
        if self._metrics is not None:
            now = time.monotonic()
            self._metrics.frame_age.labels(frame.camera_id).observe(now - frame.t_mono)
            self._recent.append(now)
            while self._recent[0] < now - FPS_WINDOW_S:
                self._recent.popleft()
            self._metrics.camera_fps.labels(frame.camera_id).set(len(self._recent) / FPS_WINDOW_S)
        return frame.index

    def _hand_over(self, produce: Callable[[], Sequence[T]], what: str) -> bool:
        try:
            for result in produce():
                self._deliver(result)
        except Exception:  # one bad frame must not stop the camera
            logger.exception("camera %s: %s failed", self.source.camera_id, what)
            return False
        return True
