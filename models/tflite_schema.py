"""A minimal reader of the TFLite flatbuffer (schema.fbs), enough for small float conv nets.

Only the tables the converter needs are read: Model, OperatorCode, SubGraph, Tensor, Operator and
Buffer, plus the scalar fields of the builtin option tables. Field numbers are those of
tensorflow/lite/schema/schema.fbs (each table's fields in declaration order, from 0).

Flatbuffer layout, as used here: every offset is little-endian. A table starts with an int32
``soffset`` back to its vtable (``vtable = table - soffset``); the vtable holds its own byte size, the
table's size, then one uint16 offset per field (0: the field is absent and takes its default).
A reference field (table, vector, string) holds a uint32 offset relative to the field's own position;
a vector starts with its uint32 length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.errors import TfliteFormatError

# tensorflow/lite/schema/schema.fbs: enum TensorType
TENSOR_DTYPES: dict[int, np.dtype[np.generic]] = {
    0: np.dtype(np.float32), 1: np.dtype(np.float16), 2: np.dtype(np.int32), 3: np.dtype(np.uint8),
    4: np.dtype(np.int64), 9: np.dtype(np.int8),
}
# enum BuiltinOperator (only the ones this converter may meet; the rest are named by number)
BUILTIN_NAMES: dict[int, str] = {
    0: "ADD", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE", 17: "MAX_POOL_2D",
    19: "RELU", 21: "RELU6", 22: "RESHAPE", 23: "RESIZE_BILINEAR", 34: "PAD", 54: "PRELU",
}


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source

    def _unpack(self, fmt: str, pos: int) -> int:
        if pos < 0 or pos + struct.calcsize(fmt) > len(self.data):
            raise TfliteFormatError(self.source, pos, "offset outside the file")
        value: int = struct.unpack_from(fmt, self.data, pos)[0]
        return value

    def field_pos(self, table: int, field: int) -> int | None:
        vtable = table - self._unpack("<i", table)
        vt_size = self._unpack("<H", vtable)
        slot = 4 + 2 * field
        if slot >= vt_size:
            return None
        off = self._unpack("<H", vtable + slot)
        return table + off if off else None

    def scalar(self, table: int, field: int, fmt: str, default: int) -> int:
        pos = self.field_pos(table, field)
        return default if pos is None else self._unpack(fmt, pos)

    def ref(self, table: int, field: int) -> int | None:
        pos = self.field_pos(table, field)
        return None if pos is None else pos + self._unpack("<I", pos)

    def vector(self, table: int, field: int) -> tuple[int, int]:
        """(start of the elements, length); (0, 0) for an absent vector."""
        pos = self.ref(table, field)
        if pos is None:
            return 0, 0
        return pos + 4, self._unpack("<I", pos)

    def tables(self, table: int, field: int) -> list[int]:
        start, n = self.vector(table, field)
        return [start + 4 * i + self._unpack("<I", start + 4 * i) for i in range(n)]

    def ints(self, table: int, field: int) -> tuple[int, ...]:
        start, n = self.vector(table, field)
        if n and start + 4 * n > len(self.data):
            raise TfliteFormatError(self.source, start, "int vector runs past the end of the file")
        return tuple(int(v) for v in np.frombuffer(self.data, "<i4", n, start)) if n else ()

    def raw(self, table: int, field: int) -> bytes:
        start, n = self.vector(table, field)
        if start + n > len(self.data):
            raise TfliteFormatError(self.source, start, "byte vector runs past the end of the file")
        return self.data[start:start + n]

    def string(self, table: int, field: int) -> str:
        return self.raw(table, field).decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[np.generic]
    data: np.ndarray | None  # the constant's value (buffer contents); None for activations


@dataclass(frozen=True, slots=True)
class Operator:
    op: str
    inputs: tuple[int, ...]  # tensor indices; -1 marks an optional input left out
    outputs: tuple[int, ...]
    options: int | None  # position of the builtin options table in the file
    version: int


@dataclass(frozen=True, slots=True)
class TfliteModel:
    source: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    reader: _Reader

    def option(self, op: Operator, field: int, fmt: str, default: int) -> int:
        """A scalar field of ``op``'s builtin options table (its default when the table or field is absent)."""
        if op.options is None:
            return default
        return self.reader.scalar(op.options, field, fmt, default)

    def option_ints(self, op: Operator, field: int) -> tuple[int, ...]:
        return () if op.options is None else self.reader.ints(op.options, field)


def _tensor(r: _Reader, table: int, buffers: list[int]) -> Tensor:
    shape = r.ints(table, 0)
    type_code = r.scalar(table, 1, "<b", 0)
    if type_code not in TENSOR_DTYPES:
        raise TfliteFormatError(r.source, table, f"tensor type {type_code} is not supported")
    dtype = TENSOR_DTYPES[type_code]
    buffer = r.scalar(table, 2, "<I", 0)
    if buffer >= len(buffers):
        raise TfliteFormatError(r.source, table, f"tensor names buffer {buffer} of {len(buffers)}")
    raw = r.raw(buffers[buffer], 0) if buffer else b""
    if r.field_pos(buffers[buffer], 1) is not None:
        raise TfliteFormatError(r.source, buffers[buffer], "buffers stored outside the flatbuffer are not supported")
    data = None
    if raw:
        count = int(np.prod(shape)) if shape else 1
        if len(raw) != count * dtype.itemsize:
            raise TfliteFormatError(r.source, buffers[buffer],
                                    f"buffer of {len(raw)} bytes for a {dtype} tensor of shape {list(shape)}")
        data = np.frombuffer(raw, dtype.newbyteorder("<"), count).reshape(shape).astype(dtype)
    return Tensor(r.string(table, 3), shape, dtype, data)


def read_tflite(path: Path) -> TfliteModel:
    """Parse the first subgraph of a .tflite file. Raises :class:`TfliteFormatError` on a malformed file."""
    data = Path(path).read_bytes()
    source = str(path)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TfliteFormatError(source, 4, "no TFL3 file identifier; not a TFLite model")
    r = _Reader(data, source)
    model = r._unpack("<I", 0)
    codes = []
    for code in r.tables(model, 1):
        deprecated = r.scalar(code, 0, "<b", 0)
        builtin = r.scalar(code, 3, "<i", 0)
        number = max(deprecated, builtin)
        codes.append((BUILTIN_NAMES.get(number, f"BUILTIN_{number}"), r.scalar(code, 2, "<i", 1)))
    subgraphs = r.tables(model, 2)
    if len(subgraphs) != 1:
        raise TfliteFormatError(source, model, f"{len(subgraphs)} subgraphs; exactly one is supported")
    buffers = r.tables(model, 4)
    graph = subgraphs[0]
    tensors = tuple(_tensor(r, t, buffers) for t in r.tables(graph, 0))
    operators = []
    for op in r.tables(graph, 3):
        index = r.scalar(op, 0, "<I", 0)
        if index >= len(codes):
            raise TfliteFormatError(source, op, f"operator code {index} of {len(codes)}")
        name, version = codes[index]
        operators.append(Operator(name, r.ints(op, 1), r.ints(op, 2), r.ref(op, 4), version))
    return TfliteModel(source, tensors, tuple(operators), r.ints(graph, 1), r.ints(graph, 2), r)
