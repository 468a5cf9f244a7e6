"""Test doubles: a fake camera reader and a deterministic embedder. Unit tests only; every feature
also has a test on real photos with the real models."""

from __future__ import annotations

import hashlib
import time

import numpy as np

from vision.engines.base import l2_normalise
from vision.types import Detections, FloatArray, Image


class FakeReader:
    """A camera reader that yields ``frames`` images, then ends (finite) or fails (live)."""

    def __init__(self, frames: int, *, finite: bool = True, fps: float = 50.0, size: tuple[int, int] = (48, 64),
                 fail_at: int | None = None) -> None:
        self.finite = finite
        self.fps = fps
        self._left = frames
        self._n = 0
        self._size = size
        self._fail_at = fail_at
        self.closed = False

    def read(self) -> np.ndarray | None:
        if self._fail_at is not None and self._n == self._fail_at:
            raise OSError("simulated read failure")
        if self._left <= 0:
            return None
        if not self.finite:
            time.sleep(1.0 / self.fps)  # a live camera delivers at its own rate
        self._left -= 1
        self._n += 1
        image = np.full((*self._size, 3), self._n % 256, np.uint8)
        return image

    def close(self) -> None:
        self.closed = True


def deterministic_vector(key: str, dim: int = 128) -> FloatArray:
    """A unit vector derived from ``key``: equal keys give equal vectors."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    vec = np.random.default_rng(seed).standard_normal((1, dim)).astype(np.float32)
    return l2_normalise(vec)[0]


def noisy(vector: FloatArray, cosine: float, seed: int = 0) -> FloatArray:
    """A unit vector at about ``cosine`` similarity to ``vector``."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(vector.shape).astype(np.float32)
    noise -= noise.dot(vector) * vector
    noise /= np.linalg.norm(noise)
    out = cosine * vector + np.sqrt(max(0.0, 1 - cosine**2)) * noise
    return (out / np.linalg.norm(out)).astype(np.float32)


class DeterministicEmbedder:
    """Embeds a face chip by hashing its mean colour: equal chips give equal vectors."""

    model_id = "fake-embedder"
    dim = 128
    min_face_px = 20
    landmark_layout = "dlib5"

    def detect(self, image: Image) -> Detections:
        return Detections.empty(with_landmarks=True)

    def chips(self, image: Image, dets: Detections) -> list[Image]:
        return [image[int(b[1]):int(b[3]), int(b[0]):int(b[2])] for b in dets.xyxy]

    def embed_chips(self, chips: list[Image]) -> FloatArray:
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([deterministic_vector(str(int(c.mean()))) for c in chips])

    def embed(self, image: Image, dets: Detections) -> FloatArray:
        return self.embed_chips(self.chips(image, dets))
