"""Registered plates per person: grammar-checked enrolment, removal, and the matcher built from them."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import IntegrityError

from edge.errors import EnrolmentError
from edge.store.db import Plate, Store
from vision.plates.errors import InvalidPlateError
from vision.plates.grammar import parse
from vision.plates.matcher import MatcherConfig, PlateMatcher

logger = logging.getLogger(__name__)


class PlateRegistry:
    """Owns the plate table's in-memory view. The matcher is immutable and swapped whole on change."""

    def __init__(self, store: Store, config: MatcherConfig | None = None) -> None:
        self._store = store
        self._config = config or MatcherConfig()
        self._lock = threading.Lock()
        self._matcher = self._build()

    def _build(self) -> PlateMatcher:
        return PlateMatcher({p.plate: p.person_id for p in self._store.list_plates()}, self._config)

    @property
    def matcher(self) -> PlateMatcher:
        return self._matcher

    def reload(self) -> None:
        with self._lock:
            self._matcher = self._build()

    def register(self, *, person_id: str, plate: str) -> Plate:
        """Validate ``plate`` (GA 36 grammar) and register it to ``person_id``."""
        try:
            info = parse(plate)
        except InvalidPlateError as exc:
            raise EnrolmentError("bad_plate", f"{plate!r} is not a valid plate: {exc} ({exc.code})") from exc
        if self._store.get_person(person_id) is None:
            raise EnrolmentError("not_found", f"no person {person_id}", 404)
        with self._lock:
            owner = self._store.plate_owner(info.text)
            if owner is not None:
                raise EnrolmentError("duplicate_plate", f"plate {info.text} is already registered",
                                     409, person_id=owner.person_id)
            try:
                row = self._store.add_plate(person_id=person_id, plate=info.text, kind=info.kind.value)
            except IntegrityError as exc:  # a concurrent writer (the CLI) took it
                raise EnrolmentError("duplicate_plate", f"plate {info.text} is already registered", 409) from exc
            self._matcher = self._build()
        logger.info("plate %s (%s) registered to %s", info.text, info.kind.value, person_id)
        return row

    def remove(self, *, person_id: str, plate: str) -> bool:
        try:
            text = parse(plate).text
        except InvalidPlateError:
            return False
        with self._lock:
            removed = self._store.delete_plate(person_id=person_id, plate=text)
            if removed:
                self._matcher = self._build()
        return removed
