"""SCRFD face detection in numpy: letterbox, input tensors, anchor points, decoding and NMS.

SCRFD predicts, for every anchor point of every feature stride, a face score, the distances from
the point to the four sides of the box and the offsets of the keypoints, all in stride units.
Anchor points sit at ``(x * stride, y * stride)`` of the network input (no half-cell offset), in
row-major order, each repeated once per anchor. Outputs come as scores for every stride, then
boxes for every stride, then keypoints for every stride (the layout a manifest declares).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from vision.types import FloatArray, Image, IntArray

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawFaces:
    """Decoded candidates in network-input pixels: boxes (N,4), scores (N,) and points (N,K,2)."""

    boxes: FloatArray
    scores: FloatArray
    points: FloatArray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def take(self, index: IntArray) -> RawFaces:
        return RawFaces(self.boxes[index], self.scores[index], self.points[index])

    def scaled(self, factor: float) -> RawFaces:
        """Coordinates multiplied by ``factor`` (e.g. ``1 / scale`` to go back to image pixels)."""
        return RawFaces((self.boxes * factor).astype(np.float32), self.scores,
                        (self.points * factor).astype(np.float32))


def letterbox(image: Image, width: int, height: int) -> tuple[Image, float]:
    """Resize ``image`` keeping its aspect into the top-left corner of a black ``width`` x ``height`` canvas.

    Returns the canvas and the scale (canvas pixels per image pixel) of the fitted side, as SCRFD
    was evaluated; the other side is truncated to whole pixels (under one pixel of difference).
    """
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"letterbox needs an HxWx3 image, got shape {image.shape}")
    h, w = int(image.shape[0]), int(image.shape[1])
    if h * width > w * height:  # taller than the canvas: fit the height
        scale = height / h
        new_h, new_w = height, max(1, int(height * w / h))
    else:
        scale = width / w
        new_w, new_h = width, max(1, int(width * h / w))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((height, width, image.shape[2]), np.uint8)
    canvas[:new_h, :new_w] = resized
    return canvas, scale


def to_tensor(images: Sequence[Image], *, mean: float, std: float, colour: Literal["RGB", "BGR"],
              layout: Literal["NCHW", "NHWC"]) -> FloatArray:
    """Stack BGR uint8 images into one float32 batch: channel order, ``(x - mean) / std``, layout."""
    if not images:
        raise ValueError("no images to convert")
    batch = np.stack(images)
    if batch.ndim != 4 or batch.shape[3] != 3:
        raise ValueError(f"images must be HxWx3, got a batch of shape {batch.shape}")
    if colour == "RGB":
        batch = batch[..., ::-1]
    x = (batch.astype(np.float32) - np.float32(mean)) / np.float32(std)
    if layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    out: FloatArray = np.ascontiguousarray(x, dtype=np.float32)
    return out


def anchor_centers(height: int, width: int, stride: int, anchors: int) -> FloatArray:
    """The (height * width * anchors, 2) anchor points ``(x, y)`` of one stride, in SCRFD's order."""
    ys, xs = np.mgrid[:height, :width]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * np.float32(stride)
    out: FloatArray = np.repeat(centers, anchors, axis=0)
    return out


def distance_to_boxes(centers: FloatArray, distances: FloatArray) -> FloatArray:
    """Boxes ``xyxy`` from points (N,2) and distances (N,4) to the left, top, right and bottom sides."""
    out: FloatArray = np.stack([centers[:, 0] - distances[:, 0], centers[:, 1] - distances[:, 1],
                                centers[:, 0] + distances[:, 2], centers[:, 1] + distances[:, 3]],
                               axis=-1).astype(np.float32)
    return out


def distance_to_points(centers: FloatArray, offsets: FloatArray) -> FloatArray:
    """Keypoints (N,K,2) from points (N,2) and offsets (N,2K) laid out ``x0, y0, x1, y1, ...``."""
    n = centers.shape[0]
    out: FloatArray = (centers[:, None, :] + offsets.reshape(n, -1, 2)).astype(np.float32)
    return out


def decode(outputs: Sequence[npt.NDArray[np.float32]], *, strides: Sequence[int], anchors: int, keypoints: int,
           height: int, width: int, threshold: float) -> RawFaces:
    """Candidates scoring at least ``threshold`` from the raw outputs of a ``height`` x ``width`` input."""
    groups = 3 if keypoints else 2
    if len(outputs) != groups * len(strides):
        raise ValueError(f"SCRFD with strides {list(strides)} and {keypoints} keypoints has "
                         f"{groups * len(strides)} outputs, got {len(outputs)}")
    boxes: list[FloatArray] = []
    scores: list[FloatArray] = []
    points: list[FloatArray] = []
    n = len(strides)
    for i, stride in enumerate(strides):
        cols = width // stride
        count = (height // stride) * cols * anchors
        score = np.asarray(outputs[i], np.float32).reshape(-1)
        if score.size != count:
            raise ValueError(f"stride {stride}: {score.size} scores for {count} anchors of a {width}x{height} input")
        keep = np.flatnonzero(score >= threshold)
        if keep.size == 0:
            continue
        location = keep // anchors
        centers = np.stack([location % cols, location // cols], axis=-1).astype(np.float32) * np.float32(stride)
        dist = np.asarray(outputs[n + i], np.float32).reshape(count, 4)[keep] * np.float32(stride)
        boxes.append(distance_to_boxes(centers, dist))
        scores.append(score[keep])
        if keypoints:
            offsets = np.asarray(outputs[2 * n + i], np.float32).reshape(count, 2 * keypoints)[keep]
            points.append(distance_to_points(centers, offsets * np.float32(stride)))
        else:
            points.append(np.zeros((keep.size, 0, 2), np.float32))
    if not scores:
        return RawFaces(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                        np.zeros((0, keypoints, 2), np.float32))
    return RawFaces(np.concatenate(boxes), np.concatenate(scores), np.concatenate(points))


def iou_one_to_many(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """IoU of one ``xyxy`` box with each of ``boxes`` (continuous pixels, no +1)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = max(float(box[2] - box[0]), 0.0) * max(float(box[3] - box[1]), 0.0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    out: FloatArray = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0).astype(np.float32)
    return out


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> IntArray:
    """Greedy non-maximum suppression; indices of the kept boxes, best score first.

    A box is dropped when its IoU with a better kept box is above ``iou_threshold``.
    """
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[iou_one_to_many(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, np.int64)
