"""dlib DNN layers: the declared architecture (specs, as in dlib's C++ templates) and the parsed layers.

``FACE_RESNET_V1`` is the ``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp`` (also in
``tools/python/src/face_recognition.cpp``), listed outermost first as dlib's ``layer<i>`` indexes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FloatArray = np.ndarray

# ---------------------------------------------------------------- declared architecture (specs)


@dataclass(frozen=True, slots=True)
class ConSpec:
    """``con<filters, kernel, kernel, stride, stride>``; dlib pads kernel//2 only when stride is 1."""

    filters: int
    kernel: int
    stride: int

    @property
    def padding(self) -> int:
        return self.kernel // 2 if self.stride == 1 else 0


@dataclass(frozen=True, slots=True)
class AffineSpec:
    """``affine`` (per-channel scale and shift; also accepts a serialised ``bn_con`` and folds it)."""


@dataclass(frozen=True, slots=True)
class ReluSpec:
    pass


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """``max_pool``/``avg_pool<k, k, s, s>``; kernel 0 means the whole plane (``*_pool_everything``)."""

    kind: str  # "max" or "avg"
    kernel: int
    stride: int

    @property
    def padding(self) -> int:
        return self.kernel // 2 if self.stride == 1 else 0


@dataclass(frozen=True, slots=True)
class TagSpec:
    tag: int


@dataclass(frozen=True, slots=True)
class SkipSpec:
    tag: int


@dataclass(frozen=True, slots=True)
class AddPrevSpec:
    tag: int


@dataclass(frozen=True, slots=True)
class FcSpec:
    outputs: int
    bias: bool


@dataclass(frozen=True, slots=True)
class InputRgbSizedSpec:
    rows: int
    cols: int


@dataclass(frozen=True, slots=True)
class LossMetricSpec:
    pass


LayerSpec = (ConSpec | AffineSpec | ReluSpec | PoolSpec | TagSpec | SkipSpec | AddPrevSpec | FcSpec
             | InputRgbSizedSpec | LossMetricSpec)


def _block(filters: int, stride: int) -> list[LayerSpec]:
    # BN<con<N,3,3,1,1, relu<BN<con<N,3,3,stride,stride, SUBNET>>>>>
    return [AffineSpec(), ConSpec(filters, 3, 1), ReluSpec(), AffineSpec(), ConSpec(filters, 3, stride)]


def _ares(filters: int) -> list[LayerSpec]:
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [ReluSpec(), AddPrevSpec(1), *_block(filters, 1), TagSpec(1)]


def _ares_down(filters: int) -> list[LayerSpec]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [ReluSpec(), AddPrevSpec(2), PoolSpec("avg", 2, 2), SkipSpec(1), TagSpec(2), *_block(filters, 2),
            TagSpec(1)]


# anet_type of dlib's dnn_face_recognition_ex.cpp / tools/python/src/face_recognition.cpp, outermost first.
FACE_RESNET_V1: tuple[LayerSpec, ...] = (
    LossMetricSpec(),
    FcSpec(128, bias=False),
    PoolSpec("avg", 0, 1),
    *_ares_down(256),                                       # alevel0
    *_ares(256), *_ares(256), *_ares_down(256),             # alevel1
    *_ares(128), *_ares(128), *_ares_down(128),             # alevel2
    *_ares(64), *_ares(64), *_ares(64), *_ares_down(64),    # alevel3
    *_ares(32), *_ares(32), *_ares(32),                     # alevel4
    PoolSpec("max", 3, 2), ReluSpec(), AffineSpec(), ConSpec(32, 7, 2),
    InputRgbSizedSpec(150, 150),
)

# ---------------------------------------------------------------- parsed layers (with weights)


@dataclass(frozen=True, slots=True)
class Conv:
    weights: FloatArray  # (out, in, kh, kw), cross-correlation as in ONNX Conv
    bias: FloatArray | None
    stride: int
    padding: int
    relu: bool = False  # con_6 written after dlib's fuse_layers(): a relu applied inside the con


@dataclass(frozen=True, slots=True)
class Affine:
    gamma: FloatArray  # (channels,)
    beta: FloatArray


@dataclass(frozen=True, slots=True)
class Relu:
    pass


@dataclass(frozen=True, slots=True)
class Pool:
    kind: str
    kernel: int  # 0: whole plane
    stride: int
    padding: int


@dataclass(frozen=True, slots=True)
class Tag:
    tag: int


@dataclass(frozen=True, slots=True)
class Skip:
    tag: int


@dataclass(frozen=True, slots=True)
class AddPrev:
    tag: int


@dataclass(frozen=True, slots=True)
class Fc:
    weights: FloatArray  # (inputs, outputs): y = x @ weights (+ bias)
    bias: FloatArray | None


@dataclass(frozen=True, slots=True)
class InputRgb:
    mean_rgb: tuple[float, float, float]  # subtracted per channel, then divided by 256
    rows: int
    cols: int


@dataclass(frozen=True, slots=True)
class Identity:
    """A layer serialised as disabled (``affine_2``/``relu_2`` with disabled=1)."""


Layer = Conv | Affine | Relu | Pool | Tag | Skip | AddPrev | Fc | InputRgb | Identity


@dataclass(frozen=True, slots=True)
class DlibNet:
    """Layers in forward order: ``layers[0]`` is the input layer, the last feeds the loss."""

    layers: tuple[Layer, ...]
    loss: str
