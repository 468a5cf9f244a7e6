"""The bank-wide duplicate index: every enrolled person's template in one matrix, searched by inner product.

The rule: the database is the truth and the index is a cache of it that is never stale at a search.

- Built lazily at the first search: one query for every person's template of the current ``model_id``,
  Fernet-decrypted in bulk into an (N, d) float32 matrix (rows are L2-normalised, so the inner product is the
  cosine). At 100k persons a search is one matrix-vector product (a few ms).
- Kept current cheaply: before each search the newest :class:`~console.tables.GalleryChange` seq is read
  (one indexed ``max``); when it is past the seq the index has applied, only the persons changed since are
  reloaded (a row updated in place, a new row appended, an erased or re-modelled person's row removed by
  moving the last row into its place). So every console replica behind a load balancer answers from what
  the database holds, and an erasure on one replica vanishes from all of them at their next search.
- Seqs must become visible in order, or a reader could step past a change still in flight. Every writer of
  a template takes :func:`lock_gallery` (on PostgreSQL an exclusive transaction-level advisory lock, held
  until commit) before it appends its change, and the refresh reads under the shared form of that lock: it
  waits for an enrolment that is committing, and any enrolment that starts later gets a higher seq. SQLite
  has one writer at a time anyway.
- Thread-safe: one lock guards the matrix; searches and refreshes of one process take turns.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from console.db import Database
from console.tables import GalleryChange, Person
from vault.keys import DataKey
from vision.types import FloatArray

TEMPLATE_PURPOSE = "console-templates"
GALLERY_LOCK_KEY = 0x5B_6A_11E7  # the advisory lock id of "the gallery is being written"
EXTRAS_KEY = "dupindex"
_INDEX_LOCK = threading.Lock()


class TemplateCipher:
    """Fernet under a key derived from the data key for templates and photo embeddings alone."""

    def __init__(self, key: DataKey) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(key.derive(TEMPLATE_PURPOSE)))

    def encrypt(self, vector: FloatArray) -> bytes:
        return self._fernet.encrypt(np.ascontiguousarray(vector, dtype=np.float32).tobytes())

    def decrypt(self, token: bytes) -> FloatArray:
        """The float32 vector of ``token``; InvalidToken when it was written under another key or edited."""
        return np.frombuffer(self._fernet.decrypt(token), dtype=np.float32).copy()


def lock_gallery(session: Session) -> None:
    """Hold the gallery write lock until ``session``'s transaction ends.

    PostgreSQL: an exclusive transaction-level advisory lock. SQLite: a write that changes nothing, which
    takes the database's one write lock now instead of at the first insert, so the reads that follow (the
    duplicate check) and the inserts are one serialised unit across processes too."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": GALLERY_LOCK_KEY})
    else:
        session.execute(text("UPDATE gallery_changes SET kind = kind WHERE seq < 0"))


def _read_barrier(session: Session) -> None:
    """Wait for a template writer that is committing (see the module docstring)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": GALLERY_LOCK_KEY})


@dataclass(frozen=True, slots=True)
class Hit:
    person_id: str
    score: float


class DuplicateIndex:
    """All templates of one ``model_id``; :meth:`search` refreshes from the database first."""

    def __init__(self, db: Database, cipher: TemplateCipher, model_id: str, dim: int) -> None:
        self._db = db
        self._cipher = cipher
        self.model_id = model_id
        self.dim = dim
        self._lock = threading.RLock()
        self._matrix: FloatArray = np.zeros((0, dim), np.float32)
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._applied: int | None = None  # None: not built yet

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    @property
    def applied_seq(self) -> int | None:
        return self._applied

    # -- searching -------------------------------------------------------------------------------------
    def search(self, embedding: FloatArray, k: int = 1, *, session: Session | None = None,
               exclude: str | None = None) -> list[Hit]:
        """The ``k`` best persons for ``embedding``, best first, after catching up with the database.

        ``session``: read the changes in this transaction (an enrolment holding :func:`lock_gallery` passes
        its own, so the read cannot wait on itself); None: a short transaction of the index's own."""
        query = np.ascontiguousarray(embedding, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dim:
            raise ValueError(f"a {query.shape[0]}-d embedding cannot search a {self.dim}-d index")
        self.refresh(session)
        with self._lock:
            return self._top(query, k, exclude)

    def search_local(self, embedding: FloatArray, k: int = 1, exclude: str | None = None) -> list[Hit]:
        """As :meth:`search`, without looking at the database (what the benchmark of the matrix measures)."""
        with self._lock:
            return self._top(np.ascontiguousarray(embedding, dtype=np.float32).reshape(-1), k, exclude)

    def _top(self, query: FloatArray, k: int, exclude: str | None) -> list[Hit]:
        n = len(self._ids)
        if n == 0 or k < 1:
            return []
        scores = self._matrix[:n] @ query
        if exclude is not None and exclude in self._row:
            scores[self._row[exclude]] = -np.inf
        take = min(k, n)
        best = np.argpartition(-scores, take - 1)[:take] if take < n else np.arange(n)
        best = best[np.argsort(-scores[best], kind="stable")]
        return [Hit(self._ids[i], float(scores[i])) for i in best if np.isfinite(scores[i])]

    # -- keeping current -------------------------------------------------------------------------------
    def refresh(self, session: Session | None = None) -> None:
        """Build the index at the first call; later, reload the persons changed since the applied seq.

        Lock order, everywhere: the database's gallery lock first, then this index's lock (an enrolment holds
        the gallery lock while it searches; a search that held the index lock while waiting for the gallery
        lock would deadlock with it)."""
        if session is not None:
            self._catch_up(session)
            return
        with self._db.transaction() as own:
            self._catch_up(own)

    def _catch_up(self, session: Session) -> None:
        _read_barrier(session)
        newest = session.scalar(select(func.max(GalleryChange.seq))) or 0
        with self._lock:
            if self._applied is None:
                self._build(session, newest)
            elif newest > self._applied:
                changed = session.scalars(select(GalleryChange.person_id)
                                          .where(GalleryChange.seq > self._applied).distinct()).all()
                self._reload(session, changed)
                self._applied = newest

    def _build(self, session: Session, newest: int) -> None:
        rows = session.execute(select(Person.id, Person.template)
                               .where(Person.model_id == self.model_id, Person.template.is_not(None))).all()
        ids: list[str] = []
        vectors: list[FloatArray] = []
        for person_id, token in rows:
            vector = self._vector(token)
            if vector is not None:
                ids.append(person_id)
                vectors.append(vector)
        capacity = max(1024, len(ids) + len(ids) // 4)
        matrix = np.zeros((capacity, self.dim), np.float32)
        if vectors:
            matrix[:len(vectors)] = np.stack(vectors)
        self._matrix, self._ids = matrix, ids
        self._row = {pid: i for i, pid in enumerate(ids)}
        self._applied = newest

    def _reload(self, session: Session, person_ids: Iterable[str]) -> None:
        wanted = sorted(set(person_ids))
        found: dict[str, FloatArray] = {}
        for start in range(0, len(wanted), 500):  # bounded IN lists
            chunk = wanted[start:start + 500]
            for person_id, token in session.execute(
                    select(Person.id, Person.template).where(Person.id.in_(chunk), Person.model_id == self.model_id,
                                                             Person.template.is_not(None))).all():
                vector = self._vector(token)
                if vector is not None:
                    found[person_id] = vector
        for person_id in wanted:
            vector = found.get(person_id)
            if vector is None:
                self._remove(person_id)
            else:
                self._put(person_id, vector)

    def _vector(self, token: bytes | None) -> FloatArray | None:
        if token is None:
            return None
        try:
            vector = self._cipher.decrypt(token)
        except InvalidToken:
            return None  # written under another key: it cannot be compared, and enrolment re-writes it
        if vector.shape[0] != self.dim:
            return None
        return vector

    def _put(self, person_id: str, vector: FloatArray) -> None:
        row = self._row.get(person_id)
        if row is None:
            row = len(self._ids)
            if row >= self._matrix.shape[0]:
                grown = np.zeros((max(1024, row * 2), self.dim), np.float32)
                grown[:row] = self._matrix[:row]
                self._matrix = grown
            self._ids.append(person_id)
            self._row[person_id] = row
        self._matrix[row] = vector

    def _remove(self, person_id: str) -> None:
        row = self._row.pop(person_id, None)
        if row is None:
            return
        last = len(self._ids) - 1
        if row != last:  # the last row moves into the gap
            moved = self._ids[last]
            self._matrix[row] = self._matrix[last]
            self._ids[row] = moved
            self._row[moved] = row
        self._ids.pop()
        self._matrix[last] = 0.0


def index_for(extras: dict[str, object], db: Database, key: DataKey, model_id: str, dim: int) -> DuplicateIndex:
    """The process's index for ``model_id`` (kept in the context's extras; a new model gets a new index)."""
    with _INDEX_LOCK:
        index = extras.get(EXTRAS_KEY)
        if not isinstance(index, DuplicateIndex) or index.model_id != model_id or index.dim != dim:
            index = DuplicateIndex(db, TemplateCipher(key), model_id, dim)
            extras[EXTRAS_KEY] = index
        return index
