"""Templates that grow from confirmed visits: a VIP greeted and confirmed (「已接待」) lends the visit's best shot.

- Held: when a VIP arrival is published, the track's best shot of that person (:class:`edge.faces.tracks.LiveShot`,
  an embedding that matched them; a stranger's is never kept) is held in memory with the alert, at most
  ``pending_max`` visits and ``pending_ttl_s`` seconds; nothing is written.
- Confirmed: when a lobby manager acknowledges the alert, the shot is taken only if it passes the enrolment
  photo gates (face size, sharpness, yaw, detector score), matched by a safe margin (score over the threshold by
  ``min_score_gain``, lead over the runner-up ``min_margin``), and keeps the template near the enrolment photos
  (cosine ``min_template_cosine`` between the template with it and the template of the photos alone). One shot per
  visit; at most ``max_per_person`` per person, the oldest replaced first.
- The template is the mean of every enrolment photo's embedding and the kept live ones, so live shots never
  replace the enrolment photos. Shots are stored encrypted, go with the person on erasure (ON DELETE CASCADE), and
  each addition or undo is audited (review audit log); :meth:`VisitShots.undo` removes one and rebuilds the
  template.
- Off unless ``face.visit_shots.enabled``: the box's store keeps a consent record per person but not its
  purposes, so the switch stands for them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select

from alerts.envelope import Alert, AlertType
from edge.faces.config import VisitShotSettings
from edge.faces.enrol import Enroller
from edge.faces.tracks import LiveShot
from edge.faces.vip_rule import Sighting
from edge.store.db import Store
from edge.store.tables import VisitShotRow
from vault.keys import decrypt
from vision.engines.base import FaceEngine
from vision.enrolment import EnrolmentPolicy, embed_photo, mean_template
from vision.gallery import Gallery
from vision.types import FloatArray

logger = logging.getLogger(__name__)

Audit = Callable[[str, str, str, str], None]  # actor, action, outcome, detail


@dataclass(frozen=True, slots=True)
class VisitShot:
    """A kept live shot as shown (no vector)."""

    id: str
    person_id: str
    alert_id: str
    quality: float
    score: float
    margin: float
    confirmed_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a confirmation did: the shot added, or why none was."""

    shot: VisitShot | None
    reason: str | None


def kept_vectors(store: Store, person_id: str, model_id: str) -> list[FloatArray]:
    """The live shots kept for ``person_id`` with ``model_id``, oldest first (for a gallery rebuild)."""
    with store.session() as s:
        blobs = list(s.scalars(select(VisitShotRow.vector).where(VisitShotRow.person_id == person_id,
                                                                 VisitShotRow.model_id == model_id)
                               .order_by(VisitShotRow.created_at, VisitShotRow.id)))
    return [np.frombuffer(decrypt(store.cipher, b), "<f4").astype(np.float32) for b in blobs]


def _public(row: VisitShotRow) -> VisitShot:
    return VisitShot(row.id, row.person_id, row.alert_id, row.quality, row.score, row.margin, row.confirmed_by,
                     row.created_at)


class VisitShots:
    """Thread-safe: the publishing camera thread offers shots, the acknowledging thread confirms them."""

    def __init__(self, settings: VisitShotSettings, *, store: Store, gallery: Gallery, engine: FaceEngine,
                 enroller: Enroller, policy: EnrolmentPolicy, threshold: float, audit: Audit,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._store = store
        self._gallery = gallery
        self._engine = engine
        self._enroller = enroller
        self._policy = policy
        self._threshold = threshold
        self._audit = audit
        self._clock = clock
        self._pending: OrderedDict[str, tuple[float, LiveShot]] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------ held in memory

    def offer(self, sighting: Sighting, alert: Alert) -> None:
        """Hold the visit's shot until the alert is acknowledged or the shot expires."""
        shot = sighting.shot
        if not self._settings.enabled or shot is None or alert.type != AlertType.VIP_ARRIVAL:
            return
        if shot.person_id != alert.person_id:
            return
        with self._lock:
            self._expire_locked()
            self._pending[alert.id] = (self._clock(), shot)
            while len(self._pending) > self._settings.pending_max:
                self._pending.popitem(last=False)

    def pending(self) -> int:
        with self._lock:
            self._expire_locked()
            return len(self._pending)

    def _expire_locked(self) -> None:
        horizon = self._clock() - self._settings.pending_ttl_s
        while self._pending and next(iter(self._pending.values()))[0] < horizon:
            self._pending.popitem(last=False)

    # ------------------------------------------------------------------------------------- confirmation

    def on_ack(self, alert: Alert) -> None:
        """The hub's acknowledgement listener."""
        if alert.type == AlertType.VIP_ARRIVAL and self._settings.enabled:
            self.confirmed(alert)

    def confirmed(self, alert: Alert) -> Outcome:
        """An acknowledged alert: add its visit's shot to the person's template if every guard allows."""
        with self._lock:
            self._expire_locked()
            held = self._pending.pop(alert.id, None)
        if held is None:
            return Outcome(None, "no live shot is held for this visit (none kept, expired, or already used)")
        shot = held[1]
        by = alert.acked_by or "?"
        refusal = self._gate(shot)
        if refusal is None:
            with self._enroller.exclusive():
                return self._add(alert, shot, by)
        self._audit(by, "visit_shot_add", "refused", f"person {shot.person_id}, alert {alert.id}: {refusal}")
        logger.info("visit shot of person %s not added: %s", shot.person_id, refusal)
        return Outcome(None, refusal)

    def _gate(self, shot: LiveShot) -> str | None:
        q, p, s = shot.quality, self._policy, self._settings
        if q.size_px < p.min_face_px:
            return f"face too small for a template ({q.size_px:.0f} px < {p.min_face_px})"
        if q.sharpness < p.min_sharpness:
            return f"face too blurred for a template (sharpness {q.sharpness:.1f} < {p.min_sharpness})"
        if abs(q.yaw) > p.max_abs_yaw:
            return f"face turned too far for a template (|yaw| {abs(q.yaw):.2f} > {p.max_abs_yaw})"
        if q.detector < p.min_hog_score:
            return f"face detected too weakly for a template ({q.detector:.3f} < {p.min_hog_score})"
        if shot.score < self._threshold + s.min_score_gain:
            return f"match not safe enough ({shot.score:.4f} < {self._threshold + s.min_score_gain:.4f})"
        if shot.margin < s.min_margin:
            return f"lead over the runner-up too small ({shot.margin:.4f} < {s.min_margin})"
        return None

    def _add(self, alert: Alert, shot: LiveShot, by: str) -> Outcome:
        enrolled = self._enrolment_vectors(shot.person_id)
        if not enrolled:
            return Outcome(None, "the person has no enrolment photo that gives a face with this engine")
        kept = self._rows(shot.person_id)
        keep = kept[max(0, len(kept) - self._settings.max_per_person + 1):]  # the oldest make room
        live = [self._vector(r) for r in keep] + [shot.vector]
        template = mean_template(enrolled + live)
        closeness = float(template @ mean_template(enrolled))
        if closeness < self._settings.min_template_cosine:
            reason = (f"the template would move too far from the enrolment photos (cosine {closeness:.4f} < "
                      f"{self._settings.min_template_cosine})")
            self._audit(by, "visit_shot_add", "refused", f"person {shot.person_id}, alert {alert.id}: {reason}")
            return Outcome(None, reason)
        row = VisitShotRow(id=uuid.uuid4().hex, person_id=shot.person_id, alert_id=alert.id,
                           model_id=self._gallery.model_id,
                           vector=self._store.cipher.encrypt(np.asarray(shot.vector, "<f4").tobytes()),
                           quality=shot.quality.score, score=shot.score, margin=shot.margin, confirmed_by=by,
                           created_at=datetime.now(UTC))
        dropped = [r.id for r in kept if r not in keep]
        with self._store.session() as s, s.begin():
            if s.get(VisitShotRow, row.id) is None:
                s.add(row)
            for rid in dropped:
                old = s.get(VisitShotRow, rid)
                if old is not None:
                    s.delete(old)
        self._set_template(shot.person_id, template)
        detail = f"person {shot.person_id}, alert {alert.id}, shot {row.id}, score {shot.score:.4f}"
        self._audit(by, "visit_shot_add", "ok", detail + (f", replaced {', '.join(dropped)}" if dropped else ""))
        logger.info("visit shot %s added to person %s (%s kept)", row.id, shot.person_id, len(live))
        return Outcome(_public(row), None)

    # ------------------------------------------------------------------------------------------ listing

    def of_person(self, person_id: str) -> list[VisitShot]:
        return [_public(r) for r in self._rows(person_id)]

    def undo(self, shot_id: str, by: str) -> VisitShot | None:
        """Remove one kept shot and rebuild the person's template without it; None when there is no such shot."""
        with self._enroller.exclusive():
            with self._store.session() as s, s.begin():
                row = s.get(VisitShotRow, shot_id)
                if row is None:
                    return None
                shown = _public(row)
                s.delete(row)
            enrolled = self._enrolment_vectors(shown.person_id)
            live = [self._vector(r) for r in self._rows(shown.person_id)]
            if enrolled:
                self._set_template(shown.person_id, mean_template(enrolled + live))
        self._audit(by, "visit_shot_undo", "ok", f"person {shown.person_id}, shot {shot_id}")
        logger.info("visit shot %s of person %s undone", shot_id, shown.person_id)
        return shown

    # ---------------------------------------------------------------------------------------- internals

    def _rows(self, person_id: str) -> list[VisitShotRow]:
        with self._store.session() as s:
            return list(s.scalars(select(VisitShotRow).where(VisitShotRow.person_id == person_id,
                                                             VisitShotRow.model_id == self._gallery.model_id)
                                  .order_by(VisitShotRow.created_at, VisitShotRow.id)))

    def _vector(self, row: VisitShotRow) -> FloatArray:
        out: FloatArray = np.frombuffer(decrypt(self._store.cipher, row.vector), "<f4").astype(np.float32)
        return out

    def _enrolment_vectors(self, person_id: str) -> list[FloatArray]:
        photos = self._store.person_photos(person_id)
        return [v for v in (embed_photo(self._engine, photo) for photo in photos) if v is not None]

    def _set_template(self, person_id: str, template: FloatArray) -> None:
        if person_id not in self._gallery.persons:
            return  # erased meanwhile
        self._gallery.replace(person_id, template[None, :])
        if self._gallery.seal is not None:  # a gallery in memory only has no files
            self._gallery.save(self._enroller.gallery_dir)
