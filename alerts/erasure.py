"""Erasure of a person from the messages that named them: alert envelopes and the edge's outbox events.

The right to be forgotten (PIPL art. 47, GDPR art. 17) removes a person's photos, templates and plates; the
events that mention them stay, because they are the branch's service record (counts, waits, service times),
but they stop saying *who*. The rule, one place for the edge and the console alike: in every JSON object of a
body, an id field that names an erased person keeps the id (it is only the tombstone's id now, tied to nobody)
and loses what it was paired with:

- ``person_id``: ``name`` becomes :data:`ERASED_NAME`; ``tier``, ``photo_url``, the licence plate (``plate``,
  ``plate_read``) and the bank's customer number (``external_id``, in an import report) become empty;
  ``crop_url`` (the snapshot of their face, deleted with them) becomes null;
- ``staff_id``: ``staff_name`` becomes :data:`ERASED_NAME`;
- ``vip_id``: ``vip_name`` becomes :data:`ERASED_NAME`, ``vip_tier`` null.

A field the body does not have is not added, and a null stays null (no name was known), so an envelope still
validates against its model after the scrub and a terminal shows 「（已删除）」 where the name was.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

ERASED_NAME = "（已删除）"
MAX_ID = 64  # longer strings are not person ids (the console keeps ids in String(64) at most)
MAX_DEPTH = 8  # envelopes nest two levels; deeper JSON is not walked

_NAME, _EMPTY, _NULL = ERASED_NAME, "", None
# id field -> {paired field: what it becomes}
PAIRED: dict[str, dict[str, str | None]] = {
    "person_id": {"name": _NAME, "tier": _EMPTY, "photo_url": _EMPTY, "plate": _EMPTY, "plate_read": _EMPTY,
                  "crop_url": _NULL, "external_id": _EMPTY},
    "staff_id": {"staff_name": _NAME},
    "vip_id": {"vip_name": _NAME, "vip_tier": _NULL},
}


def _objects(body: Any, depth: int = 0) -> list[dict[str, Any]]:
    """Every JSON object in ``body`` (itself first), down to :data:`MAX_DEPTH`."""
    if depth > MAX_DEPTH:
        return []
    if isinstance(body, dict):
        found = [body]
        for value in body.values():
            found += _objects(value, depth + 1)
        return found
    if isinstance(body, list):
        return [o for item in body for o in _objects(item, depth + 1)]
    return []


def person_ids(body: Any) -> set[str]:
    """The person ids a body names (the values of its ``person_id``, ``staff_id`` and ``vip_id`` fields)."""
    return {value for obj in _objects(body) for key in PAIRED
            if isinstance(value := obj.get(key), str) and 0 < len(value) <= MAX_ID}


def scrub(body: Any, erased: Collection[str]) -> bool:
    """Scrub, in place, what ``body`` says about the ``erased`` persons; True when anything changed."""
    changed = False
    for obj in _objects(body):
        for key, paired in PAIRED.items():
            value = obj.get(key)
            if not isinstance(value, str) or value not in erased:
                continue
            for field, blank in paired.items():
                if obj.get(field) is not None and obj[field] != blank:
                    obj[field] = blank
                    changed = True
    return changed
