"""Small generated ONNX models with the exact interface of InsightFace's SCRFD and ArcFace files.

Real packs cannot be fetched in tests, so these stand in for them: the same input name, the same
9 (scores, boxes, keypoints) x (strides 8, 16, 32) outputs with 2 anchors per location, and a
1x3x112x112 -> 512 recogniser. Their behaviour is simple enough to compute by hand:

* ``probe_detector``: every anchor's score is the network's channel-0 value at its anchor point, so
  a patch of red (R) pixels scores ``(R - 127.5) / 128`` only if the engine sends RGB, subtracts the
  mean, divides by the std and lays the tensor out NCHW. Every anchor predicts the same box and
  keypoints around its point.
* ``constant_detector``: fixed outputs for a ``det_size`` input, encoding chosen faces.
* ``linear_recogniser``: 8x8 average pooling then a fixed random 588x512 projection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.manifest import sha256_file

DET_INPUT = "input.1"
DET_OUTPUTS = ["448", "471", "494", "451", "474", "497", "454", "477", "500"]  # det_10g.onnx's names
REC_INPUT = "input.1"
REC_OUTPUT = "683"  # w600k_r50.onnx's name
STRIDES = (8, 16, 32)
ANCHORS = 2
OPSET = 17

# Keypoints of the probe detector around each anchor point, in network pixels (InsightFace order).
PROBE_BOX_HALF = 32.0
PROBE_KPS = np.array([[-12, -8], [12, -8], [0, 4], [-10, 16], [10, 16]], np.float32)


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           initializers: list[onnx.TensorProto]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "fake", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _det_input() -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(DET_INPUT, TensorProto.FLOAT, [1, 3, "height", "width"])


def _det_outputs() -> list[onnx.ValueInfoProto]:
    widths = [1] * 3 + [4] * 3 + [10] * 3
    return [helper.make_tensor_value_info(n, TensorProto.FLOAT, [f"n{i % 3}", w])
            for i, (n, w) in enumerate(zip(DET_OUTPUTS, widths, strict=True))]


def probe_detector() -> onnx.ModelProto:
    """SCRFD-shaped detector whose scores are the input's channel 0 sampled at the anchor points."""
    nodes: list[onnx.NodeProto] = []
    inits = [_const("starts", np.zeros(4, np.int64)), _const("axes", np.arange(4, dtype=np.int64)),
             _const("ends", np.array([1, 1, 2**31 - 1, 2**31 - 1], np.int64)),
             _const("col", np.array([-1, 1], np.int64)), _const("zero", np.float32(0)),
             _const("one", np.float32(1))]
    for i, stride in enumerate(STRIDES):
        inits += [_const(f"steps{stride}", np.array([1, 1, stride, stride], np.int64)),
                  _const(f"box{stride}", np.full((1, 4), PROBE_BOX_HALF / stride, np.float32)),
                  _const(f"kps{stride}", (PROBE_KPS.reshape(1, 10) / stride).astype(np.float32))]
        nodes += [
            helper.make_node("Slice", [DET_INPUT, "starts", "ends", "axes", f"steps{stride}"], [f"sample{stride}"]),
            helper.make_node("Reshape", [f"sample{stride}", "col"], [f"cell{stride}"]),
            helper.make_node("Concat", [f"cell{stride}", f"cell{stride}"], [f"pair{stride}"], axis=1),
            helper.make_node("Reshape", [f"pair{stride}", "col"], [DET_OUTPUTS[i]]),
            helper.make_node("Mul", [DET_OUTPUTS[i], "zero"], [f"z{stride}"]),
            helper.make_node("Add", [f"z{stride}", "one"], [f"ones{stride}"]),
            helper.make_node("Mul", [f"ones{stride}", f"box{stride}"], [DET_OUTPUTS[3 + i]]),
            helper.make_node("Mul", [f"ones{stride}", f"kps{stride}"], [DET_OUTPUTS[6 + i]]),
        ]
    return _model(nodes, [_det_input()], _det_outputs(), inits)


@dataclass(frozen=True)
class FakeFace:
    """One face for :func:`constant_detector`, in network-input pixels of a ``det_size`` square."""

    box: tuple[float, float, float, float]
    points: np.ndarray  # (5, 2)
    score: float
    stride: int = 8
    anchor: int = 0  # which of the 2 anchors at the location nearest the box centre

    def location(self, det_size: int) -> tuple[int, int, int]:
        """(row-major index of the anchor, anchor x, anchor y) nearest the box centre."""
        cols = det_size // self.stride
        cx, cy = (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2
        col, row = round(cx / self.stride), round(cy / self.stride)
        return (row * cols + col) * ANCHORS + self.anchor, col * self.stride, row * self.stride


def constant_detector(det_size: int, faces: list[FakeFace]) -> onnx.ModelProto:
    """SCRFD-shaped detector that returns the same ``faces`` whatever the (det_size square) input."""
    blocks: dict[str, np.ndarray] = {}
    for i, stride in enumerate(STRIDES):
        count = (det_size // stride) ** 2 * ANCHORS
        blocks[DET_OUTPUTS[i]] = np.zeros((count, 1), np.float32)
        blocks[DET_OUTPUTS[3 + i]] = np.zeros((count, 4), np.float32)
        blocks[DET_OUTPUTS[6 + i]] = np.zeros((count, 10), np.float32)
    for face in faces:
        i = STRIDES.index(face.stride)
        index, ax, ay = face.location(det_size)
        x1, y1, x2, y2 = face.box
        blocks[DET_OUTPUTS[i]][index, 0] = face.score
        blocks[DET_OUTPUTS[3 + i]][index] = np.array([ax - x1, ay - y1, x2 - ax, y2 - ay]) / face.stride
        blocks[DET_OUTPUTS[6 + i]][index] = ((np.asarray(face.points) - [ax, ay]) / face.stride).reshape(-1)
    nodes = [helper.make_node("ReduceMean", [DET_INPUT], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    inits = [_const("zero", np.float32(0))]
    for name, value in blocks.items():
        inits.append(_const(f"c{name}", value))
        nodes.append(helper.make_node("Add", [f"c{name}", "nothing"], [name]))
    return _model(nodes, [_det_input()], _det_outputs(), inits)


def recogniser_weights(seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((3 * 14 * 14, 512)).astype(np.float32)


def linear_recogniser(weights: np.ndarray) -> onnx.ModelProto:
    """ArcFace-shaped recogniser: 8x8 average pooling of the NCHW input, flattened, times ``weights``."""
    nodes = [helper.make_node("AveragePool", [REC_INPUT], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "w"], [REC_OUTPUT])]
    inputs = [helper.make_tensor_value_info(REC_INPUT, TensorProto.FLOAT, ["None", 3, 112, 112])]
    outputs = [helper.make_tensor_value_info(REC_OUTPUT, TensorProto.FLOAT, ["None", 512])]
    return _model(nodes, inputs, outputs, [_const("w", weights)])


def reference_embedding(chip_bgr: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """What :func:`linear_recogniser` must return for a BGR chip under ArcFace preprocessing."""
    x = (chip_bgr[..., ::-1].astype(np.float32) - 127.5) / 127.5  # RGB, [-1, 1]
    pooled = x.transpose(2, 0, 1).reshape(3, 14, 8, 14, 8).mean(axis=(2, 4)).reshape(-1)
    v = pooled @ weights
    out: np.ndarray = (v / np.linalg.norm(v)).astype(np.float32)
    return out


DET_FILE = "det_10g.onnx"
REC_FILE = "w600k_r50.onnx"


def pack_manifest(pack: str, folder: Path, /, **changes: object) -> dict[str, object]:
    """A pack-local manifest for the files in ``folder``, shaped like the built-in buffalo_l one."""
    manifest: dict[str, object] = {
        "name": pack,
        "description": "generated test pack",
        "licence": "test models: non-commercial research use only",
        "commercial_use": False,
        "locate": {"python_package": None, "subdir": ""},
        "files": {
            DET_FILE: {
                "sha256": sha256_file(folder / DET_FILE), "role": "detection",
                "tensor_input": {"name": DET_INPUT, "shape": [1, 3, None, None], "layout": "NCHW",
                                 "colour": "RGB", "mean": 127.5, "std": 128.0},
                "output_names": DET_OUTPUTS,
                "head": {"kind": "scrfd", "strides": list(STRIDES), "anchors": ANCHORS, "keypoints": 5},
            },
            REC_FILE: {
                "sha256": sha256_file(folder / REC_FILE), "role": "recognition",
                "tensor_input": {"name": REC_INPUT, "shape": [None, 3, 112, 112], "layout": "NCHW",
                                 "colour": "RGB", "mean": 127.5, "std": 127.5},
                "output_names": [REC_OUTPUT], "output_dim": 512,
            },
        },
    }
    manifest.update(changes)
    return manifest


def write_pack(models_dir: Path, name: str, detector: onnx.ModelProto, recogniser: onnx.ModelProto,
               with_manifest: bool = True) -> Path:
    """``models_dir/name/`` holding the two models and (by default) a matching manifest.json."""
    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(detector, folder / DET_FILE)
    onnx.save(recogniser, folder / REC_FILE)
    if with_manifest:
        (folder / "manifest.json").write_text(json.dumps(pack_manifest(name, folder)), encoding="utf-8")
    return folder
