"""Convert dlib's face ResNet (``dlib_face_recognition_resnet_model_v1.dat``) to ONNX, and cache the result.

The graph reproduces dlib's forward pass exactly (see :mod:`models.dlib_serial` for the file format):

- input ``chips``: uint8, NHWC, RGB, (batch, 150, 150, 3), aligned chips as ``dlib.get_face_chip``
  makes them (padding 0.25). Inside the graph, as dlib's ``input_rgb_image_sized`` does:
  ``(pixel - mean_rgb) / 256`` with the means stored in the .dat file, then NCHW;
- ``con`` + ``affine`` pairs are folded into one Conv with bias; padding is kernel//2 for stride 1
  and 0 otherwise, output sizes floor like dlib's ``1 + (n + 2p - k) / s``;
- ``add_prev`` adds tensors of different shapes the way dlib's ``tt::add`` does: the smaller one
  is zero-padded at the end of each axis (channels 32->64, and 3x3->4x4 at the 256-filter level);
- output ``descriptor``: float32 (batch, 128), the raw ``fc_no_bias`` output (not normalised).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from models.dlib_layers import (
    AddPrev,
    Affine,
    Conv,
    DlibNet,
    Fc,
    Identity,
    InputRgb,
    Pool,
    Relu,
    Skip,
    Tag,
)
from models.dlib_serial import read_dlib_net
from models.errors import OnnxConversionError
from models.manifest import sha256_file
from models.onnx_build import OnnxGraph
from models.onnx_cache import cached_conversion, default_cache_dir

logger = logging.getLogger(__name__)

CONVERTER_VERSION = 1
OPSET = 17
IR_VERSION = 8  # loadable by onnxruntime >= 1.10
CACHE_PREFIX = "dlib_resnet_v1"


@dataclass(frozen=True, slots=True)
class OnnxIoSpec:
    """The declared input and output of the converted model. Nothing is read back from the graph."""

    input_name: str
    input_dtype: str
    input_layout: str
    colour_order: str
    height: int
    width: int
    mean_rgb: tuple[float, float, float]
    scale: float
    output_name: str
    output_dim: int


# dlib's input_rgb_image_sized defaults; checked against the means stored in the .dat file.
DLIB_RESNET_IO = OnnxIoSpec(input_name="chips", input_dtype="uint8", input_layout="NHWC", colour_order="RGB",
                            height=150, width=150, mean_rgb=(122.782, 117.001, 104.298), scale=1 / 256,
                            output_name="descriptor", output_dim=128)


Shape = tuple[int, int, int]  # channels, rows, cols


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    if size + 2 * padding < kernel:
        raise OnnxConversionError(f"a {kernel}x{kernel} window does not fit a {size} px plane")
    return 1 + (size + 2 * padding - kernel) // stride


def _fold(conv: Conv, affine: Affine | None) -> tuple[np.ndarray, np.ndarray]:
    weights = conv.weights.astype(np.float32)
    bias = conv.bias if conv.bias is not None else np.zeros(weights.shape[0], np.float32)
    if affine is None:
        return weights, bias.astype(np.float32)
    if affine.gamma.shape != (weights.shape[0],):
        raise OnnxConversionError(f"affine over {affine.gamma.shape} channels after a {weights.shape[0]}-filter con")
    gamma = affine.gamma.astype(np.float32)
    return (weights * gamma[:, None, None, None]).astype(np.float32), (bias * gamma + affine.beta).astype(np.float32)


def _pad_to(g: OnnxGraph, name: str, shape: Shape, target: Shape) -> str:
    if shape == target:
        return name
    ends = [t - s for s, t in zip(shape, target, strict=True)]
    pads = np.array([0, 0, 0, 0, 0, *ends], np.int64)  # begins N,C,H,W then ends N,C,H,W
    return g.node("Pad", [name, g.const("pads", pads)], "pad", mode="constant")


def _input(g: OnnxGraph, layer: InputRgb, spec: OnnxIoSpec) -> tuple[str, Shape]:
    if (layer.rows, layer.cols) != (spec.height, spec.width):
        raise OnnxConversionError(f"input is {layer.rows}x{layer.cols}, the declared spec {spec.height}x{spec.width}")
    if not np.allclose(layer.mean_rgb, spec.mean_rgb, atol=1e-4):
        raise OnnxConversionError(f"input means {layer.mean_rgb} differ from the declared {spec.mean_rgb}")
    x = g.node("Cast", [spec.input_name], "cast", to=TensorProto.FLOAT)
    x = g.node("Sub", [x, g.const("mean_rgb", np.array(layer.mean_rgb, np.float32))], "centre")
    x = g.node("Mul", [x, g.const("scale", np.array(spec.scale, np.float32))], "scale")
    x = g.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    return x, (3, layer.rows, layer.cols)


def build_graph(net: DlibNet, spec: OnnxIoSpec = DLIB_RESNET_IO) -> onnx.GraphProto:
    """The ONNX graph of ``net``'s forward pass, with declared input and output shapes."""
    layers = list(net.layers)
    if not layers or not isinstance(layers[0], InputRgb):
        raise OnnxConversionError("the network does not start with an RGB input layer")
    g = OnnxGraph()
    x, shape = _input(g, layers[0], spec)
    tags: dict[int, tuple[str, Shape]] = {}
    i = 1
    while i < len(layers):
        layer = layers[i]
        match layer:
            case Conv():
                nxt = layers[i + 1] if i + 1 < len(layers) else None
                affine = nxt if isinstance(nxt, Affine) and not layer.relu else None
                if layer.weights.shape[1] != shape[0]:
                    raise OnnxConversionError(f"con expects {layer.weights.shape[1]} channels, gets {shape[0]}")
                weights, bias = _fold(layer, affine)
                k, s, p = weights.shape[2], layer.stride, layer.padding
                x = g.node("Conv", [x, g.const("w", weights), g.const("b", bias)], "conv",
                           kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
                shape = (weights.shape[0], _out_size(shape[1], k, s, p), _out_size(shape[2], k, s, p))
                if layer.relu:
                    x = g.node("Relu", [x], "relu")
                i += 1 if affine is None else 2
                continue
            case Affine():
                scale = layer.gamma.reshape(1, -1, 1, 1).astype(np.float32)
                shift = layer.beta.reshape(1, -1, 1, 1).astype(np.float32)
                x = g.node("Add", [g.node("Mul", [x, g.const("gamma", scale)], "affine"),
                                   g.const("beta", shift)], "affine")
            case Relu():
                x = g.node("Relu", [x], "relu")
            case Pool(kernel=0):
                op = "GlobalMaxPool" if layer.kind == "max" else "GlobalAveragePool"
                x = g.node(op, [x], "gpool")
                shape = (shape[0], 1, 1)
            case Pool():
                k, s, p = layer.kernel, layer.stride, layer.padding
                attrs: dict[str, Any] = {"kernel_shape": [k, k], "strides": [s, s], "pads": [p, p, p, p]}
                if layer.kind == "avg":
                    attrs["count_include_pad"] = 0  # dlib averages the clipped window
                x = g.node("MaxPool" if layer.kind == "max" else "AveragePool", [x], "pool", **attrs)
                shape = (shape[0], _out_size(shape[1], k, s, p), _out_size(shape[2], k, s, p))
            case Tag():
                tags[layer.tag] = (x, shape)
            case Skip():
                if layer.tag not in tags:
                    raise OnnxConversionError(f"skip{layer.tag} has no tag{layer.tag} below it")
                x, shape = tags[layer.tag]
            case AddPrev():
                if layer.tag not in tags:
                    raise OnnxConversionError(f"add_prev{layer.tag} has no tag{layer.tag} below it")
                other, other_shape = tags[layer.tag]
                target: Shape = (max(shape[0], other_shape[0]), max(shape[1], other_shape[1]),
                                 max(shape[2], other_shape[2]))
                x = g.node("Add", [_pad_to(g, x, shape, target), _pad_to(g, other, other_shape, target)], "add")
                shape = target
            case Fc():
                if layer.weights.shape[0] != shape[0] * shape[1] * shape[2]:
                    raise OnnxConversionError(f"fc expects {layer.weights.shape[0]} inputs, gets {shape}")
                x = g.node("Flatten", [x], "flatten", axis=1)
                x = g.node("MatMul", [x, g.const("fc_w", layer.weights.astype(np.float32))], "fc")
                if layer.bias is not None:
                    x = g.node("Add", [x, g.const("fc_b", layer.bias.astype(np.float32))], "fc_bias")
                shape = (layer.weights.shape[1], 1, 1)
            case Identity():
                pass
            case InputRgb():
                raise OnnxConversionError("a second input layer inside the network")
        i += 1
    if shape != (spec.output_dim, 1, 1):
        raise OnnxConversionError(f"the network ends in {shape}, the declared output is {spec.output_dim}-d")
    g.nodes.append(helper.make_node("Identity", [x], [spec.output_name], name=spec.output_name))
    inputs = [helper.make_tensor_value_info(spec.input_name, TensorProto.UINT8,
                                            ["batch", spec.height, spec.width, 3])]
    outputs = [helper.make_tensor_value_info(spec.output_name, TensorProto.FLOAT, ["batch", spec.output_dim])]
    return helper.make_graph(g.nodes, "dlib_face_resnet_v1", inputs, outputs, g.initializers)


def convert_dlib_resnet(dat_path: Path, source_sha256: str | None = None) -> onnx.ModelProto:
    """Parse dlib's ResNet .dat file and return a checked ONNX model with declared I/O.

    Raises :class:`models.errors.DlibModelFormatError` (naming the file) when the file cannot be
    read as dlib's face ResNet.
    """
    dat_path = Path(dat_path)
    net = read_dlib_net(dat_path)
    model = helper.make_model(build_graph(net), producer_name="smartbranch.models.dlib_convert",
                              producer_version=str(CONVERTER_VERSION),
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    model.doc_string = f"dlib face ResNet v1 converted from {dat_path.name}"
    meta = {"source_file": dat_path.name, "source_sha256": source_sha256 or sha256_file(dat_path),
            "converter_version": str(CONVERTER_VERSION), "io_spec": json.dumps(asdict(DLIB_RESNET_IO))}
    helper.set_model_props(model, meta)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise OnnxConversionError(f"converted model of {dat_path} fails the ONNX checker: {exc}") from exc
    return model


# ---------------------------------------------------------------- cache


def cache_path(cache_dir: Path, dat_sha256: str) -> Path:
    return cache_dir / f"{CACHE_PREFIX}-{dat_sha256}-c{CONVERTER_VERSION}.onnx"


def ensure_onnx(dat_path: Path, cache_dir: Path | None = None) -> Path:
    """The cached ONNX conversion of ``dat_path``, converting it on first use (or if the cache is corrupt)."""
    dat_path = Path(dat_path)
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    try:
        dat_sha = sha256_file(dat_path)
    except OSError as exc:
        raise OnnxConversionError(f"cannot read dlib model file {dat_path}: {exc.strerror or exc}") from exc
    target = cache_path(folder, dat_sha)
    return cached_conversion(target, dat_path,
                             lambda: convert_dlib_resnet(dat_path, source_sha256=dat_sha).SerializeToString())
