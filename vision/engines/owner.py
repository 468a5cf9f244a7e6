"""A native model instance belongs to one thread: the engine pool.

dlib's HOG detector and shape predictors are not thread-safe: two threads inside one instance crash the
process (a request enrolling a face while a camera worker detects faces segfaulted the service every
time). The rule here is ownership, not locking at call sites:

- An :class:`EnginePool` builds ``instances`` engines, each *inside* its own owner thread, and no other
  thread ever touches them.
- Everyone else (camera workers, enrolment requests, gallery rebuilds) sends work to the pool: a job is a
  function of an engine. Some owner picks it up, runs it on the engine it owns and hands back the result or
  the exception. A multi-step job (find the one face of a photo, check it, embed it) runs whole on one
  owner, so every native helper it builds per engine (landmark fitters, eye meters) has one owner too.
- The queue is bounded. Its drop policy is **wait, then refuse**: a caller waits up to its timeout for room
  and for the answer, then gets :class:`EngineBusyError`; nothing is dropped silently.
- A job that itself calls the pool from an owner thread runs at once on that owner's own engine, so a
  nested call can never deadlock waiting for itself.

The pool implements :class:`vision.engines.base.FaceEngine`, so pipelines use it as they would an engine.
Several instances let camera and request work run on separate cores (dlib releases the GIL while it
detects: two instances on two threads ran 1.9x faster than one after the other).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from vision.engines.base import FaceEngine
from vision.errors import EngineBusyError, EngineClosedError
from vision.quality import LandmarkLayout
from vision.types import Detections, FloatArray, Image

logger = logging.getLogger(__name__)

R = TypeVar("R")
Job = Callable[[FaceEngine], Any]


@dataclass(frozen=True, slots=True)
class EnginePoolConfig:
    """How many engine instances (each with its own owner thread) and how much work may wait for them."""

    instances: int = 1
    queue_size: int = 64
    timeout_s: float = 60.0  # default wait for room and for an answer
    name: str = "face-engine"

    def __post_init__(self) -> None:
        if self.instances < 1:
            raise ValueError(f"an engine pool needs at least 1 instance, got {self.instances}")
        if self.queue_size < 1:
            raise ValueError(f"the queue must hold at least 1 job, got {self.queue_size}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")


@dataclass(frozen=True, slots=True)
class _Work:
    job: Job
    future: Future[Any]


_STOP = object()


class EnginePool:
    """Engines owned by one thread each; every call is a job handed to an owner (see the module docstring)."""

    def __init__(self, factory: Callable[[], FaceEngine], config: EnginePoolConfig | None = None) -> None:
        self.config = config or EnginePoolConfig()
        self._queue: queue.Queue[_Work | object] = queue.Queue(maxsize=self.config.queue_size)
        self._local = threading.local()
        self._closed = False
        self._threads: list[threading.Thread] = []
        built: list[Future[FaceEngine]] = []
        for i in range(self.config.instances):
            ready: Future[FaceEngine] = Future()
            thread = threading.Thread(target=self._own, args=(factory, ready), daemon=True,
                                      name=f"{self.config.name}-{i}")
            thread.start()
            self._threads.append(thread)
            built.append(ready)
        try:
            engines = [f.result() for f in built]  # a factory error (missing model file) surfaces here
        except BaseException:
            self.close()
            raise
        first = engines[0]
        self._model_id, self._dim = first.model_id, first.dim
        self._min_face_px, self._layout = first.min_face_px, first.landmark_layout
        logger.info("engine pool %s: %s instance(s) of %s, queue %s", self.config.name, len(engines),
                    self._model_id, self.config.queue_size)

    @classmethod
    def adopt(cls, engine: FaceEngine, config: EnginePoolConfig | None = None) -> EnginePool:
        """A one-owner pool around an engine built elsewhere: from now on only the owner may use it."""
        if isinstance(engine, EnginePool):
            return engine
        cfg = config or EnginePoolConfig()
        if cfg.instances != 1:
            raise ValueError("an adopted engine is one instance; build a pool from a factory for more")
        return cls(lambda: engine, cfg)

    # -- the owner threads ----------------------------------------------------------------------
    def _own(self, factory: Callable[[], FaceEngine], ready: Future[FaceEngine]) -> None:
        try:
            engine = factory()
        except BaseException as exc:  # handed to the constructor, which re-raises it
            ready.set_exception(exc)
            return
        self._local.engine = engine
        ready.set_result(engine)
        while True:
            work = self._queue.get()
            if work is _STOP or not isinstance(work, _Work):
                return
            if not work.future.set_running_or_notify_cancel():
                continue  # the caller gave up waiting before the job started
            try:
                result = work.job(engine)
            except BaseException as exc:  # the caller re-raises it in its own thread
                work.future.set_exception(exc)
            else:
                work.future.set_result(result)

    @property
    def owners(self) -> tuple[str, ...]:
        """Names of the owner threads (for health and tests)."""
        return tuple(t.name for t in self._threads)

    def submit(self, job: Callable[[FaceEngine], R], *, timeout: float | None = None) -> R:
        """Run ``job`` on one owned engine and return its result (or raise its exception).

        Waits up to ``timeout`` seconds (default: the pool's) for room in the queue and again for the answer;
        then raises :class:`EngineBusyError`. A job still queued when its caller gives up is skipped.
        """
        own: FaceEngine | None = getattr(self._local, "engine", None)
        if own is not None:  # called from an owner thread: this thread owns ``own``, run it here
            return job(own)
        if self._closed:
            raise EngineClosedError(f"engine pool {self.config.name} is closed")
        wait = self.config.timeout_s if timeout is None else timeout
        future: Future[R] = Future()
        try:
            self._queue.put(_Work(job, future), timeout=wait)
        except queue.Full as exc:
            raise EngineBusyError(f"engine pool {self.config.name}: {self.config.queue_size} jobs already wait; "
                                  f"no room within {wait:.1f} s") from exc
        try:
            return future.result(timeout=wait)
        except FutureTimeout as exc:
            future.cancel()
            raise EngineBusyError(f"engine pool {self.config.name}: no answer within {wait:.1f} s") from exc

    def close(self, timeout: float = 10.0) -> None:
        """Stop the owners once the queued jobs are done; later calls raise :class:`EngineClosedError`."""
        if self._closed:
            return
        self._closed = True
        for thread in self._threads:
            if thread.is_alive():
                self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout)

    # -- FaceEngine ---------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def min_face_px(self) -> int:
        return self._min_face_px

    @property
    def landmark_layout(self) -> LandmarkLayout:
        return self._layout

    def detect(self, image: Image) -> Detections:
        return self.submit(lambda engine: engine.detect(image))

    def embed(self, image: Image, dets: Detections) -> FloatArray:
        if len(dets) == 0:
            return np.zeros((0, self._dim), np.float32)
        return self.submit(lambda engine: engine.embed(image, dets))

    def chips(self, image: Image, dets: Detections) -> list[Image]:
        if len(dets) == 0:
            return []
        return self.submit(lambda engine: engine.chips(image, dets))

    def embed_chips(self, chips: list[Image]) -> FloatArray:
        if not chips:
            return np.zeros((0, self._dim), np.float32)
        return self.submit(lambda engine: engine.embed_chips(chips))


def on_owner(engine: FaceEngine, job: Callable[[FaceEngine], R], *, timeout: float | None = None) -> R:
    """Run a multi-step ``job`` whole on an engine's owner: through the pool when ``engine`` is one, else
    directly (a bare engine is only ever given to code that runs on one thread: evaluation, benches, tests)."""
    if isinstance(engine, EnginePool):
        return engine.submit(job, timeout=timeout)
    return job(engine)
