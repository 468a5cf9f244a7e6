"""Recent unknown faces, kept briefly so that a lobby manager can say "this was X" (这是某某) of a missed VIP.

- Opt-in: ``face.stranger_crops.keep_minutes`` (0, the default, keeps none). When an entrance or lobby track ends
  without being decided as an enrolled person, its best-quality face crop (the aligned chip the engine embeds) is
  kept, if it is large enough for a template at all, together with its quality figures.
- Only the image: a crop is a PNG encrypted with the data key (``info=ENCRYPTED``); no embedding of an unknown
  face is ever written. The crop is embedded again, in memory, only when a manager marks it.
- Short: crops older than ``keep_minutes`` are purged every minute and at start (a box switched off purges all),
  at most ``max_crops`` are kept (the oldest go first), and a crop that was marked is deleted at once.
- Marking (:func:`mark_crop`) adds the shot to the chosen VIP's template the way a confirmed visit does
  (:meth:`edge.faces.visit_shots.VisitShots.mark`: consent, gates, safe match adapted, drift guard, audited with
  the manager's name, undoable).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
from sqlalchemy import LargeBinary, String, Text, delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from edge.faces.config import StrangerCropSettings
from edge.faces.tracks import TrackFace
from edge.faces.visit_shots import Outcome, VisitShots
from edge.store.db import Store
from edge.store.tables import ENCRYPTED, Base, UTCDateTime
from vault.keys import decrypt
from vision.engines.base import FaceEngine
from vision.enrolment import EnrolmentPolicy
from vision.types import FaceQuality, Image

logger = logging.getLogger(__name__)

PURGE_INTERVAL_S = 60.0


class StrangerCropRow(Base):
    """An unknown track's best face crop: the image (PNG, encrypted) and its quality figures, never a vector."""

    __tablename__ = "stranger_crops"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    image: Mapped[bytes] = mapped_column(LargeBinary, info=ENCRYPTED)
    quality: Mapped[str] = mapped_column(Text)  # FaceQuality's figures (JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


@dataclass(frozen=True, slots=True)
class StrangerCrop:
    """A kept crop as listed (the image is fetched on its own)."""

    id: str
    camera_id: str
    quality: float
    created_at: datetime


class StrangerCrops:
    """Thread-safe (each call its own transaction): camera threads keep crops, the API lists and marks them,
    one purge thread drops the old ones."""

    def __init__(self, settings: StrangerCropSettings, *, store: Store, policy: EnrolmentPolicy,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._settings = settings
        self._store = store
        self._policy = policy
        self._now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        Base.metadata.create_all(store.engine, tables=[StrangerCropRow.__table__])  # type: ignore[list-item]
        self.purge()  # at start: what an earlier run (or a longer setting) left

    @property
    def enabled(self) -> bool:
        return self._settings.keep_minutes > 0

    # ------------------------------------------------------------------------------------------ keeping

    def keep(self, camera_id: str, state: TrackFace) -> str | None:
        """Keep an ended unknown track's best crop; its id, or None when off or the face is too small to use."""
        chip, quality = state.best_crop, state.best_face
        if not self.enabled or chip is None or quality is None or quality.size_px < self._policy.min_face_px:
            return None
        ok, png = cv2.imencode(".png", chip)
        if not ok:
            return None
        row = StrangerCropRow(id=uuid.uuid4().hex, camera_id=camera_id[:64],
                              image=self._store.cipher.encrypt(png.tobytes()), quality=json.dumps(asdict(quality)),
                              created_at=self._now())
        try:
            with self._store.session() as s, s.begin():
                s.add(row)
                s.flush()
                extra = int(s.scalar(select(func.count()).select_from(StrangerCropRow)) or 0) - self._settings.max_crops
                if extra > 0:
                    oldest = select(StrangerCropRow.id).order_by(StrangerCropRow.created_at).limit(extra)
                    s.execute(delete(StrangerCropRow).where(StrangerCropRow.id.in_(oldest)))
        except SQLAlchemyError as exc:  # a busy store must not stop the camera
            logger.warning("stranger crop of camera %s not kept: %s", camera_id, exc)
            return None
        return row.id

    # ------------------------------------------------------------------------------------------ reading

    def recent(self) -> list[StrangerCrop]:
        """The crops still kept, newest first."""
        self.purge()
        with self._store.session() as s:
            rows = s.execute(select(StrangerCropRow.id, StrangerCropRow.camera_id, StrangerCropRow.quality,
                                    StrangerCropRow.created_at).order_by(StrangerCropRow.created_at.desc()))
            return [StrangerCrop(i, c, float(json.loads(q)["score"]), t) for i, c, q, t in rows]

    def image(self, crop_id: str) -> bytes | None:
        """The crop as PNG bytes; None when there is no such crop (or it expired)."""
        found = self._row(crop_id)
        return None if found is None else decrypt(self._store.cipher, found.image)

    def chip(self, crop_id: str) -> tuple[Image, FaceQuality] | None:
        found = self._row(crop_id)
        if found is None:
            return None
        data = decrypt(self._store.cipher, found.image)
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            return None
        image: Image = decoded.astype(np.uint8, copy=False)
        return image, FaceQuality(**json.loads(found.quality))

    def _row(self, crop_id: str) -> StrangerCropRow | None:
        horizon = self._expired_before()
        if horizon is None:
            return None
        with self._store.session() as s:
            row = s.get(StrangerCropRow, crop_id)
        return None if row is None or row.created_at < horizon else row

    # ------------------------------------------------------------------------------------------ removing

    def remove(self, crop_id: str) -> None:
        with self._store.session() as s, s.begin():
            s.execute(delete(StrangerCropRow).where(StrangerCropRow.id == crop_id))

    def _expired_before(self) -> datetime | None:
        """Crops created before this are expired; None: every crop is (the store is off)."""
        if not self.enabled:
            return None
        return self._now() - timedelta(minutes=self._settings.keep_minutes)

    def purge(self) -> int:
        """Delete the expired crops (all of them when off); how many went."""
        horizon = self._expired_before()
        query = delete(StrangerCropRow)
        if horizon is not None:
            query = query.where(StrangerCropRow.created_at < horizon)
        with self._store.session() as s, s.begin():
            gone = int(getattr(s.execute(query), "rowcount", 0) or 0)
        if gone:
            logger.info("%s stranger crop(s) purged", gone)
        return gone

    def start(self) -> None:
        """Purge every minute until :meth:`stop` (only while crops are kept at all)."""
        if not self.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stranger-crops-purge", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(PURGE_INTERVAL_S):
            try:
                self.purge()
            except SQLAlchemyError:
                logger.exception("stranger crops: purge failed; retried in a minute")


def mark_crop(crops: StrangerCrops, shots: VisitShots, engine: FaceEngine, *, crop_id: str, person_id: str,
              by: str) -> Outcome | None:
    """"This was X": embed the kept crop again (in memory) and offer it to ``person_id``'s template; None when
    there is no such crop. A crop whose shot was added is deleted; a refused one stays until it expires."""
    found = crops.chip(crop_id)
    if found is None:
        return None
    chip, quality = found
    vector = engine.embed_chips([chip])[0]
    outcome = shots.mark(person_id, vector, quality, source_id=crop_id, by=by)
    if outcome.shot is not None:
        crops.remove(crop_id)
    return outcome
