"""Whole answers of the persons list, kept in this process while the list's data stands.

A list answer depends only on persons, their photos, plates, consents and scope branches, and the branches'
codes and names. Every write to those tables bumps one number, ``persons_list_version`` (triggers of revision
0006, so a write by another console process, the importer or an operator by hand counts as well). A request
reads that number first, in the transaction it lists in, and an answer is kept under (the number, the filter
and page, the caller's branch scope, whether the caller may see faces). An answer computed after a write that
the number read before it missed is kept under the older number, which no later request asks for, so no
request is answered from data older than the number it read. Answers of older numbers are dropped as soon
as a newer number is seen; at most :data:`CAPACITY` answers are kept (least recently used dropped first).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.tables import PersonsListVersion

CAPACITY = 512
EXTRA = "persons_list_cache"  # its key in ConsoleContext.extras


def list_version(session: Session) -> int:
    """The number the triggers bump at each write to what the list shows."""
    return int(session.scalar(select(PersonsListVersion.version).where(PersonsListVersion.id == 1)) or 0)


class ListCache:
    """Answers (bytes) by key, all of one data version; thread-safe."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._lock = threading.Lock()
        self._capacity = capacity
        self._version = -1
        self._answers: OrderedDict[Hashable, bytes] = OrderedDict()

    def get(self, version: int, key: Hashable) -> bytes | None:
        with self._lock:
            if version != self._version:
                return None
            body = self._answers.get(key)
            if body is not None:
                self._answers.move_to_end(key)
            return body

    def put(self, version: int, key: Hashable, body: bytes) -> None:
        with self._lock:
            if version < self._version:
                return  # computed from older data than answers already kept
            if version > self._version:
                self._version, self._answers = version, OrderedDict()
            self._answers[key] = body
            self._answers.move_to_end(key)
            while len(self._answers) > self._capacity:
                self._answers.popitem(last=False)

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
