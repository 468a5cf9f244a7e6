"""TF.js graph -> ONNX converter: a small synthetic graph against numpy, bad input, and the cache."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from models.errors import TfjsFormatError
from models.tfjs_convert import cache_path, convert_tfjs, ensure_onnx, read_tfjs

B64 = {s: base64.b64encode(s.encode()).decode() for s in ("VALID", "NHWC", "SAME", "EXPLICIT", "BiasAdd", "Relu")}


def _const(name: str, dtype: str = "DT_FLOAT") -> dict[str, object]:
    return {"name": name, "op": "Const", "attr": {"dtype": {"type": dtype}, "value": {"tensor": {}}}}


def write_graph(folder: Path, padding: str = "VALID",
                extra_op: str | None = None) -> tuple[Path, dict[str, np.ndarray]]:
    """input NCHW (1,2,5,5) -> transpose NHWC -> pad 1 -> conv 3x3 stride 1 (2->3) -> +bias -> leaky relu ->
    maxpool 2 -> resize bilinear 4x4 -> sigmoid -> reshape (1, 16, 3) -> split [1, 2] on the last axis."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 2, 3)).astype(np.float32)
    bias = rng.normal(size=(3,)).astype(np.float32)
    consts = {"perm": np.array([0, 2, 3, 1], np.int32), "pads": np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32),
              "w": w, "bias": bias, "size": np.array([4, 4], np.int32),
              # shape (1, 16, 3) made by SparseToDense + Add on constants, as NanoDet does it
              "idx": np.array([[1]], np.int32), "oshape": np.array([3], np.int32), "val": np.array([16], np.int32),
              "zero": np.array(0, np.int32), "base": np.array([1, 0, 3], np.int32),
              "splits": np.array([1, 2], np.int32), "axis": np.array(2, np.int32)}
    dtypes = {k: ("DT_FLOAT" if v.dtype == np.float32 else "DT_INT64" if k in ("idx", "oshape", "val", "zero", "base")
                  else "DT_INT32") for k, v in consts.items()}
    nodes: list[dict[str, object]] = [{"name": "x", "op": "Placeholder",
                                       "attr": {"shape": {"shape": {"dim": [{"size": "1"}, {"size": "2"},
                                                                            {"size": "5"}, {"size": "5"}]}}}}]
    nodes += [_const(k, dtypes[k]) for k in consts]
    nodes += [
        {"name": "t", "op": "Transpose", "input": ["x", "perm"]},
        {"name": "p", "op": "Pad", "input": ["t", "pads"]},
        {"name": "c", "op": "Conv2D", "input": ["p", "w"],
         "attr": {"padding": {"s": B64[padding]}, "data_format": {"s": B64["NHWC"]},
                  "strides": {"list": {"i": ["1", "1", "1", "1"]}},
                  "dilations": {"list": {"i": ["1", "1", "1", "1"]}}}},
        {"name": "a", "op": "Add", "input": ["c", "bias"]},
        {"name": "l", "op": "LeakyRelu", "input": ["a"], "attr": {"alpha": {"f": 0.1}}},
        {"name": "m", "op": "MaxPool", "input": ["l"],
         "attr": {"padding": {"s": B64["VALID"]}, "ksize": {"list": {"i": ["1", "2", "2", "1"]}},
                  "strides": {"list": {"i": ["1", "2", "2", "1"]}}}},
        {"name": "r", "op": "ResizeBilinear", "input": ["m", "size"], "attr": {"half_pixel_centers": {"b": True}}},
        {"name": "s", "op": "Sigmoid", "input": ["r"]},
        {"name": "sd", "op": "SparseToDense", "input": ["idx", "oshape", "val", "zero"]},
        {"name": "shape", "op": "AddV2", "input": ["base", "sd"]},
        {"name": "rs", "op": "Reshape", "input": ["s", "shape"]},
        {"name": "sp", "op": "SplitV", "input": ["rs", "splits", "axis"], "attr": {"num_split": {"i": "2"}}},
        {"name": "Identity", "op": "Identity", "input": ["sp"]},
        {"name": "Identity_1", "op": "Identity", "input": ["sp:1"]},
    ]
    if extra_op:
        nodes.append({"name": "bad", "op": extra_op, "input": ["s"]})
    blob = b"".join(v.astype(np.float16).tobytes() if v.dtype == np.float32 else v.tobytes() for v in consts.values())
    manifest = [{"paths": ["g.bin"], "weights": [
        {"name": k, "shape": list(v.shape), "dtype": "float32" if v.dtype == np.float32 else "int32",
         **({"quantization": {"dtype": "float16", "original_dtype": "float32"}} if v.dtype == np.float32 else {})}
        for k, v in consts.items()]}]
    doc = {"format": "graph-model", "modelTopology": {"node": nodes}, "weightsManifest": manifest,
           "signature": {"outputs": {"a": {"name": "Identity:0", "tensorShape": {"dim": [{"size": "1"}, {"size": "16"},
                                                                                       {"size": "1"}]}},
                                     "b": {"name": "Identity_1:0", "tensorShape": {"dim": [{"size": "1"},
                                                                                         {"size": "16"},
                                                                                         {"size": "2"}]}}}}}
    (folder / "g.bin").write_bytes(blob)
    path = folder / "g.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path, {"w": w.astype(np.float16).astype(np.float32), "bias": bias.astype(np.float16).astype(np.float32)}


def reference(x: np.ndarray, w: np.ndarray, bias: np.ndarray) -> np.ndarray:
    import cv2

    t = np.pad(x.transpose(0, 2, 3, 1)[0], ((1, 1), (1, 1), (0, 0)))
    conv = np.zeros((5, 5, 3), np.float32)
    for i in range(5):
        for j in range(5):
            conv[i, j] = np.einsum("hwc,hwco->o", t[i:i + 3, j:j + 3], w)
    a = conv + bias
    a = np.where(a > 0, a, 0.1 * a)
    m = a[:4, :4].reshape(2, 2, 2, 2, 3).max(axis=(1, 3))
    r = cv2.resize(m, (4, 4), interpolation=cv2.INTER_LINEAR)  # half-pixel centres, like TF
    return (1 / (1 + np.exp(-r))).reshape(1, 16, 3)


def test_given_a_small_graph_when_converted_then_onnx_matches_numpy(tmp_path: Path) -> None:
    path, weights = write_graph(tmp_path)
    model = convert_tfjs(path)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(1, 2, 5, 5)).astype(np.float32)
    a, b = session.run(["Identity", "Identity_1"], {"x": x})
    want = reference(x, weights["w"], weights["bias"])
    np.testing.assert_allclose(np.concatenate([a, b], axis=2), want, atol=1e-5)


@pytest.mark.parametrize(("case", "message"), [
    ("unsupported_op", "operator is not supported"),
    ("explicit_padding", "only VALID and SAME"),
    ("not_graph", "not a TF.js graph-model"),
    ("truncated_weights", "runs past the end"),
    ("empty_file", "cannot read model.json"),
])
def test_given_bad_input_when_converted_then_error_names_the_problem(tmp_path: Path, case: str, message: str) -> None:
    path, _ = write_graph(tmp_path, padding="EXPLICIT" if case == "explicit_padding" else "VALID",
                          extra_op="Erf" if case == "unsupported_op" else None)
    if case == "not_graph":
        path.write_text(json.dumps({"format": "layers-model"}), encoding="utf-8")
    elif case == "truncated_weights":
        (tmp_path / "g.bin").write_bytes((tmp_path / "g.bin").read_bytes()[:10])
    elif case == "empty_file":
        path.write_text("", encoding="utf-8")
    with pytest.raises(TfjsFormatError, match=message):
        convert_tfjs(path) if case != "truncated_weights" else read_tfjs(path)


def test_given_a_converted_model_when_asked_again_then_cache_is_used_and_a_corrupt_one_redone(tmp_path: Path) -> None:
    path, _ = write_graph(tmp_path)
    first = ensure_onnx(path, tmp_path / "cache")
    stamp = first.stat().st_mtime_ns
    assert ensure_onnx(path, tmp_path / "cache") == first and first.stat().st_mtime_ns == stamp
    first.write_bytes(b"corrupt")
    again = ensure_onnx(path, tmp_path / "cache")
    assert again == first and again.read_bytes() != b"corrupt"
    assert first.name.startswith("g-") and first == cache_path(tmp_path / "cache", path, first.name.split("-")[1])


def test_given_a_mobilenet_head_with_dynamic_batch_when_converted_then_onnx_matches_numpy(tmp_path: Path) -> None:
    """faceres's ops: depthwise conv (SAME, stride 2), Mul, Relu6 as Relu/Minimum/Maximum, Mean, _FusedMatMul,
    Softmax, on an input whose batch dimension is -1."""
    rng = np.random.default_rng(0)
    consts = {"dw": rng.normal(size=(3, 3, 2, 1)), "scale": rng.normal(size=(2,)), "six": np.array(6.0),
              "zero": np.array(0.0), "axes": np.array([1, 2], np.int32), "k": rng.normal(size=(2, 4)),
              "bias": rng.normal(size=(4,))}
    consts = {k: v.astype(np.int32 if v.dtype == np.int32 else np.float32) for k, v in consts.items()}
    window = {"padding": {"s": B64["SAME"]}, "data_format": {"s": B64["NHWC"]},
              "strides": {"list": {"i": ["1", "2", "2", "1"]}}}
    nodes: list[dict[str, object]] = [
        {"name": "x", "op": "Placeholder",
         "attr": {"shape": {"shape": {"dim": [{"size": "-1"}, {"size": "5"}, {"size": "5"}, {"size": "2"}]}}}},
        *(_const(k, "DT_INT32" if v.dtype == np.int32 else "DT_FLOAT") for k, v in consts.items()),
        {"name": "d", "op": "DepthwiseConv2dNative", "input": ["x", "dw"], "attr": window},
        {"name": "m", "op": "Mul", "input": ["d", "scale"]},
        {"name": "r", "op": "Relu", "input": ["m"]},
        {"name": "lo", "op": "Minimum", "input": ["r", "six"]},
        {"name": "hi", "op": "Maximum", "input": ["lo", "zero"]},
        {"name": "mean", "op": "Mean", "input": ["hi", "axes"], "attr": {"keep_dims": {"b": False}}},
        {"name": "fc", "op": "_FusedMatMul", "input": ["mean", "k", "bias"],
         "attr": {"fused_ops": {"list": {"s": [B64["BiasAdd"], B64["Relu"]]}}}},
        {"name": "sm", "op": "Softmax", "input": ["fc"]},
    ]
    manifest = [{"paths": ["g.bin"], "weights": [{"name": k, "shape": list(v.shape),
                                                  "dtype": "int32" if v.dtype == np.int32 else "float32"}
                                                 for k, v in consts.items()]}]
    doc = {"format": "graph-model", "modelTopology": {"node": nodes}, "weightsManifest": manifest,
           "signature": {"outputs": {"a": {"name": "mean", "tensorShape": {"dim": [{"size": "1"}, {"size": "2"}]}},
                                     "b": {"name": "sm:0", "tensorShape": {"dim": [{"size": "1"}, {"size": "4"}]}}}}}
    (tmp_path / "g.bin").write_bytes(b"".join(v.tobytes() for v in consts.values()))
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    session = ort.InferenceSession(convert_tfjs(path).SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.normal(size=(3, 5, 5, 2)).astype(np.float32)
    mean, sm = session.run(["mean", "sm"], {"x": x})
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # SAME, 5 px, kernel 3, stride 2: one pixel each side
    d = np.stack([np.stack([np.einsum("nhwc,hwc->nc", padded[:, i:i + 3, j:j + 3], consts["dw"][..., 0])
                            for j in range(0, 5, 2)], 1) for i in range(0, 5, 2)], 1)
    want_mean = np.clip(d * consts["scale"], 0, 6).mean(axis=(1, 2))
    logits = np.maximum(want_mean @ consts["k"] + consts["bias"], 0)
    want_sm = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(mean, want_mean, atol=1e-5)
    np.testing.assert_allclose(sm, want_sm, atol=1e-5)
