"""A gallery change set as the console sends it (``GET /api/sync/gallery``), parsed and checked.

The wire shape is the protocol's (issue 11): persons in full, each with all photos (the first is the card photo),
a template when the console's model is the edge's, plates; erased ids; a version; a snapshot flag (the pages of a
snapshot are staged, :mod:`edge.sync.stage`). A photo whose bytes do not match its sha256 is dropped (and said so):
a corrupted transfer must not become someone's face.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vision.types import FloatArray

logger = logging.getLogger(__name__)


class ChangeSetError(ValueError):
    """The console's answer does not have the protocol's shape."""


@dataclass(frozen=True, slots=True)
class PhotoChange:
    """A checked photo: its JPEG ``data``, or (a staged snapshot's photo, :mod:`edge.sync.stage`) ``sealed``, the
    JPEG already encrypted with the store's data key, with ``data`` empty: it goes into the store as it is."""

    sha256: str
    data: bytes
    sealed: bytes | None = None


@dataclass(frozen=True, slots=True)
class PersonChange:
    id: str
    name: str
    role: str
    tier: str
    version: int
    photos: tuple[PhotoChange, ...]
    template_model: str | None
    template: FloatArray | None
    plates: tuple[tuple[str, str], ...]  # (plate, kind)
    purposes: tuple[str, ...] = ()  # the uses their consent covers (console.consent.PURPOSES codes)


@dataclass(slots=True)
class ChangeSet:
    branch: str
    version: int
    snapshot: bool
    persons: dict[str, PersonChange] = field(default_factory=dict)
    erased: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.persons and not self.erased


def _template(raw: Any) -> tuple[str | None, FloatArray | None]:
    if raw is None:
        return None, None
    try:
        vector = np.frombuffer(base64.b64decode(raw["vector"], validate=True), dtype="<f4").astype(np.float32)
        model = str(raw["model_id"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ChangeSetError(f"bad template: {exc}") from exc
    norm = float(np.linalg.norm(vector))
    if vector.size == 0 or not np.isfinite(norm) or norm == 0:
        raise ChangeSetError("bad template: empty or zero vector")
    return model, vector / norm


def _photos(person_id: str, raw: Any, verify: bool) -> tuple[PhotoChange, ...]:
    out: list[PhotoChange] = []
    for item in raw or []:
        try:
            data = base64.b64decode(item["data"], validate=verify)
            sha = str(item["sha256"]).lower()
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ChangeSetError(f"person {person_id}: bad photo: {exc}") from exc
        if verify and hashlib.sha256(data).hexdigest() != sha:
            logger.error("sync: a photo of person %s does not match its sha256 %s; left out", person_id, sha[:12])
            continue
        out.append(PhotoChange(sha, data))
    return tuple(out)


def parse_person(raw: Any, *, verify_photos: bool = True) -> PersonChange:
    """One person entry; ``verify_photos=False`` only for an entry whose photos were verified already (a staged
    entry, authenticated by its encryption since)."""
    try:
        person_id = str(raw["id"])
        model, template = _template(raw.get("template"))
        plates = tuple((str(p["plate"]), str(p.get("kind") or "")) for p in raw.get("plates") or [])
        return PersonChange(id=person_id, name=str(raw.get("name") or ""), role=str(raw.get("role") or "vip"),
                            tier=str(raw.get("tier") or ""), version=int(raw.get("version") or 0),
                            photos=_photos(person_id, raw.get("photos"), verify_photos), template_model=model,
                            template=template, plates=plates,
                            purposes=tuple(str(c) for c in raw.get("consent_purposes") or []))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ChangeSetError(f"bad person entry: {exc}") from exc


def parse_answer(body: dict[str, Any]) -> tuple[ChangeSet, bool]:
    """(the change set of one answer, whether more pages follow)."""
    try:
        changes = ChangeSet(branch=str(body.get("branch") or ""), version=int(body["version"]),
                            snapshot=bool(body.get("snapshot")))
        for raw in body.get("persons") or []:
            person = parse_person(raw)
            changes.persons[person.id] = person
        changes.erased = [str(i) for i in body.get("erased") or [] if str(i) not in changes.persons]
        return changes, bool(body.get("more"))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ChangeSetError):
            raise
        raise ChangeSetError(f"the console's gallery answer is not understood: {exc}") from exc
