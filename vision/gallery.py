"""FAISS gallery: inner product on L2-normalised embeddings, keyed by the engine's ``model_id``.

A person may hold several embeddings (several enrolment photos); searches return one score per
person, its best. Saving and loading need a :class:`~vision.gallery_files.GallerySeal`: the files are
authenticated and written atomically as described in :mod:`vision.gallery_files`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np

from vision.errors import GalleryError
from vision.gallery_files import GallerySeal, gallery_files, read_gallery, write_gallery
from vision.types import FloatArray, GalleryHit, SearchResult

logger = logging.getLogger(__name__)


class Gallery:
    """Thread-safe: a lock serialises searches and edits of the FAISS index. ``seal`` authenticates the
    files :meth:`save` writes; a gallery without one lives in memory only."""

    def __init__(self, model_id: str, dim: int, *, seal: GallerySeal | None = None) -> None:
        self.model_id = model_id
        self.dim = dim
        self.seal = seal
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._owner: dict[int, str] = {}
        self._next = 1
        self._revision = 0  # counts edits, so a view built from the entries knows when it is stale
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._owner)

    @property
    def revision(self) -> int:
        """A number that changes whenever the entries do (add, remove, replace, take, load)."""
        with self._lock:
            return self._revision

    def entries(self) -> tuple[int, list[str], FloatArray]:
        """The revision, the owner of each vector and the vectors (N, dim), read together under the lock."""
        with self._lock:
            ids = sorted(self._owner)
            if not ids:
                return self._revision, [], np.zeros((0, self.dim), np.float32)
            vectors = np.asarray(self._index.reconstruct_batch(np.asarray(ids, np.int64)), np.float32)
            return self._revision, [self._owner[i] for i in ids], vectors

    @property
    def persons(self) -> set[str]:
        with self._lock:
            return set(self._owner.values())

    def _check(self, vectors: FloatArray) -> FloatArray:
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise GalleryError(f"expected vectors of shape (N, {self.dim}) for {self.model_id}, got {arr.shape}")
        norms = np.linalg.norm(arr, axis=1)
        if arr.shape[0] and not np.allclose(norms, 1.0, atol=1e-3):
            raise GalleryError("embeddings must be L2-normalised")
        return arr

    def add(self, person_id: str, vectors: FloatArray) -> list[int]:
        arr = self._check(vectors)
        with self._lock:
            return self._add_locked(person_id, arr)

    def add_many(self, person_ids: list[str], vectors: FloatArray) -> list[int]:
        """Add one vector per person (row i belongs to ``person_ids[i]``) in one pass: a sync snapshot adds 100k
        persons, and one FAISS call for all of them costs a fraction of one call each."""
        arr = self._check(vectors)
        if arr.shape[0] != len(person_ids):
            raise GalleryError(f"{arr.shape[0]} vectors for {len(person_ids)} persons: one vector per person")
        if not person_ids:
            return []
        with self._lock:
            ids = np.arange(self._next, self._next + arr.shape[0], dtype=np.int64)
            self._index.add_with_ids(arr, ids)
            self._next += arr.shape[0]
            self._revision += 1
            numbers: list[int] = ids.tolist()
            self._owner.update(zip(numbers, person_ids, strict=True))
            return numbers

    def _add_locked(self, person_id: str, arr: FloatArray) -> list[int]:
        ids = np.arange(self._next, self._next + arr.shape[0], dtype=np.int64)
        self._index.add_with_ids(arr, ids)
        self._next += arr.shape[0]
        self._revision += 1
        for i in ids:
            self._owner[int(i)] = person_id
        return [int(i) for i in ids]

    def _remove_locked(self, person_id: str) -> int:
        ids = [i for i, p in self._owner.items() if p == person_id]
        if ids:
            self._index.remove_ids(np.asarray(ids, np.int64))  # type: ignore[arg-type]
            for i in ids:
                del self._owner[i]
            self._revision += 1
        return len(ids)

    def remove(self, person_id: str) -> int:
        with self._lock:
            return self._remove_locked(person_id)

    def remove_many(self, person_ids: Iterable[str]) -> int:
        """Remove every entry of these persons in one pass (a sync snapshot replaces thousands at once)."""
        wanted = set(person_ids)
        with self._lock:
            ids = [i for i, p in self._owner.items() if p in wanted]
            if ids:
                self._index.remove_ids(np.asarray(ids, np.int64))  # type: ignore[arg-type]
                for i in ids:
                    del self._owner[i]
                self._revision += 1
            return len(ids)

    def _vectors_locked(self, person_id: str) -> FloatArray:
        ids = sorted(i for i, p in self._owner.items() if p == person_id)
        if not ids:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._index.reconstruct_batch(np.asarray(ids, np.int64)), np.float32)

    def vectors(self, person_id: str) -> FloatArray:
        """The person's embeddings (N, dim), oldest first; (0, dim) for a person not in the gallery."""
        with self._lock:
            return self._vectors_locked(person_id)

    def replace(self, person_id: str, vectors: FloatArray) -> FloatArray:
        """Swap the person's embeddings for ``vectors`` at once (no search sees neither); returns the old ones."""
        arr = self._check(vectors)
        with self._lock:
            old = self._vectors_locked(person_id)
            self._remove_locked(person_id)
            self._add_locked(person_id, arr)
        return old

    def search(self, vectors: FloatArray, k: int = 5) -> list[SearchResult]:
        arr = self._check(vectors)
        if arr.shape[0] == 0:
            return []
        with self._lock:
            if not self._owner:
                return [SearchResult() for _ in range(arr.shape[0])]
            # enough neighbours that k distinct persons appear even if one person owns many vectors
            per_person = max(Counter(self._owner.values()).values())
            kk = min(max(k, 1) * per_person, len(self._owner))
            scores, ids = self._index.search(arr, kk)
            owner = dict(self._owner)
        results: list[SearchResult] = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            best: dict[str, float] = {}
            for score, idx in zip(row_scores, row_ids, strict=True):
                if idx < 0:
                    continue
                person = owner[int(idx)]
                if person not in best:
                    best[person] = float(score)
            hits = sorted((GalleryHit(p, s) for p, s in best.items()), key=lambda h: -h.score)[:max(k, 0)]
            results.append(SearchResult(tuple(hits)))
        return results

    def clone(self) -> Gallery:
        """An independent copy (same model, seal and entries), to edit beside this one and then :meth:`take`."""
        copy = Gallery(self.model_id, self.dim, seal=self.seal)
        with self._lock:
            copy._index = faiss.clone_index(self._index)  # type: ignore[assignment]
            copy._owner = dict(self._owner)
            copy._next = self._next
        return copy

    def take(self, other: Gallery) -> None:
        """Become ``other`` at once, under one lock: a search sees the old entries or the new ones, never a mix.
        Everyone holding this object (pipelines, the enroller) sees the new entries; ``other`` is not used after."""
        if other.model_id != self.model_id or other.dim != self.dim:
            raise GalleryError(f"cannot take a gallery of {other.model_id} ({other.dim}-d) into {self.model_id} "
                               f"({self.dim}-d)")
        with other._lock:
            index, owner, next_id = other._index, dict(other._owner), other._next
        with self._lock:
            self._index, self._owner, self._next = index, owner, next_id
            self._revision += 1

    def files(self, folder: Path) -> list[Path]:
        """This model's gallery files in ``folder``: the id map and the index."""
        return gallery_files(folder, self.model_id)

    def save(self, folder: Path) -> None:
        if self.seal is None:
            raise GalleryError(f"gallery {self.model_id} has no seal: unauthenticated files are never written")
        with self._lock:
            blob = faiss.serialize_index(self._index).tobytes()
            owner = dict(self._owner)
            next_id = self._next
        write_gallery(folder, model_id=self.model_id, dim=self.dim, next_id=next_id, owner=owner, index_blob=blob,
                      seal=self.seal)

    @classmethod
    def load(cls, folder: Path, model_id: str, dim: int, *, seal: GallerySeal) -> Gallery:
        """The gallery saved in ``folder``, authenticated with ``seal``; empty when there are no files.
        GalleryAuthError / GalleryBindingError / GalleryError say why files are refused."""
        gallery = cls(model_id, dim, seal=seal)
        content = read_gallery(folder, model_id, dim, seal)
        if content is None:
            return gallery
        try:
            index = faiss.deserialize_index(np.frombuffer(content.index_blob, dtype=np.uint8))
        except (ValueError, RuntimeError) as exc:
            raise GalleryError(f"gallery index in {folder} is unreadable: {exc}") from exc
        if index.d != dim:
            raise GalleryError(f"gallery index in {folder} holds {index.d}-d vectors, not {dim}-d; rebuild it")
        if index.ntotal != len(content.owner):
            raise GalleryError(f"gallery in {folder} holds {index.ntotal} vectors but its id map {len(content.owner)}")
        gallery._index = index  # type: ignore[assignment]
        gallery._owner = content.owner
        gallery._next = content.next_id
        logger.info("gallery %s loaded: %s embeddings of %s persons", model_id, len(content.owner),
                    len(set(content.owner.values())))
        return gallery
