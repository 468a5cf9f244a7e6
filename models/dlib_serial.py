"""Read a dlib-serialised DNN (``dlib::serialize`` of an ``add_loss_layer<...>``) into typed layer records.

dlib's format is not self-describing: like dlib's own ``deserialize``, the reader walks a declared
architecture (a tuple of layer specs, outermost first, mirroring the C++ template) and checks every
version tag, hyper-parameter and tensor size it meets against it. The encodings followed here are
dlib 20.0's (``dlib/serialize.h``, ``dlib/cuda/tensor.h``, ``dlib/dnn/{core,layers,input,loss}.h``):

- an integer is one control byte (low nibble = byte count, 0x80 = negative) and that many
  little-endian magnitude bytes; a string is its length as an integer, then the bytes;
- a float is ``float_details``: an int64 mantissa and an int16 exponent, value = m * 2**e;
- a bool is the ASCII byte '1' or '0';
- a tensor is int version 2, four int dims (n, k, nr, nc), then little-endian float32 data;
  an ``alias_tensor`` is int version 1 and four int dims (no data);
- ``add_layer`` nests: version, its subnetwork, then its own layer details and training state, so
  the stream holds every wrapper's version first, then the input layer, then details inner to outer.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from models.dlib_layers import (
    FACE_RESNET_V1,
    AddPrev,
    AddPrevSpec,
    Affine,
    AffineSpec,
    ConSpec,
    Conv,
    DlibNet,
    Fc,
    FcSpec,
    FloatArray,
    Identity,
    InputRgb,
    InputRgbSizedSpec,
    Layer,
    LayerSpec,
    LossMetricSpec,
    Pool,
    PoolSpec,
    Relu,
    ReluSpec,
    Skip,
    SkipSpec,
    Tag,
    TagSpec,
)
from models.errors import DlibModelFormatError

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- primitive reader


class _Reader:
    def __init__(self, data: bytes, source: Path) -> None:
        self._data = data
        self._source = source
        self.pos = 0

    def error(self, reason: str) -> DlibModelFormatError:
        return DlibModelFormatError(str(self._source), self.pos, reason)

    @property
    def remaining(self) -> int:
        return len(self._data) - self.pos

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self._data):
            raise self.error(f"unexpected end of file (needed {count} more bytes)")
        chunk = self._data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def integer(self, *, signed: bool = True) -> int:
        control = self.take(1)[0]
        size = control & (0x0F if signed else 0x8F)
        if size == 0 or size > 8:
            self.pos -= 1
            raise self.error(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if signed and control & 0x80 else value

    def string(self) -> str:
        length = self.integer(signed=False)
        if length > 4096:
            raise self.error(f"implausible string length {length}")
        raw = self.take(length)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.error("non-ASCII layer tag") from exc

    def real(self) -> float:
        if self.remaining and self._data[self.pos] & 0x70:
            raise self.error("old ASCII float encoding is not supported")
        mantissa = self.integer()
        exponent = self.integer()
        specials = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
        if exponent in specials:
            return specials[exponent]
        return math.ldexp(mantissa, exponent)

    def boolean(self) -> bool:
        raw = self.take(1)
        if raw not in (b"0", b"1"):
            self.pos -= 1
            raise self.error(f"bad bool byte {raw!r}")
        return raw == b"1"

    def version(self, *allowed: int) -> int:
        value = self.integer()
        if value not in allowed:
            raise self.error(f"unexpected version {value}, expected one of {allowed}")
        return value

    def tag(self, *allowed: str) -> str:
        value = self.string()
        if value not in allowed:
            raise self.error(f"found layer tag {value!r}, expected one of {allowed}")
        return value

    def tensor(self) -> FloatArray:
        self.version(2)
        dims = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.error(f"negative tensor dims {dims}")
        count = math.prod(dims)
        data = np.frombuffer(self.take(4 * count), dtype="<f4").astype(np.float32)
        return data.reshape(dims)

    def alias(self) -> tuple[int, int, int, int]:
        self.version(1)
        n, k, nr, nc = (self.integer() for _ in range(4))
        return n, k, nr, nc


# ---------------------------------------------------------------- layer details


def _slice(reader: _Reader, params: FloatArray, start: int, shape: tuple[int, ...]) -> FloatArray:
    size = math.prod(shape)
    if start + size > params.size:
        raise reader.error(f"parameter tensor holds {params.size} values, layer needs {start + size}")
    return params.reshape(-1)[start:start + size].reshape(shape)


def _read_con(r: _Reader, spec: ConSpec) -> Conv:
    version = r.tag("con_4", "con_5", "con_6")
    params = r.tensor()
    filters, rows, cols = r.integer(), r.integer(), r.integer()
    stride_y, stride_x, pad_y, pad_x = r.integer(), r.integer(), r.integer(), r.integer()
    got = (filters, rows, cols, stride_y, stride_x, pad_y, pad_x)
    want = (spec.filters, spec.kernel, spec.kernel, spec.stride, spec.stride, spec.padding, spec.padding)
    if got != want:
        raise r.error(f"con layer is (filters, nr, nc, stride_y, stride_x, pad_y, pad_x)={got}, expected {want}")
    fshape = r.alias()
    bshape = r.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.real()
    use_bias = r.boolean() if version in ("con_5", "con_6") else True
    use_relu = r.boolean() if version == "con_6" else False
    if fshape[0] != filters or fshape[2:] != (rows, cols):
        raise r.error(f"con filter shape {fshape} does not match {filters} filters of {rows}x{cols}")
    weights = _slice(r, params, 0, fshape)
    bias = _slice(r, params, weights.size, (filters,)) if use_bias and bshape[1] > 0 else None
    return Conv(weights=weights, bias=bias, stride=spec.stride, padding=spec.padding, relu=use_relu)


def _read_affine(r: _Reader) -> Affine | Identity:
    version = r.tag("affine_", "affine_2", "bn_con2")
    if version == "bn_con2":
        return _read_bn_con(r)
    params = r.tensor()
    gshape = r.alias()
    bshape = r.alias()
    mode = r.integer()
    disabled = r.boolean() if version == "affine_2" else False
    if disabled:
        return Identity()
    if mode != 0:
        raise r.error(f"affine layer in mode {mode}, expected CONV_MODE (0)")
    channels = math.prod(gshape)
    if math.prod(bshape) != channels:
        raise r.error(f"affine gamma {gshape} and beta {bshape} differ in size")
    return Affine(gamma=_slice(r, params, 0, (channels,)), beta=_slice(r, params, channels, (channels,)))


def _read_bn_con(r: _Reader) -> Affine:
    """A batch-norm layer in inference form, folded the way dlib's ``affine_(const bn_&)`` does."""
    params = r.tensor()
    gshape = r.alias()
    r.alias()  # beta
    r.tensor()  # means (training batch statistics)
    r.tensor()  # invstds
    running_means = r.tensor().reshape(-1)
    running_vars = r.tensor().reshape(-1)
    r.integer(signed=False)  # num_updates
    r.integer(signed=False)  # running_stats_window_size
    for _ in range(4):
        r.real()
    eps = r.real()
    channels = math.prod(gshape)
    if running_means.size != channels or running_vars.size != channels:
        raise r.error("bn_con running statistics do not match its channel count")
    gamma = _slice(r, params, 0, (channels,))
    beta = _slice(r, params, channels, (channels,))
    scale = (gamma / np.sqrt(running_vars + np.float32(eps))).astype(np.float32)
    return Affine(gamma=scale, beta=(beta - scale * running_means).astype(np.float32))


def _read_relu(r: _Reader) -> Relu | Identity:
    version = r.tag("relu_", "relu_2")
    disabled = r.boolean() if version == "relu_2" else False
    return Identity() if disabled else Relu()


def _read_pool(r: _Reader, spec: PoolSpec) -> Pool:
    r.tag(f"{spec.kind}_pool_2")
    got = tuple(r.integer() for _ in range(6))
    want = (spec.kernel, spec.kernel, spec.stride, spec.stride, spec.padding, spec.padding)
    if got != want:
        raise r.error(f"{spec.kind}_pool is (nr, nc, stride_y, stride_x, pad_y, pad_x)={got}, expected {want}")
    return Pool(kind=spec.kind, kernel=spec.kernel, stride=spec.stride, padding=spec.padding)


def _read_fc(r: _Reader, spec: FcSpec) -> Fc:
    version = r.tag("fc_2", "fc_3")
    outputs, inputs = r.integer(signed=False), r.integer(signed=False)
    params = r.tensor()
    wshape = r.alias()
    r.alias()  # biases
    bias_mode = r.integer()
    for _ in range(4):
        r.real()
    use_bias = r.boolean() if version == "fc_3" else True
    if outputs != spec.outputs or bias_mode != (0 if spec.bias else 1):
        raise r.error(f"fc layer has {outputs} outputs and bias mode {bias_mode}, expected {spec}")
    if wshape[:2] != (inputs, outputs):
        raise r.error(f"fc weight shape {wshape} does not match {inputs} inputs x {outputs} outputs")
    weights = _slice(r, params, 0, (inputs, outputs))
    bias = _slice(r, params, weights.size, (outputs,)) if spec.bias and use_bias else None
    return Fc(weights=weights, bias=bias)


def _read_input(r: _Reader, spec: InputRgbSizedSpec) -> InputRgb:
    r.tag("input_rgb_image_sized")
    mean = (r.real(), r.real(), r.real())
    rows, cols = r.integer(signed=False), r.integer(signed=False)
    if (rows, cols) != (spec.rows, spec.cols):
        raise r.error(f"input is {rows}x{cols}, expected {spec.rows}x{spec.cols}")
    return InputRgb(mean_rgb=mean, rows=rows, cols=cols)


def _read_details(r: _Reader, spec: LayerSpec) -> Layer:
    match spec:
        case ConSpec():
            return _read_con(r, spec)
        case AffineSpec():
            return _read_affine(r)
        case ReluSpec():
            return _read_relu(r)
        case PoolSpec():
            return _read_pool(r, spec)
        case AddPrevSpec():
            r.tag("add_prev_")
            return AddPrev(spec.tag)
        case FcSpec():
            return _read_fc(r, spec)
    raise TypeError(f"{spec!r} has no layer details")


def _skip_training_state(r: _Reader, version: int, *, over_input: bool) -> None:
    """The flags and gradient buffers ``add_layer`` writes after its details; unused at inference."""
    for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, get_output_..._disabled
        r.boolean()
    r.tensor()  # x_grad
    r.tensor()  # cached_output
    if over_input:
        r.tensor()  # grad_final
        if version >= 3:
            r.integer(signed=False)  # _sample_expansion_factor
    elif version >= 2:
        r.tensor()  # params_grad


# ---------------------------------------------------------------- the walk


def parse_dlib_net(data: bytes, source: Path, architecture: tuple[LayerSpec, ...] = FACE_RESNET_V1) -> DlibNet:
    """Parse ``data`` (a whole ``.dat`` file) against ``architecture``; raise naming ``source`` if it differs."""
    if not isinstance(architecture[0], LossMetricSpec) or not isinstance(architecture[-1], InputRgbSizedSpec):
        raise ValueError("architecture must start with a loss layer and end with an input layer")
    r = _Reader(data, source)
    r.version(1)
    loss = r.tag("loss_metric_", "loss_metric_2")
    if loss == "loss_metric_2":
        r.real()  # margin
        r.real()  # distance threshold
    wrappers = architecture[1:-1]
    if isinstance(wrappers[-1], TagSpec | SkipSpec):
        raise ValueError("a tag or skip layer directly above the input layer is not supported")
    versions: list[int] = []
    for index, spec in enumerate(wrappers):  # outermost first: every wrapper's version
        over_input = index == len(wrappers) - 1
        if isinstance(spec, TagSpec | SkipSpec):
            versions.append(r.version(1))
        else:
            versions.append(r.version(2, 3) if over_input else r.version(1, 2))
    forward: list[Layer] = [_read_input(r, architecture[-1])]
    for index in range(len(wrappers) - 1, -1, -1):  # innermost first: details and training state
        spec = wrappers[index]
        if isinstance(spec, TagSpec):
            forward.append(Tag(spec.tag))
            continue
        if isinstance(spec, SkipSpec):
            forward.append(Skip(spec.tag))
            continue
        forward.append(_read_details(r, spec))
        _skip_training_state(r, versions[index], over_input=index == len(wrappers) - 1)
    if r.remaining:
        raise r.error(f"{r.remaining} unexpected trailing bytes")
    logger.debug("parsed %s: %d layers, loss %s", source, len(forward), loss)
    return DlibNet(layers=tuple(forward), loss=loss)


def read_dlib_net(path: Path, architecture: tuple[LayerSpec, ...] = FACE_RESNET_V1) -> DlibNet:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DlibModelFormatError(str(path), 0, f"cannot read: {exc.strerror or exc}") from exc
    return parse_dlib_net(data, path, architecture)
