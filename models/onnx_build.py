"""A small ONNX graph builder shared by our converters: unique names, constants, nodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from models.errors import OnnxConversionError


@dataclass(kw_only=True)
class OnnxGraph:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    count: int = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem: str, value: np.ndarray) -> str:
        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attrs: Any) -> str:
        out = self.name(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def finish_model(graph: onnx.GraphProto, *, producer: str, source: Path, source_sha256: str | None,
                 converter_version: int, opset: int, ir_version: int) -> onnx.ModelProto:
    """Wrap ``graph`` in a model that records its source, and check it with onnx.checker."""
    model = helper.make_model(graph, producer_name=producer, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    helper.set_model_props(model, {"source": source.name, "source_sha256": source_sha256 or "",
                                   "converter_version": str(converter_version)})
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise OnnxConversionError(f"the ONNX graph converted from {source} is invalid: {exc}") from exc
    return model
