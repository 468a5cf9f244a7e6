"""Rebuild the gallery from the encrypted enrolment photos, e.g. after the face model changed.

Embeddings of different models are never compared, so when the engine's ``model_id`` differs from
the one a person was enrolled with, the edge box re-embeds every enrolment photo with the current
engine and writes the new gallery atomically beside the database. Each person gets one entry, the mean
template of their photos (:func:`vision.enrolment.mean_template`) and of the live shots that confirmed visits added
with the same model (:mod:`edge.faces.visit_shots`; another model's shots cannot be compared and are left out).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edge.faces.visit_shots import kept_vectors
from edge.store.db import Store
from vision.engines.base import FaceEngine
from vision.enrolment import embed_photo, mean_template
from vision.gallery import Gallery
from vision.gallery_files import GallerySeal

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RebuildReport:
    model_id: str
    embedded: int
    failed: tuple[str, ...]  # persons none of whose stored photos yields a face with this engine


def needs_rebuild(store: Store, gallery: Gallery) -> bool:
    """True when some enrolled person is missing from the gallery or was enrolled with another model."""
    persons = store.list_persons()
    return any(p.model_id != gallery.model_id for p in persons) or {p.id for p in persons} != gallery.persons


def rebuild_gallery(*, store: Store, engine: FaceEngine, gallery_dir: Path,
                    seal: GallerySeal) -> tuple[Gallery, RebuildReport]:
    gallery = Gallery(engine.model_id, engine.dim, seal=seal)
    failed: list[str] = []
    embedded: list[str] = []
    for person in store.list_persons():
        photos = store.person_photos(person.id)
        vectors = [v for v in (embed_photo(engine, photo) for photo in photos) if v is not None]
        if not vectors:
            failed.append(person.id)
            logger.error("gallery rebuild: no face for person %s (%s) with %s; re-enrol them",
                         person.id, person.name, engine.model_id)
            continue
        if len(vectors) < len(photos):
            logger.warning("gallery rebuild: %s of %s photos of person %s (%s) give no face with %s; "
                           "the template uses the other %s", len(photos) - len(vectors), len(photos), person.id,
                           person.name, engine.model_id, len(vectors))
        live = kept_vectors(store, person.id, engine.model_id)
        gallery.add(person.id, mean_template(vectors + live)[None, :])
        embedded.append(person.id)
    gallery.save(gallery_dir)
    store.set_model_id(embedded, engine.model_id)
    logger.warning("gallery rebuilt for %s: %s persons embedded, %s failed", engine.model_id, len(embedded),
                   len(failed))
    return gallery, RebuildReport(engine.model_id, len(embedded), tuple(failed))
