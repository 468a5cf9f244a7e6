"""Labelled face sets for evaluation: pair lists, manifests, identities, and embedding every photo once
with the product's own pipeline (the configured engine, enrolment padding, the largest face).

Everything here reads through paths given on the command line; nothing is copied into the project.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel
from tqdm import tqdm

from edge.errors import EvalDataError
from vision.engines.base import FaceEngine
from vision.engines.registry import build_engine
from vision.enrolment import embed_largest_face
from vision.errors import BadImageError
from vision.imageio import decode_image
from vision.single_face import DEFAULT_STRATEGY, SingleFaceFinder, SingleFaceStrategy
from vision.types import Image

logger = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 50 * 1024 * 1024
Transform = Callable[[Image], list[Image]]


@dataclass(frozen=True, slots=True)
class PairList:
    path: Path
    left: tuple[str, ...]
    right: tuple[str, ...]
    same: npt.NDArray[np.bool_]
    fold: npt.NDArray[np.int64] | None

    def __len__(self) -> int:
        return len(self.left)

    def subset(self, index: npt.NDArray[np.int64]) -> PairList:
        return PairList(self.path, tuple(self.left[i] for i in index), tuple(self.right[i] for i in index),
                        self.same[index], None if self.fold is None else self.fold[index])

    @property
    def files(self) -> list[str]:
        return sorted(set(self.left) | set(self.right))


@dataclass(frozen=True, slots=True)
class Manifest:
    path: Path
    files: tuple[str, ...]
    identity: tuple[str, ...]
    group: tuple[str, ...] | None


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise EvalDataError(f"{path}: file not found")
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            missing = [c for c in required if c not in columns]
            if missing:
                have = ", ".join(columns) or "none"
                raise EvalDataError(f"{path}: missing column(s) {', '.join(missing)}; it has {have}")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EvalDataError(f"{path}: cannot read the CSV: {exc}") from exc
    if not rows:
        raise EvalDataError(f"{path}: no rows")
    for line, row in enumerate(rows, start=2):
        empty = [c for c in required if not (row.get(c) or "").strip()]
        if empty:
            raise EvalDataError(f"{path}, line {line}: empty {', '.join(empty)}")
    return rows


_TRUE = {"1", "true", "yes", "same"}
_FALSE = {"0", "false", "no", "different"}


def read_pairs(path: Path) -> PairList:
    """``left,right,same`` (1/0, true/false or yes/no); an optional ``fold`` column sets the folds."""
    rows = _read_csv(path, ("left", "right", "same"))
    same: list[bool] = []
    folds: list[int] = []
    has_fold = "fold" in rows[0]
    for line, row in enumerate(rows, start=2):
        value = row["same"].strip().lower()
        if value not in _TRUE | _FALSE:
            raise EvalDataError(f"{path}, line {line}: same must be 1 or 0, got {row['same']!r}")
        same.append(value in _TRUE)
        if has_fold:
            try:
                folds.append(int(row["fold"]))
            except ValueError as exc:
                raise EvalDataError(f"{path}, line {line}: fold must be an integer, got {row['fold']!r}") from exc
    return PairList(path, tuple(r["left"].strip() for r in rows), tuple(r["right"].strip() for r in rows),
                    np.asarray(same, bool), np.asarray(folds, np.int64) if has_fold else None)


def read_manifest(path: Path, identity_column: str = "identity", by: str | None = None) -> Manifest:
    """``file`` and ``identity_column`` per photo, and the ``by`` column when grouping."""
    required = ["file", identity_column] + ([by] if by else [])
    rows = _read_csv(path, required)
    files = tuple(r["file"].strip() for r in rows)
    seen: set[str] = set()
    for line, name in enumerate(files, start=2):
        if name in seen:
            raise EvalDataError(f"{path}, line {line}: {name} is listed twice")
        seen.add(name)
    return Manifest(path, files, tuple(r[identity_column].strip() for r in rows),
                    tuple(r[by].strip() for r in rows) if by else None)


def check_root(root: Path, files: Sequence[str]) -> None:
    """Fail before any embedding when the folder or one of the listed photos is missing."""
    if not root.is_dir():
        raise EvalDataError(f"{root}: folder not found")
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise EvalDataError(f"{root / missing[0]}: image not found{more}")


def folder_identities(files: Sequence[str]) -> dict[str, str]:
    return {f: str(Path(f).parent) for f in files}


def pair_identities(pairs: PairList) -> dict[str, str]:
    """Connected components of the genuine pairs (each labelled by its first file)."""
    parent: dict[str, str] = {f: f for f in pairs.files}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for left, right, same in zip(pairs.left, pairs.right, pairs.same, strict=True):
        if same:
            a, b = sorted((find(left), find(right)))
            parent[b] = a
    return {f: find(f) for f in pairs.files}


def infer_identities(pairs: PairList) -> tuple[dict[str, str], str]:
    """Identities when there is no manifest: the folder when folders agree with every pair label
    (LFW's ``Name/Name_0001.jpg``), else connected components of the genuine pairs."""
    by_folder = folder_identities(pairs.files)
    agrees = all((by_folder[a] == by_folder[b]) == bool(s) for a, b, s in zip(pairs.left, pairs.right, pairs.same,
                                                                            strict=True))
    if agrees:
        return by_folder, "folder"
    by_pairs = pair_identities(pairs)
    for line, (a, b, s) in enumerate(zip(pairs.left, pairs.right, pairs.same, strict=True), start=2):
        if not s and by_pairs[a] == by_pairs[b]:
            raise EvalDataError(f"{pairs.path}, line {line}: {a} and {b} are labelled different but genuine pairs "
                                "link them; give a --manifest with identities")
    return by_pairs, "pairs"


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Per photo and variant: the embedding (zeros when no face), whether a face was found, and time."""

    files: tuple[str, ...]
    vectors: npt.NDArray[np.float32]  # (N, V, d)
    found: npt.NDArray[np.bool_]  # (N, V)
    ms: npt.NDArray[np.float64]  # (N,) detect + embed of all variants, decode excluded

    def index(self) -> dict[str, int]:
        return {f: i for i, f in enumerate(self.files)}


@dataclass(frozen=True, slots=True)
class _Job:
    path: Path
    transform: Transform | None


@dataclass(frozen=True, slots=True)
class _Result:
    vectors: list[np.ndarray | None]
    ms: float
    error: str | None


_ENGINE: FaceEngine | None = None
_FINDER: SingleFaceFinder | None = None


def _init_worker(config: BaseModel, strategy: SingleFaceStrategy) -> None:
    global _ENGINE, _FINDER
    _ENGINE = build_engine(config)
    _FINDER = SingleFaceFinder(_ENGINE, strategy)


def _embed_job(job: _Job) -> _Result:
    if _ENGINE is None:
        raise RuntimeError("the worker's engine was not built")
    try:
        data = job.path.read_bytes()
        image = decode_image(data, max_bytes=MAX_IMAGE_BYTES)
    except (OSError, BadImageError) as exc:
        return _Result([], 0.0, str(exc))
    variants = job.transform(image) if job.transform is not None else [image]
    t0 = time.perf_counter()
    vectors = [embed_largest_face(_ENGINE, v, _FINDER) for v in variants]
    return _Result(vectors, (time.perf_counter() - t0) * 1000, None)


def _run(jobs: list[_Job], engine: FaceEngine, config: BaseModel, workers: int,
         strategy: SingleFaceStrategy) -> Iterator[_Result]:
    global _ENGINE, _FINDER
    if workers <= 1:
        _ENGINE, _FINDER = engine, SingleFaceFinder(engine, strategy)
        try:
            yield from map(_embed_job, jobs)
        finally:
            _ENGINE, _FINDER = None, None
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(config, strategy))
    try:
        yield from pool.map(_embed_job, jobs, chunksize=4)
    finally:  # also when the caller stops early on a bad image: drop the queued jobs
        pool.shutdown(wait=True, cancel_futures=True)


def embed_images(root: Path, files: Sequence[str], engine_config: BaseModel, *, engine: FaceEngine, workers: int = 1,
                 transform: Transform | None = None, variants: int = 1, desc: str = "",
                 strategy: SingleFaceStrategy = DEFAULT_STRATEGY, cache: Path | None = None) -> Embeddings:
    """Embed every file once (and each of its ``variants`` from ``transform``), with a progress bar
    on stderr. An unreadable image stops the run with :class:`EvalDataError` naming it.

    ``engine`` runs in this process when ``workers`` is 1; otherwise each worker process builds its
    own from ``engine_config`` (dlib runs one core per call). ``strategy`` is how each photo's face is
    found (:mod:`vision.single_face`). With a ``cache`` folder, a run whose engine settings, model,
    strategy, variants and photo contents are all unchanged reads the embeddings back from there.
    """
    key = _cache_key(root, files, engine_config, engine.model_id, transform, variants, strategy) if cache else ""
    cached = _read_cache(cache, key) if cache is not None else None
    if cached is not None:
        logger.info("embeddings of %s photos read from %s", len(files), cache)
        return cached
    emb = _embed_all(root, files, engine_config, engine, workers, transform, variants, desc, strategy)
    if cache is not None:
        _write_cache(cache, key, emb)
    return emb


def _embed_all(root: Path, files: Sequence[str], engine_config: BaseModel, engine: FaceEngine, workers: int,
               transform: Transform | None, variants: int, desc: str, strategy: SingleFaceStrategy) -> Embeddings:
    dim = engine.dim
    n = len(files)
    vectors = np.zeros((n, variants, dim), np.float32)
    found = np.zeros((n, variants), bool)
    ms = np.zeros(n, np.float64)
    jobs = [_Job(root / f, transform) for f in files]
    with tqdm(total=n, desc=desc, unit="img", mininterval=0.5) as bar:
        for i, result in enumerate(_run(jobs, engine, engine_config, workers, strategy)):
            if result.error is not None:
                raise EvalDataError(f"{root / files[i]}: unreadable image: {result.error}")
            for j, vector in enumerate(result.vectors[:variants]):
                if vector is not None:
                    vectors[i, j] = vector
                    found[i, j] = True
            ms[i] = result.ms
            bar.update(1)
    logger.info("embedded %s photos (%s variants each): %s without a face", n, variants, int((~found[:, 0]).sum()))
    return Embeddings(tuple(files), vectors, found, ms)


def _cache_key(root: Path, files: Sequence[str], engine_config: BaseModel, model_id: str,
               transform: Transform | None, variants: int, strategy: SingleFaceStrategy) -> str:
    """What the embeddings depend on; a transform without a stable ``repr`` (a lambda) never matches."""
    digest = hashlib.sha256()
    for name in files:
        try:
            digest.update(name.encode() + b"\0" + hashlib.sha256((root / name).read_bytes()).digest())
        except OSError as exc:
            raise EvalDataError(f"{root / name}: cannot read: {exc}") from exc
    what = {"engine": engine_config.model_dump(mode="json"), "model_id": model_id, "strategy": strategy,
            "variants": variants, "transform": repr(transform), "photos": digest.hexdigest()}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def _read_cache(folder: Path, key: str) -> Embeddings | None:
    path = folder / f"{key[:32]}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return Embeddings(tuple(str(f) for f in z["files"]), z["vectors"].astype(np.float32),
                              z["found"].astype(bool), z["ms"].astype(np.float64))
    except (OSError, KeyError, ValueError) as exc:
        logger.warning("embedding cache %s is unreadable (%s); embedding again", path, exc)
        return None


def _write_cache(folder: Path, key: str, emb: Embeddings) -> None:
    path = folder / f"{key[:32]}.npz"
    part = path.with_name(path.name + ".part")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with part.open("wb") as fh:
            np.savez(fh, key=np.array(key), files=np.array(emb.files, dtype=str), vectors=emb.vectors,
                     found=emb.found, ms=emb.ms)
        os.replace(part, path)
    except OSError as exc:
        logger.warning("cannot write the embedding cache %s: %s", path, exc)
