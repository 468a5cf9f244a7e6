"""Convert a small float TFLite model (MediaPipe's BlazeFace) to ONNX, and cache the result.

Supported ops, exactly the set of the BlazeFace detectors: ADD, CONCATENATION, CONV_2D,
DEPTHWISE_CONV_2D, DEQUANTIZE (fp16 constants, folded into fp32 initialisers), MAX_POOL_2D, PAD, RELU,
RELU6, RESHAPE and RESIZE_BILINEAR; fused activations NONE, RELU, RELU_N1_TO_1 and RELU6. Anything
else raises :class:`models.errors.TfliteFormatError` naming the op.

Layout: TFLite is NHWC, ONNX convolutions are NCHW. The graph keeps the model's own NHWC input,
transposes once to NCHW, and transposes back to NHWC only before an op that depends on the memory
order (RESHAPE), so the outputs are bit-for-bit the same tensors as TFLite's. ``SAME`` padding is
resolved to TFLite's explicit (possibly asymmetric) pads from the static shapes in the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from models.errors import OnnxConversionError, TfliteFormatError
from models.manifest import sha256_file
from models.onnx_build import OnnxGraph, finish_model
from models.onnx_cache import cached_conversion, default_cache_dir
from models.tflite_schema import Operator, TfliteModel, read_tflite

logger = logging.getLogger(__name__)

CONVERTER_VERSION = 1
OPSET = 17
IR_VERSION = 8
TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]
NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}
# schema.fbs: enum ActivationFunctionType -> (min, max) of the clip; None: no clip
_ACTIVATIONS: dict[int, tuple[float, float] | None] = {0: None, 1: (0.0, float("inf")), 2: (-1.0, 1.0),
                                                       3: (0.0, 6.0)}


@dataclass(kw_only=True)
class _Graph(OnnxGraph):
    model: TfliteModel
    values: dict[int, tuple[str, bool]] = field(default_factory=dict)  # tensor -> (onnx name, stored NCHW)
    folded: dict[int, np.ndarray] = field(default_factory=dict)  # DEQUANTIZE outputs, as fp32 constants

    def constant(self, index: int) -> np.ndarray:
        """The value of a constant tensor; fp16 weights stay fp16 until DEQUANTIZE folds them."""
        tensor = self.model.tensors[index]
        if tensor.data is None:
            raise TfliteFormatError(self.model.source, 0, f"tensor {tensor.name!r} must be a constant")
        return tensor.data

    def constant_f32(self, index: int) -> np.ndarray:
        """A float constant, stored as fp32 or made by a folded DEQUANTIZE."""
        if index in self.folded:
            return self.folded[index]
        return self.constant(index).astype(np.float32)

    def get(self, index: int, nchw: bool) -> str:
        """The ONNX name of tensor ``index`` in the wanted layout (a 4-d tensor is transposed as needed)."""
        if index not in self.values and index in self.folded:
            self.values[index] = (self.const("c", self.folded[index]), False)
        if index not in self.values:
            tensor = self.model.tensors[index]
            if tensor.data is None:
                raise TfliteFormatError(self.model.source, 0, f"tensor {tensor.name!r} is used before it is made")
            value = tensor.data.astype(np.float32) if tensor.dtype == np.float16 else tensor.data
            self.values[index] = (self.const("c", value), False)
        name, is_nchw = self.values[index]
        if len(self.model.tensors[index].shape) != 4 or is_nchw == nchw:
            return name
        return self.node("Transpose", [name], "t", perm=TO_NCHW if nchw else TO_NHWC)

    def activation(self, name: str, code: int, op: Operator) -> str:
        if code not in _ACTIVATIONS:
            raise TfliteFormatError(self.model.source, 0, f"{op.op}: fused activation {code} is not supported")
        bounds = _ACTIVATIONS[code]
        if bounds is None:
            return name
        if bounds == (0.0, float("inf")):
            return self.node("Relu", [name], "relu")
        low, high = (self.const("lo", np.array(b, np.float32)) for b in bounds)
        return self.node("Clip", [name, low, high], "clip")


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite's SAME padding: output ceil(size / stride), the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _window_pads(g: _Graph, op: Operator, kernel: tuple[int, int], stride: tuple[int, int],
                 dilation: tuple[int, int]) -> list[int]:
    padding = g.model.option(op, 0, "<b", 0)  # enum Padding: SAME=0, VALID=1
    if padding == 1:
        return [0, 0, 0, 0]
    if padding != 0:
        raise TfliteFormatError(g.model.source, 0, f"{op.op}: padding {padding} is not supported")
    _, height, width, _ = g.model.tensors[op.inputs[0]].shape
    top, bottom = _same_pads(height, kernel[0], stride[0], dilation[0])
    left, right = _same_pads(width, kernel[1], stride[1], dilation[1])
    return [top, left, bottom, right]


def _conv(g: _Graph, op: Operator) -> str:
    depthwise = op.op == "DEPTHWISE_CONV_2D"
    weights = g.constant_f32(op.inputs[1])
    if depthwise:  # [1, kh, kw, C*M] -> [C*M, 1, kh, kw]
        channels = g.model.tensors[op.inputs[0]].shape[3]
        w = weights.transpose(3, 0, 1, 2)
        group = channels
        stride = (g.model.option(op, 2, "<i", 1), g.model.option(op, 1, "<i", 1))
        dilation = (g.model.option(op, 6, "<i", 1), g.model.option(op, 5, "<i", 1))
        act = g.model.option(op, 4, "<b", 0)
    else:  # [O, kh, kw, I] -> [O, I, kh, kw]
        w = weights.transpose(0, 3, 1, 2)
        group = 1
        stride = (g.model.option(op, 2, "<i", 1), g.model.option(op, 1, "<i", 1))
        dilation = (g.model.option(op, 5, "<i", 1), g.model.option(op, 4, "<i", 1))
        act = g.model.option(op, 3, "<b", 0)
    kernel = (int(w.shape[2]), int(w.shape[3]))
    pads = _window_pads(g, op, kernel, stride, dilation)
    inputs = [g.get(op.inputs[0], True), g.const("w", np.ascontiguousarray(w, np.float32))]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        inputs.append(g.const("b", g.constant_f32(op.inputs[2]).reshape(-1)))
    out = g.node("Conv", inputs, "conv", kernel_shape=list(kernel), strides=list(stride), dilations=list(dilation),
                 pads=pads, group=group)
    return g.activation(out, act, op)


def _add(g: _Graph, op: Operator) -> str:
    a, b = (g.model.tensors[i] for i in op.inputs)
    nchw = len(a.shape) == 4 and len(b.shape) == 4
    if len(a.shape) != len(b.shape):
        raise TfliteFormatError(g.model.source, 0, f"ADD of ranks {len(a.shape)} and {len(b.shape)} is not supported")
    out = g.node("Add", [g.get(op.inputs[0], nchw), g.get(op.inputs[1], nchw)], "add")
    return g.activation(out, g.model.option(op, 0, "<b", 0), op)


def _concat(g: _Graph, op: Operator) -> str:
    rank = len(g.model.tensors[op.outputs[0]].shape)
    axis = g.model.option(op, 0, "<i", 0) % rank
    nchw = rank == 4
    out = g.node("Concat", [g.get(i, nchw) for i in op.inputs], "concat",
                 axis=NHWC_TO_NCHW_AXIS[axis] if nchw else axis)
    return g.activation(out, g.model.option(op, 1, "<b", 0), op)


def _max_pool(g: _Graph, op: Operator) -> str:
    stride = (g.model.option(op, 2, "<i", 1), g.model.option(op, 1, "<i", 1))
    kernel = (g.model.option(op, 4, "<i", 1), g.model.option(op, 3, "<i", 1))
    pads = _window_pads(g, op, kernel, stride, (1, 1))
    out = g.node("MaxPool", [g.get(op.inputs[0], True)], "pool", kernel_shape=list(kernel), strides=list(stride),
                 pads=pads)
    return g.activation(out, g.model.option(op, 5, "<b", 0), op)


def _pad(g: _Graph, op: Operator) -> str:
    paddings = g.constant(op.inputs[1]).astype(np.int64).reshape(-1, 2)
    rank = paddings.shape[0]
    nchw = rank == 4
    if nchw:
        paddings = paddings[TO_NCHW]
    pads = g.const("pads", np.concatenate([paddings[:, 0], paddings[:, 1]]))
    return g.node("Pad", [g.get(op.inputs[0], nchw), pads], "pad", mode="constant")


def _reshape(g: _Graph, op: Operator) -> str:
    shape = g.model.tensors[op.outputs[0]].shape
    if not shape:
        raise TfliteFormatError(g.model.source, 0, "RESHAPE output without a static shape")
    target = g.const("shape", np.asarray(shape, np.int64))
    return g.node("Reshape", [g.get(op.inputs[0], False), target], "reshape")


def _resize_bilinear(g: _Graph, op: Operator) -> str:
    align_corners = bool(g.model.option(op, 2, "<b", 0))
    half_pixel = bool(g.model.option(op, 3, "<b", 0))
    mode = "align_corners" if align_corners else "half_pixel" if half_pixel else "asymmetric"
    n, height, width, c = g.model.tensors[op.outputs[0]].shape
    sizes = g.const("sizes", np.asarray([n, c, height, width], np.int64))
    return g.node("Resize", [g.get(op.inputs[0], True), "", "", sizes], "resize", mode="linear",
                  coordinate_transformation_mode=mode)


def _dequantize(g: _Graph, op: Operator) -> None:
    source = g.model.tensors[op.inputs[0]]
    if source.data is None or source.dtype != np.float16:
        raise TfliteFormatError(g.model.source, 0, "DEQUANTIZE is supported only on fp16 constants")
    g.folded[op.outputs[0]] = source.data.astype(np.float32)


_OPS = {"ADD": _add, "CONCATENATION": _concat, "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv,
        "MAX_POOL_2D": _max_pool, "PAD": _pad, "RESHAPE": _reshape, "RESIZE_BILINEAR": _resize_bilinear}
_NCHW_OUT = {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "RESIZE_BILINEAR"}


def build_graph(model: TfliteModel, graph_name: str) -> onnx.GraphProto:
    g = _Graph(model=model)
    inputs = []
    for index in model.inputs:
        tensor = model.tensors[index]
        if tensor.dtype != np.float32:
            raise TfliteFormatError(model.source, 0, f"input {tensor.name!r} is {tensor.dtype}, not float32")
        inputs.append(helper.make_tensor_value_info(tensor.name, TensorProto.FLOAT, list(tensor.shape)))
        g.values[index] = (tensor.name, False)
    for op in model.operators:
        if op.op == "DEQUANTIZE":
            _dequantize(g, op)
            continue
        if op.op in ("RELU", "RELU6"):
            rank4 = len(model.tensors[op.inputs[0]].shape) == 4
            name, nchw = g.get(op.inputs[0], rank4), rank4
            g.values[op.outputs[0]] = (g.activation(name, 1 if op.op == "RELU" else 3, op), nchw)
            continue
        convert = _OPS.get(op.op)
        if convert is None:
            raise TfliteFormatError(model.source, 0, f"operator {op.op} (version {op.version}) is not supported")
        out = convert(g, op)
        rank4 = len(model.tensors[op.outputs[0]].shape) == 4
        nchw = rank4 and (op.op in _NCHW_OUT or op.op in ("ADD", "CONCATENATION", "PAD"))
        g.values[op.outputs[0]] = (out, nchw)
    outputs = []
    for index in model.outputs:
        tensor = model.tensors[index]
        g.nodes.append(helper.make_node("Identity", [g.get(index, False)], [tensor.name], name=f"out_{tensor.name}"))
        outputs.append(helper.make_tensor_value_info(tensor.name, TensorProto.FLOAT, list(tensor.shape)))
    return helper.make_graph(g.nodes, graph_name, inputs, outputs, g.initializers)


def convert_tflite(path: Path, source_sha256: str | None = None) -> onnx.ModelProto:
    """The ONNX model of the .tflite file at ``path``, checked by onnx.checker."""
    model = read_tflite(path)
    return finish_model(build_graph(model, Path(path).stem), producer="smartbranch.models.tflite_convert",
                        source=Path(path), source_sha256=source_sha256, converter_version=CONVERTER_VERSION,
                        opset=OPSET, ir_version=IR_VERSION)


def cache_path(cache_dir: Path, tflite_path: Path, tflite_sha256: str) -> Path:
    return cache_dir / f"{Path(tflite_path).stem}-{tflite_sha256}-t{CONVERTER_VERSION}.onnx"


def ensure_onnx(tflite_path: Path, cache_dir: Path | None = None) -> Path:
    """The cached ONNX conversion of ``tflite_path``, converted on first use (or when the cache is corrupt)."""
    tflite_path = Path(tflite_path)
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    try:
        sha = sha256_file(tflite_path)
    except OSError as exc:
        raise OnnxConversionError(f"cannot read TFLite model file {tflite_path}: {exc.strerror or exc}") from exc
    target = cache_path(folder, tflite_path, sha)
    return cached_conversion(target, tflite_path,
                             lambda: convert_tflite(tflite_path, source_sha256=sha).SerializeToString())
