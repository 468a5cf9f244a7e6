"""MediaPipe BlazeFace .tflite -> ONNX: equal to the LiteRT interpreter on real photos, cached, clear errors.

The reference is LiteRT (``ai-edge-litert``, a dev-only dependency); the equality test skips without it.
Measured max abs differences on 4 real letterboxed photos (x86; LiteRT default XNNPACK / reference kernels):
short range 2.2e-3 / 5.9e-3 (regressors, range about +-145 px) and 5.9e-3 / 1.2e-2 (logits, range about
+-100); back 8.5e-4 / 3.7e-4 and 4.4e-3 / 2.0e-3; full range 1.6e-4 / 1.0e-4 and 2.3e-5 / 1.2e-5. LiteRT's
own kernels differ from each other by as much: this is float32 summation order, about 1e-4 of the range.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.errors import ModelPackError, TfliteFormatError
from models.manifest import sha256_file
from models.onnx_session import load_session
from models.packs import resolve_pack
from models.tflite_convert import cache_path, ensure_onnx
from models.tflite_schema import read_tflite
from vision.engines.blazeface import letterbox
from vision.types import Image

PHOTOS = ["obama.jpg", "biden.jpg", "t1.jpg", "tom_hanks.png"]
ROLES = ["short_range", "back", "full_range"]
MAX_ABS_REGRESSORS = 0.02  # input pixels; ~3x the worst measured difference
MAX_ABS_LOGITS = 0.05
MAX_ABS_SCORE = 1e-3  # after the sigmoid, what the detector thresholds


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tflite_onnx")


def _tflite(role: str) -> Path:
    return resolve_pack("blazeface_mediapipe").path_for(role)


def _inputs(photo: Callable[[str], Image], size: int) -> list[np.ndarray]:
    out = []
    for name in PHOTOS:
        canvas, _ = letterbox(photo(name), size)
        out.append(((canvas[:, :, ::-1].astype(np.float32) - 127.5) / 127.5)[None])
    return out


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason="ai-edge-litert is not installed")
@pytest.mark.parametrize("role", ROLES)
def test_onnx_outputs_equal_litert_on_real_photos(role: str, cache: Path, photo: Callable[[str], Image]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    # given the model run by LiteRT and its ONNX conversion run by onnxruntime
    interpreter: Any = Interpreter(model_path=str(_tflite(role)))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    outs = interpreter.get_output_details()
    session = load_session(ensure_onnx(_tflite(role), cache), intra_op_threads=1)
    names = [o["name"] for o in outs]
    worst = dict.fromkeys([*names, "score"], 0.0)
    # when both see the same letterboxed real photos
    for x in _inputs(photo, int(inp["shape"][1])):
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        got = session.run(names, {session.get_inputs()[0].name: x})
        for o, value in zip(outs, got, strict=True):
            ref = interpreter.get_tensor(o["index"])
            assert value.shape == ref.shape
            worst[o["name"]] = max(worst[o["name"]], float(np.abs(value - ref).max()))
        logits = np.clip(np.stack([got[1], interpreter.get_tensor(outs[1]["index"])]).astype(np.float64), -100, 100)
        scores = 1 / (1 + np.exp(-logits))
        worst["score"] = max(worst["score"], float(np.abs(scores[0] - scores[1]).max()))
    # then both outputs agree to float precision
    assert worst[names[0]] <= MAX_ABS_REGRESSORS, worst
    assert worst[names[1]] <= MAX_ABS_LOGITS, worst
    assert worst["score"] <= MAX_ABS_SCORE, worst


def test_conversion_is_cached_under_the_tflite_sha256(cache: Path) -> None:
    # given a converted model
    path = _tflite("short_range")
    first = ensure_onnx(path, cache)
    # then it lies under the source's digest, and a second call reuses it
    assert first == cache_path(cache, path, sha256_file(path))
    mtime = first.stat().st_mtime_ns
    assert ensure_onnx(path, cache) == first
    assert first.stat().st_mtime_ns == mtime


def test_corrupt_cache_is_converted_again(cache: Path) -> None:
    path = _tflite("short_range")
    target = ensure_onnx(path, cache)
    target.write_bytes(b"garbage")
    assert ensure_onnx(path, cache) == target
    assert target.stat().st_size > 100_000


@pytest.mark.parametrize("data", [b"", b"not a flatbuffer at all", b"\x10\x00\x00\x00TFL3" + b"\xff" * 8])
def test_bad_file_raises_a_named_error(data: bytes, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(data)
    with pytest.raises(ModelPackError, match=r"bad\.tflite"):
        ensure_onnx(bad, tmp_path / "cache")


def test_reader_sees_the_blazeface_op_set() -> None:
    model = read_tflite(_tflite("short_range"))
    ops = {op.op for op in model.operators}
    assert ops == {"ADD", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "MAX_POOL_2D", "PAD",
                   "RELU", "RESHAPE"}
    assert [model.tensors[i].shape for i in model.outputs] == [(1, 896, 16), (1, 896, 1)]
    assert issubclass(TfliteFormatError, ModelPackError)
