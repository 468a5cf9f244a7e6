"""Read plates in a camera frame: crop the entry zone, find text lines, read them under the grammar.

Only the entry zone's bounding box is searched, and the detector sees it at most ``det_max_side``
pixels on its long side, so a frame costs a fraction of full-frame OCR. Text lines that sit side by
side (``皖A`` and ``12345`` either side of the dot) are merged into one plate candidate; the largest
plausible candidates are cut upright from the full-resolution frame and recognised in one batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.zones import PolygonZone
from vision.plates.color import classify_colour
from vision.plates.ctc import Decoded
from vision.plates.grammar import normalise
from vision.plates.ocr import PpOcr, Quad, TextBox, order_quad, warp_quad
from vision.plates.rescore import RescoreConfig, rescore
from vision.types import Image, PlateRead

logger = logging.getLogger(__name__)

# Detector quads are widened a little so that the first and last characters are not cut.
_PAD_X = 0.02


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    det_max_side: int = 480  # long side of the zone as the detector sees it
    det_thresh: float = 0.3
    box_thresh: float = 0.5
    max_candidates: int = 3
    min_aspect: float = 1.8  # plate text line: width / height
    max_aspect: float = 10.0
    min_height_px: float = 8.0  # in frame pixels
    min_score: float = 0.5  # the weakest character's confidence
    rec_min_width: int = 320  # pad the recogniser input to this width (PP-OCR's training width)
    fallback_max_side: int | None = None  # when nothing is read, look again at this size (small plates)
    # Plate crops from elsewhere (read_crops): margin added above and below, as a fraction of the
    # crop's height, one read per value, combined by summed CTC log-likelihoods. Tight crops such
    # as LPRNet's 94x24 cut the plate's rim; the recogniser reads text best with some room around it.
    crop_pad_y: tuple[float, ...] = (0.2,)
    rescore: RescoreConfig = field(default_factory=RescoreConfig)


def _merge_line(boxes: list[TextBox]) -> list[Quad]:
    """Group boxes that sit side by side on one line (similar height, overlapping vertically)."""
    order = sorted(range(len(boxes)), key=lambda i: boxes[i].center[0])
    groups: list[list[int]] = []
    for i in order:
        bi = boxes[i]
        placed = False
        for group in groups:
            last = boxes[group[-1]]
            h = max(bi.height, last.height)
            same_line = abs(bi.center[1] - last.center[1]) < 0.5 * h
            similar = min(bi.height, last.height) / max(h, 1e-6) > 0.6
            gap = float(bi.quad[:, 0].min() - last.quad[:, 0].max())
            if same_line and similar and gap < 1.2 * h:
                group.append(i)
                placed = True
                break
        if not placed:
            groups.append([i])
    out: list[Quad] = []
    for group in groups:
        if len(group) == 1:
            out.append(boxes[group[0]].quad)
            continue
        pts = np.concatenate([boxes[i].quad for i in group]).astype(np.float32)
        out.append(order_quad(np.asarray(cv2.boxPoints(cv2.minAreaRect(pts)), np.float32)))
    return out


def _with_margin(crop: Image, pad_y: float) -> Image:
    """``crop`` with ``pad_y`` of its height added above and below (edge pixels repeated)."""
    pad = round(crop.shape[0] * pad_y / 2)
    if pad <= 0:
        return crop
    return np.asarray(cv2.copyMakeBorder(crop, pad, pad, 0, 0, cv2.BORDER_REPLICATE), np.uint8)


class PlateReader:
    """Stateless apart from the model sessions; safe to share between camera threads."""

    def __init__(self, ocr: PpOcr, config: ReaderConfig | None = None) -> None:
        self.ocr = ocr
        self.config = config or ReaderConfig()

    # -- crops ---------------------------------------------------------------------------------------
    def read_crops(self, crops: list[Image], *, pad_y: tuple[float, ...] | None = None) -> list[PlateRead | None]:
        """Read plate crops; None where no valid plate could be read (or the crop is empty).

        Each crop is read once per margin in ``pad_y`` (default: the config's ``crop_pad_y``; ``(0.0,)``
        reads the crop as it is) and the reads are combined by :func:`rescore`."""
        pads = self.config.crop_pad_y if pad_y is None else pad_y
        if not pads:
            raise ValueError("pad_y needs at least one margin")
        batch: list[Image] = []
        usable = [crop.ndim == 3 and crop.shape[2] == 3 and crop.shape[0] > 0 and crop.shape[1] > 0 for crop in crops]
        for crop, ok in zip(crops, usable, strict=True):
            if ok:
                batch.extend(_with_margin(crop, pad) for pad in pads)
        probs = self.ocr.recognise_probs(batch, min_width=self.config.rec_min_width)
        out: list[PlateRead | None] = []
        at = 0
        for crop, ok in zip(crops, usable, strict=True):
            if not ok:
                out.append(None)
                continue
            reads = probs[at: at + len(pads)]
            at += len(pads)
            decoded = rescore(self.ocr.decoder, reads, self.config.rescore)
            raw = self.ocr.decoder.greedy(reads[0]).text
            h, w = crop.shape[:2]
            out.append(self._to_read(decoded, raw, crop, (0.0, 0.0, float(w), float(h))))
        return out

    @staticmethod
    def _to_read(decoded: Decoded | None, raw: str, crop: Image,
                 box: tuple[float, float, float, float]) -> PlateRead | None:
        if decoded is None or not decoded.text:
            return None
        return PlateRead(text=normalise(decoded.text), raw=raw, score=decoded.score, color=classify_colour(crop),
                         box=box, char_scores=decoded.char_scores)

    # -- frames --------------------------------------------------------------------------------------
    def candidates(self, image: Image, zone: PolygonZone | None = None, *,
                   max_side: int | None = None) -> list[Quad]:
        """Plate-shaped text lines in the zone (frame coordinates), most likely first."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = 0, 0, w, h
        if zone is not None:
            pts = np.asarray(zone.points, np.float32)
            x0, y0 = max(0, int(pts[:, 0].min())), max(0, int(pts[:, 1].min()))
            x1, y1 = min(w, int(np.ceil(pts[:, 0].max()))), min(h, int(np.ceil(pts[:, 1].max())))
            if x1 - x0 < 16 or y1 - y0 < 16:
                return []
        roi = image[y0:y1, x0:x1]
        cfg = self.config
        boxes = self.ocr.detect(roi, max_side=max_side or cfg.det_max_side, thresh=cfg.det_thresh,
                                box_thresh=cfg.box_thresh)
        quads: list[tuple[float, Quad]] = []
        for quad in _merge_line(boxes):
            q = quad + np.array([x0, y0], np.float32)
            width = float(np.linalg.norm(q[1] - q[0]))
            height = float(np.linalg.norm(q[3] - q[0]))
            if height < cfg.min_height_px or not cfg.min_aspect <= width / max(height, 1e-6) <= cfg.max_aspect:
                continue
            if zone is not None:
                centre = q.mean(axis=0)
                box = np.array([[centre[0], centre[1], centre[0], centre[1]]], np.float32)
                if not zone.contains(box)[0]:
                    continue
            quads.append((width * height, q))
        quads.sort(key=lambda s: -s[0])
        return [q for _, q in quads[:cfg.max_candidates]]

    def read(self, image: Image, zone: PolygonZone | None = None) -> list[PlateRead]:
        """Every valid plate read in the zone, best first."""
        reads = self._read_at(image, zone, self.config.det_max_side)
        if not reads and self.config.fallback_max_side:
            reads = self._read_at(image, zone, self.config.fallback_max_side)
        return reads

    def _read_at(self, image: Image, zone: PolygonZone | None, max_side: int) -> list[PlateRead]:
        quads = self.candidates(image, zone, max_side=max_side)
        if not quads:
            return []
        crops = [warp_quad(image, q, pad_x=_PAD_X, pad_y=0.0) for q in quads]
        reads = self.read_crops(crops, pad_y=(0.0,))
        out: list[PlateRead] = []
        for quad, read in zip(quads, reads, strict=True):
            if read is None or read.score < self.config.min_score:
                continue
            box = (float(quad[:, 0].min()), float(quad[:, 1].min()), float(quad[:, 0].max()), float(quad[:, 1].max()))
            out.append(PlateRead(read.text, read.raw, read.score, read.color, box, read.char_scores))
        out.sort(key=lambda r: -r.score)
        return out
