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
- Only for a person whose consent covers it: the console's consent records say which uses they cover
  (``visit_template``), the sync carries them to the box (``consent_purposes``), and a person without that purpose
  never has a shot held, added or kept (:func:`covers_visit_template`). With that, ``face.visit_shots.enabled`` is
  on by default.
- A console update of the person keeps their shots (:meth:`VisitShots.with_shots`, the sync's apply asks): the
  template becomes the mean of the console's new photos and the kept shots; a shot the drift guard would now
  refuse (the photos changed that much), or every shot once the consent no longer covers them, is dropped and
  audited (``visit_shot_drop``).
- A missed VIP: a lobby manager may mark a stranger's kept crop as a VIP ("this was X", :meth:`VisitShots.mark`,
  :mod:`edge.faces.stranger_crops`). The crop is embedded again and taken under the same gates and consent; the
  safe match, adapted to a face that was not decided: its score against the chosen VIP is at least the voter
  threshold less ``mark_score_slack``, and it leads every other enrolled person by ``min_margin``.
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
from sqlalchemy import delete, insert, select

from alerts.envelope import Alert, AlertType
from edge.faces.config import VisitShotSettings
from edge.faces.enrol import Enroller
from edge.faces.tracks import GallerySearch, LiveShot
from edge.faces.vip_rule import Sighting
from edge.store.db import Store
from edge.store.tables import ConsentPurposeRow, VisitShotRow
from vault.keys import decrypt
from vision.engines.base import FaceEngine
from vision.enrolment import EnrolmentPolicy, embed_photo, mean_template
from vision.gallery import Gallery
from vision.types import FaceQuality, FloatArray

logger = logging.getLogger(__name__)

Audit = Callable[[str, str, str, str], None]  # actor, action, outcome, detail
VISIT_TEMPLATE = "visit_template"  # the consent purpose: template improvement from live visits
NO_CONSENT = "the person's consent does not cover template improvement from live visits (visit_template)"


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


def consent_purposes(store: Store, person_id: str) -> frozenset[str]:
    """The uses ``person_id``'s consent covers, as the console sent them or a local enrolment recorded them."""
    with store.session() as s:
        return frozenset(s.scalars(select(ConsentPurposeRow.purpose).where(ConsentPurposeRow.person_id == person_id)))


def covers_visit_template(store: Store, person_id: str) -> bool:
    return VISIT_TEMPLATE in consent_purposes(store, person_id)


def persons_covering_visit_template(store: Store) -> set[str]:
    """Every person whose consent covers template improvement from live visits, in one query."""
    with store.session() as s:
        return set(s.scalars(select(ConsentPurposeRow.person_id).where(ConsentPurposeRow.purpose == VISIT_TEMPLATE)))


def record_consent_purposes(store: Store, person_id: str, purposes: frozenset[str] | set[str]) -> None:
    """Replace the uses ``person_id``'s consent covers (the sync writes them for the console's persons)."""
    with store.session() as s, s.begin():
        s.execute(delete(ConsentPurposeRow).where(ConsentPurposeRow.person_id == person_id))
        if purposes:
            s.execute(insert(ConsentPurposeRow), [{"person_id": person_id, "purpose": p} for p in sorted(purposes)])


def _public(row: VisitShotRow) -> VisitShot:
    return VisitShot(row.id, row.person_id, row.alert_id, row.quality, row.score, row.margin, row.confirmed_by,
                     row.created_at)


class VisitShots:
    """Thread-safe: the publishing camera thread offers shots, the acknowledging thread confirms them."""

    def __init__(self, settings: VisitShotSettings, *, store: Store, gallery: Gallery, engine: FaceEngine,
                 enroller: Enroller, policy: EnrolmentPolicy, threshold: float, audit: Audit,
                 search: GallerySearch | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._store = store
        self._gallery = gallery
        self._search: GallerySearch = search if search is not None else gallery  # as the pipelines search
        self._engine = engine
        self._enroller = enroller
        self._policy = policy
        self._threshold = threshold
        self._audit = audit
        self._clock = clock
        self._pending: OrderedDict[str, tuple[float, LiveShot]] = OrderedDict()
        self._lock = threading.Lock()
        self._holders: set[str] | None = None  # persons with kept shots (loaded at first need)

    # ------------------------------------------------------------------------------------ held in memory

    def offer(self, sighting: Sighting, alert: Alert) -> None:
        """Hold the visit's shot until the alert is acknowledged or the shot expires."""
        shot = sighting.shot
        if not self._settings.enabled or shot is None or alert.type != AlertType.VIP_ARRIVAL:
            return
        if shot.person_id != alert.person_id or not covers_visit_template(self._store, shot.person_id):
            return  # without that consent purpose, not even held
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
                return self._add(alert.id, shot, by)
        return self._refused(by, shot.person_id, f"alert {alert.id}", refusal)

    def mark(self, person_id: str, vector: FloatArray, quality: FaceQuality, *, source_id: str,
             by: str) -> Outcome:
        """A manager says a stranger's face (``vector``, embedded again from a kept crop) was ``person_id``: add it
        under the same gates as a confirmed visit, with the safe match adapted to an undecided face."""
        vector = np.asarray(vector, np.float32).reshape(-1)
        if person_id not in self._gallery.persons:
            return self._refused(by, person_id, f"crop {source_id}", "the person is not in this box's gallery")
        result = self._search.search(vector[None, :], k=max(2, min(len(self._gallery.persons), 50)))[0]
        mine = next((h.score for h in result.hits if h.person_id == person_id), None)
        others = [h.score for h in result.hits if h.person_id != person_id]
        floor = self._threshold - self._settings.mark_score_slack
        if mine is None or mine < floor:
            shown = "below the nearest persons" if mine is None else f"{mine:.4f}"
            return self._refused(by, person_id, f"crop {source_id}",
                                 f"the face is not close enough to the person ({shown} < {floor:.4f})")
        lead = mine - max([*others, 0.0])
        shot = LiveShot(person_id, vector, quality, mine, lead)
        refusal = self._gate(shot, floor=floor)
        if refusal is None:
            with self._enroller.exclusive():
                return self._add(source_id, shot, by)
        return self._refused(by, person_id, f"crop {source_id}", refusal)

    def _refused(self, by: str, person_id: str, source: str, reason: str) -> Outcome:
        self._audit(by, "visit_shot_add", "refused", f"person {person_id}, {source}: {reason}")
        logger.info("visit shot of person %s not added: %s", person_id, reason)
        return Outcome(None, reason)

    def _gate(self, shot: LiveShot, *, floor: float | None = None) -> str | None:
        if not covers_visit_template(self._store, shot.person_id):
            return NO_CONSENT
        q, p, s = shot.quality, self._policy, self._settings
        if q.size_px < p.min_face_px:
            return f"face too small for a template ({q.size_px:.0f} px < {p.min_face_px})"
        if q.sharpness < p.min_sharpness:
            return f"face too blurred for a template (sharpness {q.sharpness:.1f} < {p.min_sharpness})"
        if abs(q.yaw) > p.max_abs_yaw:
            return f"face turned too far for a template (|yaw| {abs(q.yaw):.2f} > {p.max_abs_yaw})"
        if q.detector < p.min_hog_score:
            return f"face detected too weakly for a template ({q.detector:.3f} < {p.min_hog_score})"
        least = self._threshold + s.min_score_gain if floor is None else floor
        if shot.score < least:
            return f"match not safe enough ({shot.score:.4f} < {least:.4f})"
        if shot.margin < s.min_margin:
            return f"lead over the runner-up too small ({shot.margin:.4f} < {s.min_margin})"
        return None

    def _add(self, source_id: str, shot: LiveShot, by: str) -> Outcome:
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
            self._audit(by, "visit_shot_add", "refused", f"person {shot.person_id}, from {source_id}: {reason}")
            return Outcome(None, reason)
        row = VisitShotRow(id=uuid.uuid4().hex, person_id=shot.person_id, alert_id=source_id,
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
        self._held_by().add(shot.person_id)
        detail = f"person {shot.person_id}, from {source_id}, shot {row.id}, score {shot.score:.4f}"
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

    # ------------------------------------------------------------------------------- a console update

    def with_shots(self, person_id: str, photos: tuple[bytes, ...], purposes: tuple[str, ...],
                   template: FloatArray) -> FloatArray:
        """The template a console update of ``person_id`` should take: ``template`` (the console's photos alone)
        when they have no kept shot, else the mean of the new photos and the kept shots. A shot the guard would
        now refuse (the new photos are too far from it), or every shot when the consent no longer covers them, is
        dropped, audited. For the sync's apply (:meth:`edge.sync.apply.GalleryApplier.set_refine`)."""
        if person_id not in self._held_by():
            return template
        rows = self._rows(person_id)
        if not rows:
            self._held_by().discard(person_id)
            return template
        if not self._settings.enabled or VISIT_TEMPLATE not in purposes:
            self._drop(person_id, [(r.id, NO_CONSENT) for r in rows])
            return template
        enrolled = [v for v in (embed_photo(self._engine, photo) for photo in photos) if v is not None]
        if not enrolled:
            return template  # the apply reports the person as not embedded; the shots wait for better photos
        base = mean_template(enrolled)
        kept = [(r.id, self._vector(r)) for r in rows]
        dropped: list[tuple[str, str]] = []
        while kept:
            closeness = float(mean_template(enrolled + [v for _, v in kept]) @ base)
            if closeness >= self._settings.min_template_cosine:
                break
            worst = min(kept, key=lambda item: float(item[1] @ base))
            kept.remove(worst)
            dropped.append((worst[0], f"the console's new photos are too far from it (template cosine "
                                      f"{closeness:.4f} < {self._settings.min_template_cosine})"))
        self._drop(person_id, dropped)
        return mean_template(enrolled + [v for _, v in kept]) if kept else template

    def _drop(self, person_id: str, shots: list[tuple[str, str]]) -> None:
        if not shots:
            return
        with self._store.session() as s, s.begin():
            s.execute(delete(VisitShotRow).where(VisitShotRow.id.in_([i for i, _ in shots])))
        if not self._rows(person_id):
            self._held_by().discard(person_id)
        for shot_id, reason in shots:
            self._audit("sync", "visit_shot_drop", "ok", f"person {person_id}, shot {shot_id}: {reason}")
            logger.info("visit shot %s of person %s dropped at a console update: %s", shot_id, person_id, reason)

    def _held_by(self) -> set[str]:
        if self._holders is None:
            with self._store.session() as s:
                self._holders = set(s.scalars(select(VisitShotRow.person_id).distinct()))
        return self._holders

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
