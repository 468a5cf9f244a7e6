"""Population statistics of face embeddings, and the whitening transform fitted from them.

The face model was trained mostly on Western faces; on another population its embeddings share an
offset and a few dominant directions that say little about who is who. A box can learn them
without labels: it keeps the running count, mean and scatter of the embeddings it sees, never the
embeddings themselves, and fits a transform that every vector, probe and gallery template alike,
goes through before it is compared:

    y = W (x - mean),  then y / |y|

- :class:`PopulationStats` holds ``count``, ``mean`` and ``m2`` (the sum of outer products of the
  deviations from the mean). Two of them merge exactly with Chan et al.'s parallel update, so
  batches, days or the branches of a region can be combined in any order.
- :func:`fit_whitening` turns statistics into a :class:`Whitening`. ``W`` is the inverse square
  root (ZCA) of the covariance shrunk towards a multiple of the identity with a fixed ratio
  ``shrinkage``: ``(1 - a) C + a (trace C / d) I``. ``a = 1`` only centres; ``a = 0`` whitens fully.
  The ratio is fixed rather than estimated (Ledoit-Wolf or OAS): those minimise the error of the
  covariance, and on faces they pick ``a`` near 0.04, which cost accuracy; ``python -m
  bench.face_population`` chooses the ratio on one half of a labelled set and confirms it on the
  other half.
- Guards: too few faces, or a covariance with (numerically) no spread, give the identity
  transform (unadapted, only re-normalising) with the reason, never an error.
- Statistics and transforms carry the face model's id and refuse vectors or partners of another
  model. A transform has a ``version`` (0 for the identity, then one per refit) and a ``digest`` of
  its content, so a gallery can name the transform it was built for. Both serialise to a small
  JSON document with a format version.

Pure numpy, no I/O beyond bytes in and out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vision.errors import PopulationFileError, PopulationInputError, PopulationModelError
from vision.voter import VoterConfig

FloatArray = npt.NDArray[np.float64]

STATS_FORMAT = "smartbranch.population_stats"
WHITENING_FORMAT = "smartbranch.whitening"
FORMAT_VERSION = 1


def _same_model(have: str, want: str, what: str) -> None:
    if have != want:
        raise PopulationModelError(f"{what} belongs to face model {have!r}, not {want!r}")


def _vectors(vectors: npt.ArrayLike, dim: int | None) -> FloatArray:
    try:
        arr = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PopulationInputError(f"embeddings are not numbers: {exc}") from exc
    if arr.ndim != 2 or (dim is not None and arr.shape[1] != dim) or arr.shape[1] == 0:
        want = f"(N, {dim})" if dim is not None else "(N, d)"
        raise PopulationInputError(f"embeddings must have shape {want}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise PopulationInputError("embeddings contain NaN or infinity")
    if arr.shape[0] and not (np.abs(arr).sum(axis=1) > 0).all():
        raise PopulationInputError("an all-zero vector is not an embedding (a face that was not found?)")
    return arr


@dataclass(frozen=True, slots=True)
class PopulationStats:
    """Count, mean and scatter (``m2``) of one face model's embeddings; no individual vector."""

    model_id: str
    count: int
    mean: FloatArray  # (d,)
    m2: FloatArray  # (d, d): sum over vectors of (x - mean)(x - mean)^T

    def __post_init__(self) -> None:
        d = self.mean.shape[0] if self.mean.ndim == 1 else -1
        if not self.model_id:
            raise PopulationInputError("population statistics need a model id")
        if d < 1 or self.m2.shape != (d, d):
            raise PopulationInputError(f"mean (d,) and m2 (d, d) disagree: {self.mean.shape}, {self.m2.shape}")
        if self.count < 0:
            raise PopulationInputError(f"count must be >= 0, got {self.count}")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.m2).all()):
            raise PopulationInputError("population statistics contain NaN or infinity")

    @classmethod
    def empty(cls, model_id: str, dim: int) -> PopulationStats:
        if dim < 1:
            raise PopulationInputError(f"dimension must be >= 1, got {dim}")
        return cls(model_id, 0, np.zeros(dim), np.zeros((dim, dim)))

    @classmethod
    def of(cls, model_id: str, vectors: npt.ArrayLike) -> PopulationStats:
        """The statistics of one batch of (N, d) embeddings (two passes, numerically stable)."""
        arr = _vectors(vectors, None)
        if arr.shape[0] == 0:
            return cls.empty(model_id, arr.shape[1])
        mean = arr.mean(axis=0)
        centred = arr - mean
        return cls(model_id, int(arr.shape[0]), mean, centred.T @ centred)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def add(self, model_id: str, vectors: npt.ArrayLike) -> PopulationStats:
        """These statistics with a batch of ``model_id``'s embeddings added."""
        _same_model(model_id, self.model_id, "these embeddings")
        arr = _vectors(vectors, self.dim)
        return self.merge(PopulationStats.of(model_id, arr))

    def merge(self, other: PopulationStats) -> PopulationStats:
        """Chan et al.'s parallel update: the statistics of both populations together."""
        _same_model(other.model_id, self.model_id, "the other population")
        if other.dim != self.dim:
            raise PopulationInputError(f"cannot merge {other.dim}-d statistics into {self.dim}-d ones")
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + np.outer(delta, delta) * (self.count * other.count / n)
        return PopulationStats(self.model_id, n, mean, (m2 + m2.T) / 2)

    def covariance(self) -> FloatArray:
        """The sample covariance (``m2 / (count - 1)``); needs two or more vectors."""
        if self.count < 2:
            raise PopulationInputError(f"a covariance needs two or more embeddings, have {self.count}")
        out: FloatArray = self.m2 / (self.count - 1)
        return out

    def to_bytes(self) -> bytes:
        return _dump({"format": STATS_FORMAT, "format_version": FORMAT_VERSION, "model_id": self.model_id,
                      "dim": self.dim, "count": self.count, "mean": _b64(self.mean), "m2": _b64(self.m2)})

    @classmethod
    def from_bytes(cls, data: bytes, *, model_id: str | None = None) -> PopulationStats:
        """Read :meth:`to_bytes`; with ``model_id``, refuse another model's statistics."""
        doc = _load(data, STATS_FORMAT)
        dim = _int(doc, "dim", 1)
        try:
            stats = cls(_str(doc, "model_id"), _int(doc, "count", 0), _array(doc, "mean", (dim,)),
                        _array(doc, "m2", (dim, dim)))
        except PopulationInputError as exc:
            raise PopulationFileError(f"population statistics: {exc}") from exc
        if model_id is not None:
            _same_model(stats.model_id, model_id, "these population statistics")
        return stats


@dataclass(frozen=True, slots=True)
class WhiteningConfig:
    """How a transform is fitted, and when the statistics are not enough to fit one."""

    shrinkage: float = 0.8  # the share of the identity in the covariance; see bench.face_population
    min_faces: int = 256  # twice the dlib embedding's dimension
    min_variance: float = 1e-8  # mean variance per dimension below which the covariance has no spread
    max_condition: float = 1e8  # condition number of the shrunk covariance above which it counts as singular

    def __post_init__(self) -> None:
        if not 0.0 <= self.shrinkage <= 1.0:
            raise ValueError(f"shrinkage must be in [0, 1], got {self.shrinkage}")
        if self.min_faces < 2:
            raise ValueError(f"min_faces must be at least 2, got {self.min_faces}")
        if not self.min_variance > 0 or not self.max_condition > 1:
            raise ValueError("min_variance must be > 0 and max_condition > 1")


@dataclass(frozen=True, slots=True)
class Whitening:
    """An affine map of one model's embeddings followed by re-normalisation, or the identity.

    ``mean`` and ``matrix`` are None for the identity (unadapted); ``reason`` then says why.
    ``voter`` is the voter setting calibrated in this transform's space, when one was.
    """

    model_id: str
    dim: int
    version: int
    count: int
    shrinkage: float
    mean: FloatArray | None
    matrix: FloatArray | None
    reason: str | None = None
    voter: VoterConfig | None = None

    def __post_init__(self) -> None:
        if (self.mean is None) != (self.matrix is None):
            raise PopulationInputError("a transform has both a mean and a matrix, or neither")
        if self.mean is not None and self.matrix is not None:
            if self.mean.shape != (self.dim,) or self.matrix.shape != (self.dim, self.dim):
                raise PopulationInputError(f"transform arrays do not match dimension {self.dim}")
            if not (np.isfinite(self.mean).all() and np.isfinite(self.matrix).all()):
                raise PopulationInputError("transform contains NaN or infinity")
        elif self.reason is None:
            raise PopulationInputError("an identity transform states why it is not adapted")

    @classmethod
    def identity(cls, model_id: str, dim: int, reason: str, *, count: int = 0) -> Whitening:
        return cls(model_id, dim, 0, count, 1.0, None, None, reason)

    @property
    def adapted(self) -> bool:
        return self.matrix is not None

    @property
    def digest(self) -> str:
        """A short sha256 of what the transform does (model, version, arrays)."""
        h = hashlib.sha256(f"{self.model_id}|{self.dim}|{self.version}".encode())
        if self.mean is not None and self.matrix is not None:
            h.update(self.mean.astype("<f8").tobytes())
            h.update(self.matrix.astype("<f8").tobytes())
        return h.hexdigest()[:16]

    def with_voter(self, voter: VoterConfig | None) -> Whitening:
        return Whitening(self.model_id, self.dim, self.version, self.count, self.shrinkage, self.mean, self.matrix,
                         self.reason, voter)

    def apply(self, model_id: str, vectors: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """(N, d) embeddings of ``model_id`` in this transform's space, L2-normalised."""
        _same_model(model_id, self.model_id, "this transform")
        try:
            arr = np.asarray(vectors, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise PopulationInputError(f"embeddings are not numbers: {exc}") from exc
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise PopulationInputError(f"embeddings must have shape (N, {self.dim}), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise PopulationInputError("embeddings contain NaN or infinity")
        if self.mean is not None and self.matrix is not None:
            arr = (arr - self.mean) @ self.matrix.T
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        out: npt.NDArray[np.float32] = (arr / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        return out

    def to_bytes(self) -> bytes:
        voter = None if self.voter is None else {
            "threshold": self.voter.threshold, "min_margin": self.voter.min_margin,
            "min_votes": self.voter.min_votes, "max_observations": self.voter.max_observations}
        return _dump({"format": WHITENING_FORMAT, "format_version": FORMAT_VERSION, "model_id": self.model_id,
                      "dim": self.dim, "version": self.version, "count": self.count, "shrinkage": self.shrinkage,
                      "adapted": self.adapted, "reason": self.reason, "digest": self.digest,
                      "mean": None if self.mean is None else _b64(self.mean),
                      "matrix": None if self.matrix is None else _b64(self.matrix), "voter": voter})

    @classmethod
    def from_bytes(cls, data: bytes, *, model_id: str | None = None) -> Whitening:
        """Read :meth:`to_bytes`; with ``model_id``, refuse a transform of another model."""
        doc = _load(data, WHITENING_FORMAT)
        dim = _int(doc, "dim", 1)
        adapted = doc.get("adapted")
        if not isinstance(adapted, bool):
            raise PopulationFileError("transform: 'adapted' must be true or false")
        reason = doc.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise PopulationFileError("transform: 'reason' must be text or null")
        shrinkage = doc.get("shrinkage")
        if not isinstance(shrinkage, int | float) or not 0.0 <= float(shrinkage) <= 1.0:
            raise PopulationFileError("transform: 'shrinkage' must be a number in [0, 1]")
        try:
            out = cls(_str(doc, "model_id"), dim, _int(doc, "version", 0), _int(doc, "count", 0), float(shrinkage),
                      _array(doc, "mean", (dim,)) if adapted else None,
                      _array(doc, "matrix", (dim, dim)) if adapted else None, reason, _voter(doc.get("voter")))
        except PopulationInputError as exc:
            raise PopulationFileError(f"transform: {exc}") from exc
        if doc.get("digest") != out.digest:
            raise PopulationFileError("transform: its digest does not match its content")
        if model_id is not None:
            _same_model(out.model_id, model_id, "this transform")
        return out


def fit_whitening(stats: PopulationStats, config: WhiteningConfig = WhiteningConfig(), *,
                  version: int = 1) -> Whitening:
    """The shrunk ZCA whitening of ``stats``, or the identity with the reason when it cannot be fitted."""
    if version < 1:
        raise ValueError(f"a fitted transform's version is at least 1, got {version}")
    d = stats.dim
    if stats.count < config.min_faces:
        return Whitening.identity(stats.model_id, d, f"too few faces: {stats.count} < {config.min_faces}",
                                  count=stats.count)
    cov = stats.covariance()
    scale = float(np.trace(cov)) / d
    if not scale >= config.min_variance:
        return Whitening.identity(stats.model_id, d, f"degenerate covariance: mean variance {scale:.3g} < "
                                  f"{config.min_variance:.3g} (the faces barely differ)", count=stats.count)
    a = config.shrinkage
    shrunk = (1.0 - a) * cov + a * scale * np.eye(d)
    values, vectors = np.linalg.eigh((shrunk + shrunk.T) / 2)
    low, high = float(values.min()), float(values.max())
    if not low > 0 or high / low > config.max_condition:
        condition = math.inf if not low > 0 else high / low
        return Whitening.identity(stats.model_id, d, f"degenerate covariance: condition number {condition:.3g} > "
                                  f"{config.max_condition:.3g} (raise the shrinkage)", count=stats.count)
    matrix = (vectors / np.sqrt(values)) @ vectors.T
    return Whitening(stats.model_id, d, version, stats.count, a, stats.mean.copy(), (matrix + matrix.T) / 2)


# ----------------------------------------------------------------------------------------- serialisation


def _b64(array: FloatArray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f8").tobytes()).decode("ascii")


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def _load(data: bytes, fmt: str) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PopulationFileError(f"not a {fmt} document: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise PopulationFileError(f"not a {fmt} document")
    if doc.get("format_version") != FORMAT_VERSION:
        raise PopulationFileError(f"{fmt} format version {doc.get('format_version')!r} is not {FORMAT_VERSION}")
    return doc


def _str(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise PopulationFileError(f"{key!r} must be non-empty text")
    return value


def _int(doc: dict[str, Any], key: str, low: int) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise PopulationFileError(f"{key!r} must be an integer >= {low}, got {value!r}")
    return value


def _array(doc: dict[str, Any], key: str, shape: tuple[int, ...]) -> FloatArray:
    value = doc.get(key)
    if not isinstance(value, str):
        raise PopulationFileError(f"{key!r} must be base64 text")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise PopulationFileError(f"{key!r} is not base64: {exc}") from exc
    if len(raw) != 8 * math.prod(shape):
        raise PopulationFileError(f"{key!r} holds {len(raw)} bytes, not the {8 * math.prod(shape)} of {shape}")
    out: FloatArray = np.frombuffer(raw, dtype="<f8").astype(np.float64).reshape(shape)
    if not np.isfinite(out).all():
        raise PopulationFileError(f"{key!r} contains NaN or infinity")
    return out


def _voter(value: object) -> VoterConfig | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PopulationFileError("'voter' must be an object or null")
    try:
        threshold, margin = float(value["threshold"]), float(value["min_margin"])
        votes, observations = int(value["min_votes"]), int(value["max_observations"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PopulationFileError(f"'voter' is incomplete: {exc}") from exc
    if not (math.isfinite(threshold) and math.isfinite(margin)) or votes < 1 or observations < 1:
        raise PopulationFileError("'voter' holds an impossible setting")
    return VoterConfig(threshold, margin, votes, observations)
