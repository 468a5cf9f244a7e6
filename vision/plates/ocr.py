"""PP-OCRv4 detection and recognition through onnxruntime, with our own pre- and post-processing.

The ONNX files come from the ``ppocr_v4_rapidocr`` model pack (shipped inside the
rapidocr-onnxruntime wheel, located without importing it, checked against its manifest's sha256).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from models.errors import ModelPackError
from models.packs import resolve_pack
from vision.plates.ctc import CtcDecoder
from vision.plates.errors import PlateModelError
from vision.types import Image

logger = logging.getLogger(__name__)

PACK = "ppocr_v4_rapidocr"
REC_HEIGHT = 48

Quad = npt.NDArray[np.float32]  # (4, 2) corners: top-left, top-right, bottom-right, bottom-left


@dataclass(frozen=True, slots=True)
class TextBox:
    """A text region found by the detector, in the coordinates of the image it was run on."""

    quad: Quad
    score: float

    @property
    def width(self) -> float:
        return float(np.linalg.norm(self.quad[1] - self.quad[0]))

    @property
    def height(self) -> float:
        return float(np.linalg.norm(self.quad[3] - self.quad[0]))

    @property
    def center(self) -> tuple[float, float]:
        c = self.quad.mean(axis=0)
        return float(c[0]), float(c[1])


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Detection and recognition run back to back on the same cores: threads that spin after one
    # session's run steal the cores from the next (measured: about 14 ms of an 100 ms frame on 2 cores).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def order_quad(points: npt.NDArray[np.float32]) -> Quad:
    """Corners ordered top-left, top-right, bottom-right, bottom-left."""
    pts = np.asarray(points, np.float32).reshape(4, 2)
    by_x = pts[np.argsort(pts[:, 0])]
    left, right = by_x[:2], by_x[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.stack([tl, tr, br, bl]).astype(np.float32)


class PpOcr:
    """The detector and the recogniser. Sessions are thread-safe for ``run``."""

    def __init__(self, det_path: Path, rec_path: Path, *, threads: int = 2) -> None:
        self._det = _session(det_path, threads)
        self._rec = _session(rec_path, threads)
        meta = self._rec.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise PlateModelError(f"{rec_path} has no 'character' list in its ONNX metadata")
        self.decoder = CtcDecoder(meta["character"].splitlines())
        classes = self._rec.get_outputs()[0].shape[-1]
        if isinstance(classes, int) and classes != self.decoder.num_classes:
            raise PlateModelError(f"{rec_path} scores {classes} classes but its character list gives "
                                  f"{self.decoder.num_classes}")

    @classmethod
    def from_pack(cls, models_dir: Path | None = None, *, threads: int = 2) -> PpOcr:
        try:
            pack = resolve_pack(PACK, models_dir)
        except ModelPackError:
            logger.error("PP-OCR model pack %s unavailable (install rapidocr-onnxruntime --no-deps)", PACK)
            raise
        return cls(pack.path_for("detection"), pack.path_for("recognition"), threads=threads)

    # -- detection ---------------------------------------------------------------------------------
    def detect(self, image: Image, *, max_side: int, thresh: float = 0.3, box_thresh: float = 0.5,
               unclip: float = 1.6) -> list[TextBox]:
        """Text boxes in ``image`` (its own pixel coordinates); the detector sees it at most ``max_side``."""
        h, w = image.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        rh = max(32, round(h * scale / 32) * 32)
        rw = max(32, round(w * scale / 32) * 32)
        resized = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        x = ((resized.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
        prob: npt.NDArray[np.float32] = np.asarray(self._det.run(None, {"x": np.ascontiguousarray(x)})[0])[0, 0]
        bitmap = np.asarray(cv2.dilate((prob > thresh).astype(np.uint8), np.ones((2, 2), np.uint8)), np.uint8)
        contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        sx, sy = w / rw, h / rh
        boxes: list[TextBox] = []
        for contour in contours[:200]:
            if len(contour) < 4:
                continue
            rect = cv2.minAreaRect(contour)
            if min(rect[1]) < 3:
                continue
            x0, y0, cw, ch = cv2.boundingRect(contour)
            mask = np.zeros((ch, cw), np.uint8)
            cv2.fillPoly(mask, [contour.reshape(-1, 2) - np.array([x0, y0])], 1)
            score = float(cv2.mean(prob[y0:y0 + ch, x0:x0 + cw], mask)[0])
            if score < box_thresh:
                continue
            (cx, cy), (rw_, rh_), angle = rect
            area, perimeter = rw_ * rh_, 2 * (rw_ + rh_)
            grow = area * unclip / max(perimeter, 1e-6)
            grown = ((cx, cy), (rw_ + 2 * grow, rh_ + 2 * grow), angle)
            quad = order_quad(np.asarray(cv2.boxPoints(grown), np.float32))
            quad[:, 0] *= sx
            quad[:, 1] *= sy
            boxes.append(TextBox(quad, score))
        return boxes

    # -- recognition -------------------------------------------------------------------------------
    def recognise_probs(self, crops: list[Image], *, min_width: int = 0) -> list[npt.NDArray[np.float32]]:
        """CTC probabilities (T, classes) per line crop, each resized to height 48, batched."""
        if not crops:
            return []
        widths = [max(8, math.ceil(REC_HEIGHT * c.shape[1] / max(c.shape[0], 1))) for c in crops]
        batch_w = max(max(widths), min_width)
        batch = np.zeros((len(crops), 3, REC_HEIGHT, batch_w), np.float32)
        for i, (crop, width) in enumerate(zip(crops, widths, strict=True)):
            resized = cv2.resize(crop, (width, REC_HEIGHT), interpolation=cv2.INTER_LINEAR)
            batch[i, :, :, :width] = ((resized.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
        out = np.asarray(self._rec.run(None, {"x": batch})[0], np.float32)
        steps = [max(1, math.ceil(w / 8)) for w in widths]
        return [out[i, :steps[i]] for i in range(len(crops))]


def warp_quad(image: Image, quad: Quad, *, pad_x: float = 0.0, pad_y: float = 0.0) -> Image:
    """The upright crop of ``quad`` (enlarged by the given fractions of its width and height)."""
    tl, tr, br, bl = quad.astype(np.float32)
    ex = (tr - tl) * pad_x / 2
    ey = (bl - tl) * pad_y / 2
    src = np.stack([tl - ex - ey, tr + ex - ey, br + ex + ey, bl - ex + ey]).astype(np.float32)
    width = max(8, round(max(np.linalg.norm(src[1] - src[0]), np.linalg.norm(src[2] - src[3]))))
    height = max(8, round(max(np.linalg.norm(src[3] - src[0]), np.linalg.norm(src[2] - src[1]))))
    dst = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    return np.asarray(cv2.warpPerspective(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REPLICATE), np.uint8)
