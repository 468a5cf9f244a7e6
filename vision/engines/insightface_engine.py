"""The ``insightface`` face engine: SCRFD detection and ArcFace recognition, ONNX through onnxruntime.

The models come from a local model-pack folder ``<models_dir>/<pack>/`` checked against its
manifest (built in for buffalo_l, buffalo_s and buffalo_sc; ``manifest.json`` in the folder for any
other pack). Input names, shapes, colour order, normalisation and the detector's output layout are
read from the manifest, never guessed from the graph; the graph is only checked against them.
Nothing is downloaded and the ``insightface`` package is not used.

InsightFace's own pretrained packs are for non-commercial research only; see the manifest's licence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.errors import PackFileError
from models.manifest import AnchorHead, PackFile, TensorInput
from models.packs import ResolvedPack, resolve_pack
from vision.align import ARCFACE_SIZE, norm_crop
from vision.engines.base import l2_normalise
from vision.engines.scrfd import decode, letterbox, nms, to_tensor
from vision.errors import EngineConfigError
from vision.quality import LandmarkLayout
from vision.types import Detections, FloatArray, Image

logger = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
EMBED_BATCH = 32  # chips per recogniser call; bounds the memory of one call


class InsightFaceEngineConfig(BaseModel):
    """``face.engine`` with ``type: insightface``: which local pack to load and how to run it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["insightface"] = Field(default="insightface",
                                         description="Engine type: SCRFD + ArcFace ONNX models from a local pack.")
    pack: str = Field(default="buffalo_l", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
                      description="Model pack name: the folder <models_dir>/<pack>/ and the engine's model_id. "
                                  "buffalo_l, buffalo_s and buffalo_sc are built in; any other pack needs its own "
                                  "manifest.json in its folder.")
    models_dir: Path = Field(description="Folder holding the pack folder. Nothing is ever downloaded into it.")
    det_size: int = Field(default=640, ge=64, le=2048,
                          description="Side of the square the frame is letterboxed into for the detector; a "
                                      "multiple of the largest stride (32). Larger finds smaller faces, slower.")
    det_threshold: float = Field(default=0.5, gt=0.0, le=1.0, description="Lowest detector score kept.")
    nms_threshold: float = Field(default=0.4, gt=0.0, le=1.0,
                                 description="IoU above which the weaker of two overlapping faces is dropped.")
    min_face_px: int = Field(default=40, ge=8, le=1000,
                             description="Faces whose shorter box side is below this many pixels are dropped.")
    providers: tuple[str, ...] = Field(
        default=(CUDA, CPU), min_length=1,
        description="onnxruntime execution providers in order of preference. Those onnxruntime does not "
                    "list as available are skipped; the CPU provider is always the last resort.")
    threads: int = Field(default=0, ge=0, le=64,
                         description="Threads per onnxruntime session on the CPU; 0 lets onnxruntime choose.")


def select_providers(preferred: Sequence[str], available: Sequence[str]) -> list[str]:
    """The preferred providers that are available, in order, with the CPU provider last if absent."""
    chosen = [p for p in dict.fromkeys(preferred) if p in available]
    if CPU not in chosen:
        chosen.append(CPU)
    return chosen


def available_providers() -> list[str]:
    import onnxruntime as ort  # deferred: importing the config must not load onnxruntime

    return list(ort.get_available_providers())


@dataclass(frozen=True, slots=True)
class _Model:
    """One loaded ONNX file with the input and outputs its manifest declares."""

    session: Any  # onnxruntime.InferenceSession (untyped)
    file: str
    spec: TensorInput
    outputs: list[str] | None  # None: the graph's own order

    def run(self, tensor: FloatArray) -> list[np.ndarray]:
        return list(self.session.run(self.outputs, {self.spec.name: tensor}))


def _load_errors() -> tuple[type[Exception], ...]:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "InvalidProtobuf", "InvalidGraph",
             "NotImplemented", "RuntimeException", "EPFail")
    return tuple(getattr(state, n) for n in names if hasattr(state, n))


def _open(pack: ResolvedPack, file: str, spec: PackFile, n_outputs: int, providers: list[str],
          threads: int) -> _Model:
    import onnxruntime as ort

    def bad(reason: str) -> PackFileError:
        return PackFileError(pack.manifest.name, file, pack.folder, reason)

    if spec.tensor_input is None:
        raise bad("the manifest declares no tensor_input (name, shape, colour, mean, std)")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(pack.folder / file), sess_options=options, providers=providers)
    except _load_errors() as exc:
        raise bad(f"onnxruntime cannot load it: {exc}") from exc
    declared = spec.tensor_input
    inputs = {i.name: list(i.shape) for i in session.get_inputs()}
    if declared.name not in inputs:
        raise bad(f"the manifest declares input '{declared.name}', the model has {sorted(inputs)}")
    graph = inputs[declared.name]
    if len(graph) != 4 or any(isinstance(g, int) and g != d for d, g in zip(declared.shape, graph, strict=True)):
        raise bad(f"the declared input shape {list(declared.shape)} does not fit the model's {graph}")
    names = [o.name for o in session.get_outputs()]
    wanted = list(spec.output_names) or names
    missing = [n for n in wanted if n not in names]
    if missing or len(wanted) != n_outputs:
        raise bad(f"expected {n_outputs} outputs {wanted}, the model has {names}")
    return _Model(session, file, declared, list(spec.output_names) or None)


def _detector_input_size(head: AnchorHead, spec: TensorInput, det_size: int, pack: str) -> tuple[int, int]:
    height, width = spec.height, spec.width
    if (height is not None or width is not None) and (height, width) != (det_size, det_size):
        raise EngineConfigError(f"pack {pack}: the detector takes a fixed {width}x{height} input; "
                                f"det_size must match it (got {det_size})")
    if det_size % max(head.strides):
        raise EngineConfigError(f"det_size {det_size} must be a multiple of the detector's largest stride "
                                f"{max(head.strides)}")
    return det_size, det_size


class InsightFaceEngine:
    """Implements :class:`vision.engines.base.FaceEngine` with SCRFD + ArcFace ONNX models."""

    def __init__(self, config: InsightFaceEngineConfig) -> None:
        pack = resolve_pack(config.pack, config.models_dir)
        manifest = pack.manifest
        det_file, rec_file = manifest.file_for_role("detection"), manifest.file_for_role("recognition")
        det_spec, rec_spec = manifest.files[det_file], manifest.files[rec_file]
        head = det_spec.head
        if head is None or head.keypoints != 5:
            raise PackFileError(manifest.name, det_file, pack.folder,
                                "the manifest must declare an SCRFD head with 5 keypoints (ArcFace alignment)")
        if rec_spec.output_dim is None:
            raise PackFileError(manifest.name, rec_file, pack.folder, "the manifest declares no output_dim")
        self._config = config
        self._head = head
        self._model_id = manifest.name
        self._dim = rec_spec.output_dim
        chosen = select_providers(config.providers, available_providers())
        self._det = _open(pack, det_file, det_spec, 3 * len(head.strides), chosen, config.threads)
        self._rec = _open(pack, rec_file, rec_spec, 1, chosen, config.threads)
        self._det_w, self._det_h = _detector_input_size(head, self._det.spec, config.det_size, manifest.name)
        rec_h, rec_w = self._rec.spec.height, self._rec.spec.width
        if rec_h is None or rec_h != rec_w or rec_h % ARCFACE_SIZE:
            raise PackFileError(manifest.name, rec_file, pack.folder,
                                f"the recogniser input must be a fixed square multiple of {ARCFACE_SIZE} px, "
                                f"the manifest declares {list(self._rec.spec.shape)}")
        self._chip = rec_h
        self._batched = self._rec.spec.shape[0] is None
        logger.info("insightface engine: pack %s from %s, detector %s at %sx%s, recogniser %s (%s-d), "
                    "providers %s", manifest.name, pack.folder, det_file, self._det_w, self._det_h, rec_file,
                    self._dim, self.providers)
        if not manifest.commercial_use:
            logger.warning("model pack %s is licensed for non-commercial use only: %s", manifest.name,
                           manifest.licence)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def min_face_px(self) -> int:
        return self._config.min_face_px

    @property
    def landmark_layout(self) -> LandmarkLayout:
        return "arcface5"

    @property
    def providers(self) -> list[str]:
        """The execution providers the detector session actually runs on."""
        return list(self._det.session.get_providers())

    def detect(self, image: Image) -> Detections:
        """Faces with 5 landmarks (InsightFace order), best score first."""
        if image.size == 0:
            return Detections.empty(with_landmarks=True)
        canvas, scale = letterbox(image, self._det_w, self._det_h)
        spec = self._det.spec
        tensor = to_tensor([canvas], mean=spec.mean, std=spec.std, colour=spec.colour, layout=spec.layout)
        raw = decode(self._det.run(tensor), strides=self._head.strides, anchors=self._head.anchors,
                     keypoints=self._head.keypoints, height=self._det_h, width=self._det_w,
                     threshold=self._config.det_threshold)
        if len(raw) == 0:
            return Detections.empty(with_landmarks=True)
        raw = raw.take(nms(raw.boxes, raw.scores, self._config.nms_threshold)).scaled(1.0 / scale)
        sides = np.minimum(raw.boxes[:, 2] - raw.boxes[:, 0], raw.boxes[:, 3] - raw.boxes[:, 1])
        raw = raw.take(np.flatnonzero(sides >= self._config.min_face_px))
        height, width = image.shape[:2]
        boxes = raw.boxes.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width - 1)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height - 1)
        return Detections(boxes, raw.scores.astype(np.float32), raw.points)

    def chips(self, image: Image, dets: Detections) -> list[Image]:
        """Aligned BGR chips (112x112 for ArcFace), the recogniser's input."""
        if len(dets) == 0:
            return []
        if dets.landmarks is None or dets.landmarks.shape[1] != 5:
            raise ValueError("ArcFace alignment needs the 5 landmarks of this engine's detect()")
        return [norm_crop(image, points, self._chip) for points in dets.landmarks]

    def embed(self, image: Image, dets: Detections) -> FloatArray:
        if len(dets) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.embed_chips(self.chips(image, dets))

    def embed_chips(self, chips: list[Image]) -> FloatArray:
        """L2-normalised embeddings of aligned BGR chips, batched where the model allows it."""
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        for chip in chips:
            if chip.shape != (self._chip, self._chip, 3):
                raise ValueError(f"chips must be {self._chip}x{self._chip}x3 aligned faces, got {chip.shape}")
        step = EMBED_BATCH if self._batched else 1
        spec = self._rec.spec
        parts: list[np.ndarray] = []
        for start in range(0, len(chips), step):
            tensor = to_tensor(chips[start:start + step], mean=spec.mean, std=spec.std, colour=spec.colour,
                               layout=spec.layout)
            parts.append(np.asarray(self._rec.run(tensor)[0], np.float32).reshape(tensor.shape[0], -1))
        vectors = np.concatenate(parts)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"{self._rec.file} returned {vectors.shape[1]}-d vectors, the manifest declares "
                             f"{self.dim}")
        return l2_normalise(vectors)
