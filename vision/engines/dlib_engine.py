"""The embedded default engine: dlib HOG detector, 5-point landmarks, ResNet 128-d descriptor."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import dlib
import numpy as np

from models.dlib_convert import DLIB_RESNET_IO, ensure_onnx
from models.onnx_session import load_session
from models.packs import resolve_pack
from vision.engines.base import DlibEngineConfig, l2_normalise
from vision.quality import LandmarkLayout
from vision.types import Detections, FloatArray, Image

logger = logging.getLogger(__name__)

HOG_WINDOW_PX = 80  # dlib's frontal HOG detector finds faces down to about its 80x80 window
CHIP_SIZE = 150
CHIP_PADDING = 0.25
PACK_NAME = "dlib_resnet_v1"
ONNX_MAX_BATCH = 32  # chips per onnxruntime call; bounds the activation memory of one call


class OnnxResnetEmbedder:
    """dlib's face ResNet converted to ONNX: aligned BGR uint8 150x150 chips in, raw 128-d descriptors out.

    The model takes the declared input of :data:`models.dlib_convert.DLIB_RESNET_IO` (uint8 NHWC RGB;
    dlib's mean subtraction and 1/256 scaling happen inside the graph), so this adapter only flips
    the colour order and stacks the batch.
    """

    def __init__(self, dat_path: Path, threads: int | None) -> None:
        # no busy-waiting between runs: the session shares the box's cores with HOG detection and the
        # camera readers (measured on 2 loaded cores: batch 1 took 10.8 ms/face without spinning, 14.8 with)
        self._session = load_session(ensure_onnx(dat_path), intra_op_threads=threads, spin=False)
        self._input = DLIB_RESNET_IO.input_name
        self._output = DLIB_RESNET_IO.output_name
        self._shape = (DLIB_RESNET_IO.height, DLIB_RESNET_IO.width, 3)

    def __call__(self, chips: list[Image]) -> FloatArray:
        for chip in chips:
            if chip.shape != self._shape or chip.dtype != np.uint8:
                raise ValueError(f"ONNX ResNet needs uint8 {self._shape} chips, got {chip.dtype} {chip.shape}")
        parts = []
        for start in range(0, len(chips), ONNX_MAX_BATCH):
            batch = np.ascontiguousarray(np.stack(chips[start:start + ONNX_MAX_BATCH])[..., ::-1])
            parts.append(np.asarray(self._session.run([self._output], {self._input: batch})[0], np.float32))
        out: FloatArray = np.concatenate(parts).reshape(-1, DLIB_RESNET_IO.output_dim)
        return out


def detection_scale(min_face_px: int, max_upsample: int) -> tuple[float, int]:
    """Resize factor and HOG upsample count that make a ``min_face_px`` face fill the HOG window."""
    wanted = HOG_WINDOW_PX / float(min_face_px)
    if wanted <= 1.0:
        return wanted, 0
    upsample = min(max_upsample, math.ceil(math.log2(wanted) - 1e-9))
    return min(1.0, wanted / (2**upsample)), upsample


class DlibFaceEngine:
    """Implements :class:`vision.engines.base.FaceEngine` with dlib. Single-threaded per call."""

    def __init__(self, config: DlibEngineConfig) -> None:
        pack = resolve_pack(PACK_NAME, config.models_dir)
        self._config = config
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(pack.path_for("landmarks_5")))
        self._embed_raw: Callable[[list[Image]], FloatArray]
        if config.embedder == "onnx":
            # a failed conversion or session raises ModelPackError naming the file; no silent fallback to dlib
            self._embed_raw = OnnxResnetEmbedder(pack.path_for("recognition"), config.onnx_threads)
        else:
            self._embed_raw = self._dlib_descriptors
            self._resnet = dlib.face_recognition_model_v1(str(pack.path_for("recognition")))
        self._scale, self._upsample = detection_scale(config.min_face_px, config.max_upsample)
        reachable = HOG_WINDOW_PX / (self._scale * 2**self._upsample)
        logger.info("dlib engine: min_face_px=%s -> resize %.3f, upsample %s, embedder %s",
                    config.min_face_px, self._scale, self._upsample, config.embedder)
        if reachable > config.min_face_px + 0.5:
            logger.warning("dlib engine: max_upsample=%s finds faces down to about %.0f px only, not the "
                           "configured %s px", config.max_upsample, reachable, config.min_face_px)

    @property
    def model_id(self) -> str:
        """The pack, plus the test-time augmentation: vectors of different TTA are never compared."""
        return PACK_NAME if self._config.tta == "none" else f"{PACK_NAME}_{self._config.tta}"

    @property
    def dim(self) -> int:
        return 128

    @property
    def min_face_px(self) -> int:
        return self._config.min_face_px

    @property
    def landmark_layout(self) -> LandmarkLayout:
        return "dlib5"

    def detect(self, image: Image) -> Detections:
        if image.size == 0:
            return Detections.empty(with_landmarks=True)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if self._scale < 1.0:
            small = cv2.resize(gray, None, fx=self._scale, fy=self._scale, interpolation=cv2.INTER_AREA)
        else:
            small = gray
        rects, scores, _ = self._detector.run(small, self._upsample, self._config.detect_threshold)
        if not rects:
            return Detections.empty(with_landmarks=True)
        inv = 1.0 / self._scale
        boxes = np.array([[r.left() * inv, r.top() * inv, r.right() * inv, r.bottom() * inv] for r in rects],
                         np.float32)
        height, width = gray.shape
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width - 1)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height - 1)
        landmarks = np.stack([self._landmarks(gray, box) for box in boxes]).astype(np.float32)
        return Detections(boxes, np.asarray(scores, np.float32), landmarks)

    def fit(self, image: Image, boxes: FloatArray, scores: FloatArray | None = None) -> Detections:
        """dlib's 5 landmarks fitted on given face boxes (xyxy, from any detector), as :meth:`detect` returns them.

        The shape predictor was trained on HOG boxes: give boxes in HOG's convention (see
        :mod:`vision.single_face`) for landmarks as good as :meth:`detect`'s.
        """
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if image.size == 0 or boxes.shape[0] == 0:
            return Detections.empty(with_landmarks=True)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        landmarks = np.stack([self._landmarks(gray, box) for box in boxes]).astype(np.float32)
        score = np.ones(boxes.shape[0], np.float32) if scores is None else np.asarray(scores, np.float32)
        return Detections(boxes, score, landmarks)

    def _landmarks(self, gray: np.ndarray, box: np.ndarray) -> np.ndarray:
        rect = dlib.rectangle(int(box[0]), int(box[1]), int(box[2]), int(box[3]))
        shape = self._shape(gray, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def _objects(self, dets: Detections) -> dlib.full_object_detections:
        if dets.landmarks is None:
            raise ValueError("dlib embedding needs 5-point landmarks from detect()")
        objects = dlib.full_object_detections()
        for box, points in zip(dets.xyxy, dets.landmarks, strict=True):
            rect = dlib.rectangle(int(box[0]), int(box[1]), int(box[2]), int(box[3]))
            objects.append(dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in points]))
        return objects

    def chips(self, image: Image, dets: Detections, padding: float = CHIP_PADDING) -> list[Image]:
        """Aligned 150x150 BGR face chips, the ResNet's input (``padding``: dlib get_face_chip's margin)."""
        if len(dets) == 0:
            return []
        # the chip is a geometric warp of each channel on its own: warping the BGR frame gives the BGR chips
        # directly, the same pixels as flipping the frame to RGB and each chip back (a 720p frame copy less)
        chips = dlib.get_face_chips(np.ascontiguousarray(image), self._objects(dets), size=CHIP_SIZE,
                                    padding=padding)
        return [np.asarray(c, np.uint8) for c in chips]

    def embed(self, image: Image, dets: Detections) -> FloatArray:
        if len(dets) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.embed_chips(self.chips(image, dets))

    def embed_chips(self, chips: list[Image]) -> FloatArray:
        """Embed aligned BGR chips in one batch call."""
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        if self._config.tta == "none":
            return l2_normalise(self._embed_raw(chips))
        # flip TTA: each chip and its mirror in one batch; the mean of the two unit vectors, renormalised
        both = l2_normalise(self._embed_raw(chips + [np.ascontiguousarray(c[:, ::-1]) for c in chips]))
        return l2_normalise(both[: len(chips)] + both[len(chips):])

    def _dlib_descriptors(self, chips: list[Image]) -> FloatArray:
        rgb = [np.ascontiguousarray(c[:, :, ::-1]) for c in chips]
        vectors: FloatArray = np.asarray(self._resnet.compute_face_descriptor(rgb), np.float32).reshape(-1, self.dim)
        return vectors
