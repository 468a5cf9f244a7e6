"""The face-engine protocol and engine configs (the registry that builds engines: ``registry.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vision.quality import LandmarkLayout
from vision.types import Detections, FloatArray, Image


class FaceEngine(Protocol):
    """Detects faces with 5 landmarks and embeds them into L2-normalised vectors."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def min_face_px(self) -> int: ...

    @property
    def landmark_layout(self) -> LandmarkLayout:
        """Order of the 5 landmarks: dlib's eye corners + nose, or ArcFace's eyes, nose, mouth."""
        ...

    def detect(self, image: Image) -> Detections: ...

    def embed(self, image: Image, dets: Detections) -> FloatArray: ...

    def chips(self, image: Image, dets: Detections) -> list[Image]: ...

    def embed_chips(self, chips: list[Image]) -> FloatArray: ...


class DetectOverride:
    """A base for a face engine that changes only ``detect`` (a gate, another detector): the model, sizes,
    landmark layout, alignment and embedding stay the wrapped engine's, so its galleries and thresholds hold."""

    def __init__(self, engine: FaceEngine) -> None:
        self._engine = engine

    @property
    def model_id(self) -> str:
        return self._engine.model_id

    @property
    def dim(self) -> int:
        return self._engine.dim

    @property
    def min_face_px(self) -> int:
        return self._engine.min_face_px

    @property
    def landmark_layout(self) -> LandmarkLayout:
        return self._engine.landmark_layout

    def embed(self, image: Image, dets: Detections) -> FloatArray:
        return self._engine.embed(image, dets)

    def chips(self, image: Image, dets: Detections) -> list[Image]:
        return self._engine.chips(image, dets)

    def embed_chips(self, chips: list[Image]) -> FloatArray:
        return self._engine.embed_chips(chips)


class DlibEngineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["dlib"] = Field(default="dlib", description="Engine type: dlib HOG + 5-point + ResNet.")
    min_face_px: int = Field(default=80, ge=20, le=1000,
                             description="Smallest face side in pixels to find. Drives HOG upsampling: "
                                         "80 px runs at native size, 40 px upsamples once, larger values "
                                         "shrink the frame first and run faster.")
    max_upsample: int = Field(default=2, ge=0, le=3, description="Cap on HOG pyramid upsampling.")
    detect_threshold: float = Field(default=0.0, ge=-1.0, le=2.0,
                                    description="HOG adjust_threshold; higher finds fewer, surer faces.")
    models_dir: Path | None = Field(default=None,
                                    description="Folder holding model packs; None uses installed packages.")
    embedder: Literal["onnx", "dlib"] = Field(
        default="onnx",
        description="How the ResNet descriptor is computed. 'onnx': the same network converted to ONNX at first "
                    "use (cached by the .dat's sha256) and run by onnxruntime, batched and multi-threaded; its "
                    "vectors match dlib's to cosine >= 0.9999, so galleries stay compatible. 'dlib': dlib-bin's "
                    "own single-threaded compute_face_descriptor.")
    tta: Literal["flip", "none"] = Field(
        default="flip",
        description="Test-time augmentation of every embedding. 'flip': the renormalised mean of the chip's and "
                    "its mirror image's descriptors (two ResNet passes, batched: about +50 % embedding time); it "
                    "raised verification accuracy from 0.808 to 0.834 on the East-Asian set and from 0.977 to "
                    "0.980 on LFW View 1 (python -m bench.face_variants). 'none': one pass. The model_id differs "
                    "('dlib_resnet_v1_flip' vs 'dlib_resnet_v1'), so a gallery is never searched with the other's "
                    "vectors.")
    onnx_threads: int | None = Field(default=None, ge=1, le=256,
                                     description="onnxruntime intra-op threads for the 'onnx' embedder; None uses "
                                                 "every core this process may run on.")


def l2_normalise(vectors: FloatArray) -> FloatArray:
    if vectors.size == 0:
        return vectors.astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: FloatArray = (vectors / norms).astype(np.float32)
    return out
