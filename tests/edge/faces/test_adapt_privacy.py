"""Learning the population keeps no stranger's embedding: the real pipeline plays real strangers past the box,
then the database, every file of the data folder and the logs are searched for a vector close to any of them.
The box also keeps the strangers' face crops for "this was X" (edge.faces.stranger_crops): images, stored
encrypted, and still no vector."""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from vision.engines.base import FaceEngine
from vision.engines.owner import EnginePool
from vision.types import Image

FloatArray = npt.NDArray[np.float64]
CLOSE = 0.95  # cosine: above the voter's threshold, what would greet a stranger
B64_RUN = re.compile(rb"[A-Za-z0-9+/]{600,}={0,2}")
PNG = b"\x89PNG\r\n\x1a\n"
FLOAT = re.compile(r"-?\d+\.\d+(?:[eE]-?\d+)?")


def _windows_best(values: FloatArray, targets: FloatArray) -> float:
    """The highest cosine between any run of ``dim`` consecutive values and any target (unit rows)."""
    dim = targets.shape[1]
    if values.size < dim:
        return -1.0
    values = np.where(np.isfinite(values) & (np.abs(values) < 1e3), values, 0.0)
    norms = np.sqrt(np.maximum(np.convolve(values ** 2, np.ones(dim), "valid"), 1e-12))
    best = -1.0
    for target in targets:
        dots = np.correlate(values, target, "valid")
        cos = np.where(norms > 1e-3, dots / norms, 0.0)
        best = max(best, float(cos.max()))
    return best


def best_cosine(data: bytes, targets: FloatArray) -> float:
    """The closest any vector held in ``data`` comes to ``targets``: float32 or float64 at every byte offset,
    base64 runs decoded the same way, and decimal numbers written as text."""
    best = -1.0
    blobs = [data] + [_b64(m.group()[shift:]) for m in B64_RUN.finditer(data) for shift in range(4)]
    for blob in blobs:
        for dtype in ("<f4", "<f8"):
            size = np.dtype(dtype).itemsize
            for offset in range(size):
                usable = (len(blob) - offset) // size * size
                if usable:
                    values = np.frombuffer(blob[offset:offset + usable], dtype=dtype).astype(np.float64)
                    best = max(best, _windows_best(values, targets))
    numbers = [float(x) for x in FLOAT.findall(data.decode("utf-8", "replace"))]
    return max(best, _windows_best(np.asarray(numbers, np.float64), targets))


def _b64(text: bytes) -> bytes:
    """A base64 run decoded (the run may start with letters that are not part of it: callers shift it)."""
    text = text.rstrip(b"=")
    text = text[:-1] if len(text) % 4 == 1 else text
    try:
        return base64.b64decode(text + b"=" * (-len(text) % 4))
    except ValueError:
        return b""


def unit(rows: FloatArray) -> FloatArray:
    out: FloatArray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def test_the_scanner_finds_a_vector_however_it_is_written() -> None:
    target = unit(np.random.default_rng(0).normal(size=(1, 128)))
    noise = np.random.default_rng(1).bytes(999)
    for data in (noise + target.astype("<f4").tobytes() + noise, noise + target.astype("<f8").tobytes(),
                 b"x" + base64.b64encode(target.astype("<f4").tobytes()) + b"y",
                 ("embedding: " + ", ".join(f"{v:.5f}" for v in target[0])).encode()):
        assert best_cosine(data, target) > 0.999
    assert best_cosine(noise, target) < 0.5


def test_learning_keeps_no_strangers_embedding_in_the_store_the_files_or_the_logs(
        walk_in_video: Path, make_config: Callable[..., EdgeConfig], engine_pool: EnginePool,
        engine: FaceEngine, photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes],
        caplog: pytest.LogCaptureFixture) -> None:
    # given a box that learns its population, a VIP enrolled, and an entrance camera looping over a walk-in of
    # the VIP and three strangers (biden, t1, tom_hanks)
    caplog.set_level(logging.DEBUG)
    config = make_config(cameras=[{"id": "entrance-1", "name": "正门", "role": "entrance",
                                   "source": {"url": f"file:{walk_in_video}", "fps": 10, "loop": True}}],
                         face={"adaptation": {"min_faces": 40, "refit_interval_s": 1},
                               "stranger_crops": {"keep_minutes": 5}})
    runtime = EdgeRuntime(config, engine=engine_pool)
    try:
        runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama.jpg"), consent="测试同意记录")
        # when the strangers walk past until the box has learnt from 80 faces or more
        runtime.start()
        deadline = time.monotonic() + 120
        while ((runtime.adaptation.state().faces_seen < 80 or not runtime.stranger_crops.recent())
               and time.monotonic() < deadline):
            time.sleep(0.5)
        # and the strangers' crops were kept, as encrypted images (no PNG in the clear)
        crops = runtime.stranger_crops.recent()
        assert crops and all((runtime.stranger_crops.image(c.id) or b"").startswith(PNG) for c in crops)
    finally:
        runtime.stop()
    state = runtime.adaptation.state()
    assert state.faces_seen >= 80 and state.version >= 1  # it learnt and refitted
    # then nothing the box wrote or logged holds a vector close to a stranger's face
    strangers = unit(np.vstack([engine.embed(img, engine.detect(img))[:1] for img in
                                (photo("biden.jpg"), photo("t1.jpg"), photo("tom_hanks.png"))]).astype(np.float64))
    vip = unit(engine.embed(photo("obama.jpg"), engine.detect(photo("obama.jpg")))[:1].astype(np.float64))
    assert float((strangers @ vip.T).max()) < CLOSE  # the VIP's own template is no false alarm
    files = [p for p in config.paths.data_dir.rglob("*") if p.is_file()]
    assert any(p.name.startswith("edge.db") for p in files)
    found = {str(p.relative_to(config.paths.data_dir)): best_cosine(p.read_bytes(), strangers) for p in files}
    found["logs"] = best_cosine(caplog.text.encode("utf-8"), strangers)
    assert all(score < CLOSE for score in found.values()), found
    assert not any(PNG in p.read_bytes() for p in files)
    # while the same scan finds the enrolled VIP's template in the gallery files (the scan can see vectors)
    assert max(best_cosine(p.read_bytes(), vip) for p in files if "gallery" in p.name) >= CLOSE
