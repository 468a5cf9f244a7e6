"""Whole answers of the persons list, kept in this process while the list's data stands.

A list answer depends only on persons, their photos, plates, consents and scope branches, and the branches'
codes and names. Every write to those tables bumps one number, ``persons_list_version`` (triggers of revision
0006, so a write by another console process, the importer or an operator by hand counts as well). A request
reads that number first, in the transaction it lists in, and an answer is kept under (the number, the filter
and page, the caller's branch scope, whether the caller may see faces). An answer computed after a write that
the number read before it missed is kept under the older number, which no later request asks for, so no
request is answered from data older than the number it read. Answers of older numbers are dropped as soon
as a newer number is seen; at most :data:`CAPACITY` answers are kept (least recently used dropped first).

An answer is kept as the bytes of its JSON and, when it is long enough for the app's gzip middleware to
compress it (:data:`GZIP_MIN_BYTES`), gzipped once as well, so that a kept answer is never compressed again.
The total of a filter (the same for each of its pages) is kept under the same number, so that the pages
after the first cost no count. A key several requests ask for at once is computed once (:meth:`ListCache.claim`).
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.tables import PersonsListVersion

CAPACITY = 512
EXTRA = "persons_list_cache"  # its key in ConsoleContext.extras
GZIP_MIN_BYTES = 1000  # the app's GZipMiddleware minimum_size: shorter answers go out as they are
GZIP_LEVEL = 6  # and its compresslevel


def list_version(session: Session) -> int:
    """The number the triggers bump at each write to what the list shows."""
    return int(session.scalar(select(PersonsListVersion.version).where(PersonsListVersion.id == 1)) or 0)


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    gzipped: bytes | None = field(default=None, compare=False)  # None: too short to compress

    @staticmethod
    def of(body: bytes) -> Answer:
        return Answer(body, gzip.compress(body, GZIP_LEVEL, mtime=0) if len(body) >= GZIP_MIN_BYTES else None)


class ListCache:
    """Answers by key, all of one data version, and the totals of their filters; thread-safe.

    A key asked by several requests at once is computed once: the first request that misses it claims it
    (:meth:`claim`), the others wait for its answer instead of each running the same query. After a write
    every answer is dropped at once, and a crowd of clients paging the list would otherwise all compute the
    same few pages together."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._lock = threading.Lock()
        self._capacity = capacity
        self._version = -1
        self._answers: OrderedDict[Hashable, Answer] = OrderedDict()
        self._totals: dict[Hashable, tuple[int, bool]] = {}
        self._computing: dict[tuple[int, Hashable], threading.Event] = {}

    def get(self, version: int, key: Hashable) -> Answer | None:
        with self._lock:
            if version != self._version:
                return None
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
            return answer

    def claim(self, version: int, key: Hashable) -> Answer | threading.Event | None:
        """The kept answer; or an event that is set once the request computing it is done (then :meth:`get`
        again); or None: the caller computes it and must end with :meth:`put` or :meth:`release`."""
        with self._lock:
            answer = self._answers.get(key) if version == self._version else None
            if answer is not None:
                self._answers.move_to_end(key)
                return answer
            event = self._computing.get((version, key))
            if event is not None:
                return event
            self._computing[(version, key)] = threading.Event()
            return None

    def release(self, version: int, key: Hashable) -> None:
        """The claim on ``key`` ends (its answer kept or not): whoever waits for it goes on."""
        with self._lock:
            event = self._computing.pop((version, key), None)
        if event is not None:
            event.set()

    def put(self, version: int, key: Hashable, answer: Answer) -> None:
        """Keep ``answer`` (computed from data at ``version``) and end any claim on it."""
        with self._lock:
            if self._advanced_to(version):
                self._answers[key] = answer
                self._answers.move_to_end(key)
                while len(self._answers) > self._capacity:
                    self._answers.popitem(last=False)
        self.release(version, key)

    def total(self, version: int, key: Hashable) -> tuple[int, bool] | None:
        """The kept (total, exact) of a filter and scope."""
        with self._lock:
            return self._totals.get(key) if version == self._version else None

    def put_total(self, version: int, key: Hashable, total: tuple[int, bool]) -> None:
        with self._lock:
            if self._advanced_to(version) and len(self._totals) < self._capacity:
                self._totals[key] = total

    def _advanced_to(self, version: int) -> bool:
        """Drops what older versions kept; False when ``version`` is older than what is kept (computed from
        older data than answers already kept). Called with the lock held."""
        if version < self._version:
            return False
        if version > self._version:
            self._version, self._answers, self._totals = version, OrderedDict(), {}
        return True

    @staticmethod
    def of(extras: dict[str, object]) -> ListCache:
        """The cache kept in a console's ``extras`` (made at the first call)."""
        cache = extras.setdefault(EXTRA, ListCache())
        if not isinstance(cache, ListCache):
            raise TypeError(f"extras[{EXTRA!r}] holds a {type(cache).__name__}")
        return cache

    def __len__(self) -> int:
        with self._lock:
            return len(self._answers)
