"""NanoDet-m person detector (COCO class 0), run by onnxruntime on our ONNX conversion of its TF.js model.

Pre- and post-processing follow upstream NanoDet (RangiLyu/nanodet, GFL head), not Human's shortcut:

- the BGR frame is resized to 416x416 (aspect not kept) and normalised per channel with NanoDet's
  mean/std; measured on ../shared/data/scenes this scores people higher and more consistently than
  Human's RGB/255 input (e.g. 3 of 3 people above 0.5 in 2008_001322.jpg against 1 of 3);
- each stride (8, 16, 32) has one cell per output row; a cell's box is its centre ((col + 0.5) * stride)
  minus/plus the expected distance of an 11-bin softmax per side, times the stride (GFL);
- boxes of all strides go through one class-agnostic NMS.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.human_models import default_models_dir
from models.onnx_session import load_session
from models.packs import resolve_pack
from models.tfjs_convert import ensure_onnx
from vision.types import Detections, FloatArray, Image

logger = logging.getLogger(__name__)

PACK_NAME = "nanodet_human"
INPUT_SIZE = 416
STRIDES = (8, 16, 32)
REG_BINS = 11
PERSON = 0
MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)


class NanoDetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    score_threshold: float = Field(default=0.4, gt=0.0, lt=1.0,
                                   description="Smallest person score kept. At 0.4: 60 found for 59 people, 37 of "
                                               "43 labelled faces inside a person box, on 14 photos of "
                                               "../shared/data/scenes (python -m bench.persons).")
    nms_iou: float = Field(default=0.5, gt=0.0, le=1.0, description="Boxes overlapping more are suppressed.")
    models_dir: Path | None = Field(default=None,
                                    description="Folder holding model packs; None: ~/.cache/smartbranch/models "
                                                "(where `make install` puts them).")
    resize: Literal["stretch", "letterbox"] = Field(
        default="letterbox",
        description="How a frame becomes the square input: letterbox (aspect kept, padded) or stretch (aspect "
                    "not kept, as upstream NanoDet-m). On the 14 photos of ../shared/data/scenes letterbox "
                    "covered 41 of 43 labelled faces with a person box against 37, exact counts 9/14 against "
                    "8/14 (python -m bench.persons), and it still finds people who fill most of the frame "
                    "height, as at a counter, where stretch missed them.")
    onnx_threads: int | None = Field(default=1, ge=1, le=256,
                                     description="onnxruntime intra-op threads; None uses every usable core.")


def gfl_decode(scores: FloatArray, regs: FloatArray, stride: int, threshold: float) -> tuple[FloatArray, FloatArray]:
    """Boxes (N, 4) xyxy in input pixels and scores of one stride's cells scoring at least ``threshold``.

    ``scores`` is (cells,) for one class, ``regs`` (cells, 4 * REG_BINS); cells are row-major on a
    square grid of INPUT_SIZE / stride.
    """
    if scores.ndim != 1 or regs.shape != (scores.shape[0], 4 * REG_BINS):
        raise ValueError(f"scores {scores.shape} and regs {regs.shape} do not match ({REG_BINS} bins per side)")
    side = INPUT_SIZE // stride
    if scores.shape[0] != side * side:
        raise ValueError(f"stride {stride} needs {side * side} cells, got {scores.shape[0]}")
    keep = np.nonzero(scores >= threshold)[0]
    logits = regs[keep].reshape(-1, 4, REG_BINS).astype(np.float64)
    prob = np.exp(logits - logits.max(-1, keepdims=True))
    prob /= prob.sum(-1, keepdims=True)
    dist = (prob * np.arange(REG_BINS)).sum(-1) * stride
    cx = (keep % side + 0.5) * stride
    cy = (keep // side + 0.5) * stride
    boxes = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1)
    return boxes.astype(np.float32), scores[keep].astype(np.float32)


def nms(boxes: FloatArray, scores: FloatArray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS, best first."""
    if boxes.shape[0] == 0:
        return np.zeros((0,), np.int64)
    xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes]
    kept = cv2.dnn.NMSBoxes(xywh, scores.astype(float).tolist(), 0.0, iou)
    return np.asarray(kept, np.int64).reshape(-1)


def to_input(image: Image, letterbox: bool = False) -> tuple[np.ndarray, tuple[float, float]]:
    """The NCHW input and the (x, y) factors from input pixels back to image pixels."""
    height, width = image.shape[:2]
    if letterbox:
        scale = INPUT_SIZE / max(height, width)
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        canvas = np.empty((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        canvas[:] = MEAN.astype(np.uint8)  # padding normalises to zero
        canvas[:h, :w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        resized: np.ndarray = canvas
        factors = (1 / scale, 1 / scale)
    else:
        resized = cv2.resize(image, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
        factors = (width / INPUT_SIZE, height / INPUT_SIZE)
    x: np.ndarray = (resized.astype(np.float32) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32), factors


class NanoDetPersonDetector:
    """People in a BGR frame: ``detect(image) -> Detections`` (absolute pixels, no landmarks)."""

    def __init__(self, config: NanoDetConfig | None = None) -> None:
        self._config = config or NanoDetConfig()
        pack = resolve_pack(PACK_NAME, self._config.models_dir or default_models_dir())
        spec = pack.manifest.files[pack.manifest.file_for_role("detection")]
        if spec.tensor_input is None or len(spec.output_names) != 2 * len(STRIDES):
            raise ValueError(f"manifest {PACK_NAME}: the detection file must declare its input and 6 outputs")
        self._input = spec.tensor_input.name
        self._outputs = list(spec.output_names)
        self._session: Any = load_session(ensure_onnx(pack.path_for("detection")),
                                          intra_op_threads=self._config.onnx_threads, spin=False)
        logger.info("NanoDet persons: %s px input (%s), threshold %.2f", INPUT_SIZE, self._config.resize,
                    self._config.score_threshold)

    @property
    def config(self) -> NanoDetConfig:
        return self._config

    def detect(self, image: Image) -> Detections:
        if image.size == 0:
            return Detections.empty()
        height, width = image.shape[:2]
        blob, (fx, fy) = to_input(image, self._config.resize == "letterbox")
        outs = self._session.run(self._outputs, {self._input: blob})
        boxes, scores = [], []
        for k, stride in enumerate(STRIDES):
            cls = np.asarray(outs[k], np.float32)[0, :, PERSON]
            reg = np.asarray(outs[k + len(STRIDES)], np.float32)[0]
            b, s = gfl_decode(cls, reg, stride, self._config.score_threshold)
            boxes.append(b)
            scores.append(s)
        xyxy = np.concatenate(boxes)
        score = np.concatenate(scores)
        keep = nms(xyxy, score, self._config.nms_iou)
        xyxy = xyxy[keep] * np.array([fx, fy, fx, fy], np.float32)
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width - 1)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height - 1)
        return Detections(xyxy.astype(np.float32), score[keep])
