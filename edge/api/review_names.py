"""Names for the review API: the staff member, the VIP customer and the camera of a clip, and the ids a
name filter matches.

Persons come from the store (their shown, cleaned names); cameras from the config (their display name, else
their id). A name filter matches a substring, case-insensitively (``str.casefold``, so Latin letters of any
case; Chinese has no case). An id without a person (deleted since) has no name: ``None``, never the id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from edge.store.db import Person

MAX_NAME_QUERY = 128  # as long as a stored person name


def _matches(query: str, text: str) -> bool:
    return query.strip().casefold() in text.casefold()


@dataclass(frozen=True, slots=True)
class ClipNames:
    camera_name: str
    staff_name: str | None
    vip_name: str | None


class ReviewNames:
    """One snapshot of the person names (read once per request) and the camera names."""

    def __init__(self, persons: Iterable[Person], cameras: Mapping[str, str]) -> None:
        self._persons = {p.id: p.name for p in persons}
        self._cameras = dict(cameras)

    def of(self, *, camera_id: str, staff_id: str | None, vip_id: str | None) -> ClipNames:
        return ClipNames(camera_name=self._cameras.get(camera_id, camera_id),
                         staff_name=None if staff_id is None else self._persons.get(staff_id),
                         vip_name=None if vip_id is None else self._persons.get(vip_id))

    def person_ids(self, query: str | None) -> set[str] | None:
        """The ids of the persons whose name contains ``query``; None without a query."""
        if query is None or not query.strip():
            return None
        return {pid for pid, name in self._persons.items() if _matches(query, name)}

    def camera_ids(self, query: str | None) -> set[str] | None:
        """The ids of the cameras whose display name or id contains ``query``; None without a query."""
        if query is None or not query.strip():
            return None
        return {cid for cid, name in self._cameras.items() if _matches(query, name) or _matches(query, cid)}


def names_source(persons: Callable[[], list[Person]], cameras: Mapping[str, str]) -> Callable[[], ReviewNames]:
    """A fresh :class:`ReviewNames` on each call: enrolments made while the service runs are named at once."""
    return lambda: ReviewNames(persons(), cameras)
