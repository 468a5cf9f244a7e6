"""Matching face boxes for :mod:`bench.face_detect`: IoU, greedy one-to-one matches, agreement, calibration."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np

from vision.engines.base import FaceEngine
from vision.types import Detections, FloatArray, Image


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), xyxy."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    out: FloatArray = (inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)).astype(np.float32)
    return out


def match(a: FloatArray, b: FloatArray, threshold: float) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (row of ``a``, row of ``b``), best IoU first, each at least ``threshold``."""
    ious = iou_matrix(a, b)
    pairs: list[tuple[int, int]] = []
    if ious.size == 0:
        return pairs
    used_a: set[int] = set()
    used_b: set[int] = set()
    for flat in np.argsort(-ious, axis=None, kind="stable"):
        i, j = divmod(int(flat), ious.shape[1])
        if ious[i, j] < threshold:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    return pairs


def unmatched_boxes(found: FloatArray, others: FloatArray, threshold: float = 0.3) -> list[list[float]]:
    """The boxes of ``found`` that overlap no box of ``others`` by ``threshold`` IoU, rounded for a report."""
    ious = iou_matrix(found, others)
    lonely = ~(ious >= threshold).any(axis=1) if ious.shape[1] else np.ones(len(ious), bool)
    return [[round(float(v), 1) for v in box] for box in np.asarray(found).reshape(-1, 4)[lonely]]


def agreed_faces(sets: Sequence[FloatArray], threshold: float = 0.3, votes: int = 2) -> FloatArray:
    """Faces at least ``votes`` of the detectors' box sets agree on (IoU >= ``threshold``); each is the box of
    the first set that has it."""
    out: list[FloatArray] = []
    for k, boxes in enumerate(sets):
        for box in np.asarray(boxes, np.float32).reshape(-1, 4):
            if out and (iou_matrix(box[None], np.stack(out)) >= threshold).any():
                continue  # already counted from an earlier set
            agree = 1 + sum(int((iou_matrix(box[None], other) >= threshold).any())
                            for m, other in enumerate(sets) if m != k)
            if agree >= votes:
                out.append(box)
    return np.stack(out) if out else np.zeros((0, 4), np.float32)


def calibration(engine: FaceEngine, pairs: Sequence[tuple[Image, Detections, Detections]]) -> dict[str, float]:
    """For faces both detectors found (frame, HOG detection, BlazeFace detection): the HOG box's centre offset
    in BlazeFace box sizes and its size ratio (medians; 0, 0, 1 when the box calibration holds), and the
    cosine of the two embeddings of the same face."""
    if not pairs:
        return {"pairs": 0, "dx": float("nan"), "dy": float("nan"), "scale": float("nan"),
                "cosine_median": float("nan"), "cosine_p10": float("nan"), "cosine_min": float("nan")}
    dx, dy, scale, cosine = [], [], [], []
    for frame, hog, blaze in pairs:
        h, b = hog.xyxy[0], blaze.xyxy[0]
        w, ht = float(b[2] - b[0]), float(b[3] - b[1])
        dx.append(float((h[0] + h[2] - b[0] - b[2]) / 2) / w)
        dy.append(float((h[1] + h[3] - b[1] - b[3]) / 2) / ht)
        scale.append(float(np.sqrt((h[2] - h[0]) * (h[3] - h[1]) / (w * ht))))
        cosine.append(float(engine.embed(frame, hog)[0] @ engine.embed(frame, blaze)[0]))
    return {"pairs": len(pairs), "dx": statistics.median(dx), "dy": statistics.median(dy),
            "scale": statistics.median(scale), "cosine_median": statistics.median(cosine),
            "cosine_p10": float(np.percentile(cosine, 10)), "cosine_min": min(cosine)}
