"""Per-photo work of ``bench.face_variants``: every face finder and every chip variant of one photo,
embedded in one batch, with the time each step took.

A photo gives a set of named single-chip embeddings (L2-normalised); the variants of the table are
means of some of them (test-time augmentation), so each chip is embedded once whatever the variant.

Chip keys:
- ``hog`` / ``hogpad`` / ``blaze``: the base chip (dlib get_face_chip, padding 0.25) of the face found by
  HOG on the photo, HOG on the photo padded by 25 % (replicated border), and BlazeFace on the padded
  photo with dlib's 5 points fitted on its box;
- ``def_*``: chips of the default finder's face (``hogpad``, else ``blaze``): ``def`` (same as the
  base), ``def_flip`` (mirrored chip), ``def_j0..7`` (dlib-like jitters: rotation +-3 deg, scale
  0.97-1.03, shift +-2 %, half of them mirrored; seeded), ``def_p10`` .. ``def_p30`` (chip padding 0.10 to
  0.30; 15 and 20 with ``_flip``), ``def_const`` / ``def_refl`` (the photo padded with a black /
  mirrored border instead of a replicated one, landmarks refitted on the same box) and their ``_flip``;
- ``blaze_flip``, ``hogpad_flip``: the mirrored chips of those finders.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vision.engines.base import DlibEngineConfig
from vision.engines.dlib_engine import CHIP_PADDING, DlibFaceEngine
from vision.engines.registry import build_engine
from vision.errors import BadImageError
from vision.imageio import decode_image
from vision.quality import assess, yaw_ratio
from vision.single_face import PAD_FRACTION, SingleFaceFinder
from vision.types import Detections, FloatArray, Image

logger = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 50 * 1024 * 1024
N_JITTERS = 8


def jitter_params(n: int = N_JITTERS, seed: int = 0) -> list[tuple[float, float, float, float, bool]]:
    """(rotation degrees, scale, dx, dy as chip fractions, mirror) per jitter, in dlib's jitter_image ranges."""
    rng = np.random.default_rng(seed)
    return [(float(rng.uniform(-3, 3)), float(rng.uniform(0.97, 1.03)), float(rng.uniform(-0.02, 0.02)),
             float(rng.uniform(-0.02, 0.02)), i % 2 == 1) for i in range(n)]


JITTERS = jitter_params()


def jitter_chip(chip: Image, rotation: float, scale: float, dx: float, dy: float, mirror: bool) -> Image:
    size = chip.shape[0]
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), rotation, scale)
    matrix[:, 2] += (dx * size, dy * size)
    out = np.asarray(cv2.warpAffine(chip, matrix, (size, size), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT_101), np.uint8)
    return np.ascontiguousarray(out[:, ::-1]) if mirror else out


def mirror(chip: Image) -> Image:
    return np.ascontiguousarray(chip[:, ::-1])


@dataclass(slots=True)
class PhotoResult:
    vectors: dict[str, FloatArray] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)  # detection per finder, chips, embedding per chip
    quality: dict[str, float | str] = field(default_factory=dict)
    error: str | None = None


class PhotoWorker:
    """Holds one engine and its finders; ``__call__`` does one photo."""

    def __init__(self, config: DlibEngineConfig) -> None:
        engine = build_engine(config)
        if not isinstance(engine, DlibFaceEngine):
            raise TypeError("the variant bench needs the dlib engine")
        self.engine = engine
        self.finders = {name: SingleFaceFinder(engine, strategy)  # type: ignore[arg-type]
                        for name, strategy in (("hog", "hog"), ("hogpad", "hog_pad"), ("blaze", "blazeface"))}

    def __call__(self, path: Path) -> PhotoResult:
        out = PhotoResult()
        try:
            image = decode_image(path.read_bytes(), max_bytes=MAX_IMAGE_BYTES)
        except (OSError, BadImageError) as exc:
            out.error = str(exc)
            return out
        chips: dict[str, Image] = {}
        faces: dict[str, tuple[Image, Detections]] = {}
        for name, finder in self.finders.items():
            t0 = time.perf_counter()
            found = finder.find(image)
            out.ms[f"find_{name}"] = (time.perf_counter() - t0) * 1000
            face = found.largest()
            if len(face):
                faces[name] = (found.image, face)
        t0 = time.perf_counter()
        for name, (img, face) in faces.items():
            chips[name] = self.engine.chips(img, face)[0]
        for name in ("hogpad", "blaze"):
            if name in chips:
                chips[f"{name}_flip"] = mirror(chips[name])
        default = "hogpad" if "hogpad" in faces else "blaze" if "blaze" in faces else None
        out.ms["chip"] = (time.perf_counter() - t0) * 1000 / max(len(faces), 1)
        if default is not None:
            out.quality = self._quality(*faces[default], default)
            self._default_chips(image, *faces[default], chips)
        if chips:
            names = list(chips)
            t0 = time.perf_counter()
            vectors = self.engine.embed_chips([chips[n] for n in names])
            out.ms["embed_per_chip"] = (time.perf_counter() - t0) * 1000 / len(names)
            out.vectors = {n: vectors[i] for i, n in enumerate(names)}
        return out

    def _default_chips(self, image: Image, padded: Image, face: Detections, chips: dict[str, Image]) -> None:
        base = self.engine.chips(padded, face)[0]
        chips["def"] = base
        chips["def_flip"] = mirror(base)
        for i, params in enumerate(JITTERS):
            chips[f"def_j{i}"] = jitter_chip(base, *params)
        for pct in (10, 15, 20, 30):
            chips[f"def_p{pct}"] = self.engine.chips(padded, face, padding=pct / 100)[0]
        for pct in (15, 20):
            chips[f"def_p{pct}_flip"] = mirror(chips[f"def_p{pct}"])
        pad = int(PAD_FRACTION * max(image.shape[:2]))
        borders = {"const": cv2.BORDER_CONSTANT, "refl": cv2.BORDER_REFLECT_101}
        for name, mode in borders.items():
            other = np.asarray(cv2.copyMakeBorder(image, pad, pad, pad, pad, mode, value=(0, 0, 0)), np.uint8)
            refit = self.engine.fit(other, face.xyxy, face.score)
            chip = self.engine.chips(other, refit, padding=CHIP_PADDING)[0]
            chips[f"def_{name}"] = chip
            chips[f"def_{name}_flip"] = mirror(chip)

    def _quality(self, padded: Image, face: Detections, detector: str) -> dict[str, float | str]:
        chip = self.engine.chips(padded, face)[0]
        q = assess(face, [chip], self.engine.min_face_px)[0]
        yaw = yaw_ratio(face.landmarks[0]) if face.landmarks is not None else 0.0
        return {"detector": detector, "score": q.score, "det_score": float(face.score[0]), "yaw": yaw,
                "sharpness": q.sharpness, "size_px": q.size_px}


_WORKER: PhotoWorker | None = None


def init_worker(config: DlibEngineConfig) -> None:
    global _WORKER
    _WORKER = PhotoWorker(config)


def run_photo(path: Path) -> PhotoResult:
    if _WORKER is None:
        raise RuntimeError("init_worker was not called in this process")
    return _WORKER(path)
