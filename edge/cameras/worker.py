"""One thread per camera: take the newest frame, run the camera's pipeline, hand results to its rule."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Generic, Protocol, TypeVar

from edge.cameras.config import CameraConfig
from edge.cameras.sources import FrameSource
from edge.cameras.tap import FrameTap
from edge.cameras.undistort import undistorter_for
from edge.metrics import EdgeMetrics
from vision.types import Frame

logger = logging.getLogger(__name__)

T = TypeVar("T")
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
                 metrics: EdgeMetrics | None = None) -> None:
        self.source = source
        self.pipeline = pipeline
        self._deliver = deliver
        self._metrics = metrics
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

    def _run(self) -> None:
        last = 0
        while not self._stop.is_set():
            frame = self.source.wait_newer(last, timeout=0.5)
            if frame is None:
                if self.source.finished:
                    self._hand_over(self.pipeline.flush, "closing tracks")
                    return
                continue
            last = frame.index
            self.source.mark_consumed(frame.index)
            if self.undistorter is not None:  # the pipeline, its overlay and the tap see the undistorted frame
                frame = self.undistorter(frame)
            if not self._hand_over(partial(self.pipeline.process, frame), f"frame {frame.index}"):
                self.errors += 1
                continue
            self.processed += 1
            self.tap.put(frame, self.pipeline)
            if self._metrics is not None:
                self._metrics.frame_age.labels(frame.camera_id).observe(time.monotonic() - frame.t_mono)

    def _hand_over(self, produce: Callable[[], Sequence[T]], what: str) -> bool:
        try:
            for result in produce():
                self._deliver(result)
        except Exception:  # one bad frame must not stop the camera
            logger.exception("camera %s: %s failed", self.source.camera_id, what)
            return False
        return True
