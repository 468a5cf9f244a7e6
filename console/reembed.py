"""Re-embedding the whole gallery after the face model changed: every person's template, from their stored
(encrypted) photos, by the engine the console runs now.

Embeddings of two models are never compared, so after a model change (a new ``face.engine`` in console.yaml,
hence a new ``model_id``) the duplicate check and the edges only know the persons whose template is of the new
model. :func:`reembed_person` makes one person's:

1. read their photo rows (a short transaction), decrypt each photo from the blob store and embed its largest
   face with the new engine, outside any transaction (the slow part: about 0.5 s a photo with dlib);
2. in one transaction, under the gallery lock: check that their photos are still the ones embedded (an
   enroller who added or removed one meanwhile makes the person ``changed``: they are done at the next
   pass), write each photo's new embedding and model id, the new mean template, a numbered gallery change
   (:func:`console.plates.touch_person`, so every edge of the new model gets the template through sync), and
   an audit row ``reembed``. A crash leaves each person either wholly old or wholly new.

The work list is the persons whose ``model_id`` is not the engine's: a run that was stopped goes on where it
stopped, and a second run finds nothing to do. A person none of whose photos gives a face to the new model
keeps the old template (the new model's galleries leave them out) and is reported as ``no_face``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from console.audit import record
from console.context import ConsoleContext
from console.dupindex import TemplateCipher, lock_gallery
from console.plates import touch_person
from console.storage import BlobNotFound
from console.tables import Person, Photo
from vision.engines.base import FaceEngine
from vision.enrolment import embed_photo, mean_template
from vision.types import FloatArray

logger = logging.getLogger(__name__)

STATUSES = ("done", "no_face", "changed", "gone")


@dataclass(frozen=True, slots=True)
class Reembedded:
    """What became of one person."""

    person_id: str
    status: str  # done | no_face | changed (their photos changed meanwhile) | gone (erased meanwhile)
    photos: int = 0  # photos that gave a face
    seq: int | None = None  # the gallery change that carries the new template


def pending(ctx: ConsoleContext, model_id: str) -> list[str]:
    """The persons with at least one photo whose template is not of ``model_id``, in id order."""
    with ctx.db.transaction() as session:
        query = (select(Person.id).where(or_(Person.model_id.is_(None), Person.model_id != model_id))
                 .where(select(Photo.id).where(Photo.person_id == Person.id).exists()).order_by(Person.id))
        return list(session.scalars(query))


def _photos(session: Session, person_id: str) -> list[tuple[str, str, str]]:
    rows = session.execute(select(Photo.id, Photo.blob_key, Photo.sha256).where(Photo.person_id == person_id)
                           .order_by(Photo.created_at, Photo.id)).all()
    return [(str(i), str(k), str(h)) for i, k, h in rows]


def reembed_person(ctx: ConsoleContext, engine: FaceEngine, person_id: str, actor: str) -> Reembedded:
    """Give ``person_id`` a template of ``engine``'s model (see the module docstring)."""
    with ctx.db.transaction() as session:
        photos = _photos(session, person_id)
    vectors: dict[str, FloatArray] = {}
    for photo_id, blob_key, _sha in photos:
        try:
            data = ctx.blobs.get(blob_key)
        except BlobNotFound:
            logger.warning("reembed: photo %s of person %s has no stored file", photo_id, person_id)
            continue
        vector = embed_photo(engine, data)
        if vector is not None:
            vectors[photo_id] = vector
    if not photos:
        return Reembedded(person_id, "gone")
    if not vectors:
        return Reembedded(person_id, "no_face")
    cipher = TemplateCipher(ctx.key)
    with ctx.db.transaction() as session:
        lock_gallery(session)
        person = session.get(Person, person_id)
        if person is None:
            return Reembedded(person_id, "gone")
        if _photos(session, person_id) != photos:
            return Reembedded(person_id, "changed")
        old_model = person.model_id
        for row in session.scalars(select(Photo).where(Photo.id.in_(list(vectors)))):
            row.embedding, row.model_id = cipher.encrypt(vectors[row.id]), engine.model_id
        template = mean_template([vectors[p[0]] for p in photos if p[0] in vectors])
        person.template = cipher.encrypt(np.asarray(template, dtype=np.float32))
        person.model_id = engine.model_id
        seq = touch_person(session, person)
        record(session, actor, "reembed", object_type="person", object_id=person.id,
               branch_code=person.home_branch.code,
               detail={"model_id": engine.model_id, "from": old_model, "photos": len(vectors),
                       "no_face": len(photos) - len(vectors), "seq": seq})
        return Reembedded(person_id, "done", len(vectors), seq)
