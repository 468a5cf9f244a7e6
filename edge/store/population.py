"""The face population's aggregates in the edge store: one encrypted row per face model.

They are aggregates (count, mean and scatter), never an individual embedding, yet a mean over a handful of faces
is close to each of them. So they are encrypted with the data key like the enrolment photos (the column is
declared ``info=ENCRYPTED``: the key check and key rotation cover it), and nothing is saved below
:data:`MIN_SAVED_FACES` faces. Saving one model's aggregates drops any other model's: embeddings of different models
are never compared, and a new model starts learning afresh.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete

from edge.store.db import Store
from edge.store.tables import PopulationRow
from vault.errors import KeyMaterialError
from vault.keys import decrypt
from vision.errors import PopulationFileError, PopulationModelError
from vision.population import PopulationStats

MIN_SAVED_FACES = 32


def save_population(store: Store, stats: PopulationStats) -> bool:
    """Store ``stats`` (replacing any model's); False, and nothing written, below :data:`MIN_SAVED_FACES`."""
    if stats.count < MIN_SAVED_FACES:
        return False
    blob = store.cipher.encrypt(stats.to_bytes())
    with store.session() as s, s.begin():
        s.execute(delete(PopulationRow).where(PopulationRow.model_id != stats.model_id))
        s.merge(PopulationRow(model_id=stats.model_id, count=stats.count, stats=blob, updated_at=datetime.now(UTC)))
    return True


def load_population(store: Store, model_id: str) -> PopulationStats | None:
    """The stored aggregates of ``model_id``; None when there are none, or when they cannot be read (said why by
    :class:`PopulationFileError`)."""
    with store.session() as s:
        row = s.get(PopulationRow, model_id)
        if row is None:
            return None
        blob = row.stats
    try:
        return PopulationStats.from_bytes(decrypt(store.cipher, blob), model_id=model_id)
    except KeyMaterialError as exc:
        raise PopulationFileError("the stored face population cannot be decrypted with this data key") from exc
    except PopulationModelError as exc:
        raise PopulationFileError(f"the stored face population: {exc}") from exc


def forget_population(store: Store) -> None:
    """Drop every model's aggregates (the box starts learning afresh)."""
    with store.session() as s, s.begin():
        s.execute(delete(PopulationRow))
