"""The engine pool: each instance is built and used by its own owner thread; callers hand it jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.fakes import deterministic_vector
from vision.engines.base import DlibEngineConfig, FaceEngine
from vision.engines.owner import EnginePool, EnginePoolConfig, on_owner
from vision.engines.registry import build_engine
from vision.errors import EngineBusyError, EngineClosedError
from vision.types import Detections, FloatArray, Image


class ThreadCheckingEngine:
    """A deterministic engine that remembers the thread that built it and fails on any other thread."""

    model_id = "fake"
    dim = 128
    min_face_px = 40
    landmark_layout = "dlib5"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.owner = threading.get_ident()
        self.delay_s = delay_s
        self.calls = 0

    def _check(self) -> None:
        if threading.get_ident() != self.owner:
            raise AssertionError("engine used off its owner thread")
        self.calls += 1
        time.sleep(self.delay_s)

    def detect(self, image: Image) -> Detections:
        self._check()
        return Detections(np.array([[0, 0, 10, 10]], np.float32), np.array([1.0], np.float32))

    def embed(self, image: Image, dets: Detections) -> FloatArray:
        self._check()
        return np.stack([deterministic_vector(str(int(image.sum()))) for _ in range(len(dets))])

    def chips(self, image: Image, dets: Detections) -> list[Image]:
        self._check()
        return [image for _ in range(len(dets))]

    def embed_chips(self, chips: list[Image]) -> FloatArray:
        self._check()
        return np.stack([deterministic_vector(str(int(c.sum()))) for c in chips])


def image(value: int) -> Image:
    return np.full((8, 8, 3), value, np.uint8)


def test_many_callers_each_instance_stays_on_its_owner_thread() -> None:
    # given a pool of two instances, each built inside its owner
    built: list[ThreadCheckingEngine] = []
    pool = EnginePool(lambda: built.append(ThreadCheckingEngine(0.001)) or built[-1],
                      EnginePoolConfig(instances=2, name="t"))
    try:
        # when eight threads detect, chip and embed at once
        def work(i: int) -> FloatArray:
            dets = pool.detect(image(i))
            return pool.embed_chips(pool.chips(image(i), dets))
        with ThreadPoolExecutor(8) as ex:
            results = list(ex.map(work, range(64)))
        # then every call ran on the instance's own thread (the engine raises otherwise) and results match
        assert sum(e.calls for e in built) == 64 * 3
        for i, vectors in enumerate(results):
            np.testing.assert_array_equal(vectors[0], deterministic_vector(str(int(image(i).sum()))))
        assert len({e.owner for e in built}) == 2 and pool.owners == ("t-0", "t-1")
    finally:
        pool.close()


def test_pool_reports_the_engine_identity() -> None:
    pool = EnginePool(ThreadCheckingEngine)
    try:
        assert (pool.model_id, pool.dim, pool.min_face_px, pool.landmark_layout) == ("fake", 128, 40, "dlib5")
        assert len(pool.embed_chips([])) == 0 and pool.chips(image(1), Detections.empty()) == []
    finally:
        pool.close()


def test_a_job_error_reaches_the_caller_and_the_owner_keeps_serving() -> None:
    pool = EnginePool(ThreadCheckingEngine)
    try:
        def boom(_: FaceEngine) -> None:
            raise ValueError("bad input")
        with pytest.raises(ValueError, match="bad input"):
            pool.submit(boom)
        assert len(pool.detect(image(3))) == 1
    finally:
        pool.close()


def test_a_nested_call_from_an_owner_runs_there_instead_of_deadlocking() -> None:
    pool = EnginePool(ThreadCheckingEngine, EnginePoolConfig(instances=1, timeout_s=5))
    try:
        # when a job calls the pool again (one instance: a queued call would wait for itself)
        result = pool.submit(lambda own: len(pool.detect(image(1))) + len(own.detect(image(2))))
        # then it runs on the same owner at once
        assert result == 2
    finally:
        pool.close()


def test_full_queue_and_slow_answers_are_refused_not_dropped_silently() -> None:
    gate = threading.Event()
    pool = EnginePool(ThreadCheckingEngine, EnginePoolConfig(instances=1, queue_size=1, timeout_s=0.2))
    try:
        first = threading.Thread(target=lambda: pool.submit(lambda _: gate.wait(5), timeout=10))
        first.start()
        time.sleep(0.1)  # the owner is busy with the first job
        second = threading.Thread(target=lambda: pool.submit(lambda _: None, timeout=10))
        second.start()
        time.sleep(0.1)  # the second job fills the queue
        with pytest.raises(EngineBusyError, match="already wait"):
            pool.submit(lambda _: None)
        gate.set()
        first.join(5)
        second.join(5)
        with pytest.raises(EngineBusyError, match="no answer"):
            pool.submit(lambda _: time.sleep(1), timeout=0.05)
    finally:
        gate.set()
        pool.close()


def test_a_factory_error_surfaces_at_construction() -> None:
    def broken() -> FaceEngine:
        raise FileNotFoundError("models/dlib_face_recognition_resnet_model_v1.dat")
    with pytest.raises(FileNotFoundError, match="resnet"):
        EnginePool(broken, EnginePoolConfig(instances=2))


def test_closed_pool_refuses_work() -> None:
    pool = EnginePool(ThreadCheckingEngine)
    pool.close()
    pool.close()  # twice is harmless
    with pytest.raises(EngineClosedError):
        pool.detect(image(1))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"instances": 0}, "at least 1 instance"),
    ({"queue_size": 0}, "at least 1 job"),
    ({"timeout_s": 0}, "positive"),
])
def test_bad_pool_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EnginePoolConfig(**kwargs)  # type: ignore[arg-type]


def test_adopt_keeps_a_pool_and_refuses_many_instances_of_one_engine() -> None:
    pool = EnginePool(ThreadCheckingEngine)
    try:
        assert EnginePool.adopt(pool) is pool
    finally:
        pool.close()
    with pytest.raises(ValueError, match="one instance"):
        EnginePool.adopt(ThreadCheckingEngine(), EnginePoolConfig(instances=2))


def test_on_owner_runs_directly_on_a_bare_engine() -> None:
    engine = ThreadCheckingEngine()
    assert on_owner(engine, lambda e: len(e.detect(image(1)))) == 1  # type: ignore[arg-type]


def test_real_dlib_pool_matches_the_bare_engine(photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given the real dlib engine in a two-owner pool and a real group photo
    pool = EnginePool(lambda: build_engine(DlibEngineConfig()), EnginePoolConfig(instances=2))
    try:
        group = photo("t1.jpg")
        # when four threads detect and embed the same photo through the pool
        def work(_: int) -> FloatArray:
            return pool.embed(group, pool.detect(group))
        with ThreadPoolExecutor(4) as ex:
            results = list(ex.map(work, range(8)))
        # then every result equals the bare engine's, run on this thread alone
        expected = engine.embed(group, engine.detect(group))
        assert len(expected) >= 4
        for vectors in results:
            np.testing.assert_allclose(vectors, expected, atol=1e-5)
    finally:
        pool.close()
