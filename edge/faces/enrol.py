"""Local enrolment: validate one photo, embed its single face, store the person and the gallery.

A person may get up to :data:`MAX_PHOTOS` photos (:meth:`Enroller.add_photo`); their gallery entry is
then one mean template, the L2-normalised mean of every photo's embedding (on LFW, three photos cut
FNIR at FPIR 1e-2 from 0.14 to 0.02, and the mean beat keeping every vector).

Nothing is written unless every check passes; the database row, the gallery file and the
in-memory index change together or not at all.

A local enrolment records which uses its consent covers (:data:`CONSENT_PURPOSES`, the console's codes):
``enrolment`` always, and ``visit_template`` when the consent also covers template improvement from confirmed
live visits (:mod:`edge.faces.visit_shots`), so a box without a console can take visit shots too.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alerts.text import display_text
from edge.errors import EnrolmentError
from edge.faces.config import FaceConfig
from edge.store.db import Person, Store
from edge.store.tables import ConsentPurposeRow
from vision.engines.base import FaceEngine
from vision.enrolment import (
    EnrolmentPolicy,
    FaceCheck,
    check_face,
    embed_photo,
    find_duplicate,
    mean_template,
    own_similarity,
)
from vision.errors import BadImageError, FaceRejectedError
from vision.gallery import Gallery
from vision.imageio import decode_image
from vision.single_face import SingleFaceFinder
from vision.types import FloatArray

logger = logging.getLogger(__name__)

ROLES = ("vip", "staff")
MAX_PHOTOS = 5  # enrolment photos per person, the first included
ENROLMENT = "enrolment"
CONSENT_PURPOSES: dict[str, tuple[str, str]] = {  # code -> (Chinese, English), as the console's
    ENROLMENT: ("以登记照片识别迎宾", "recognition from the enrolment photos"),
    "visit_template": ("以确认到访的现场照片改进识别模板", "template improvement from confirmed live visits"),
}


def check_consent_covers(codes: Iterable[str]) -> tuple[str, ...]:
    """The purpose codes a consent covers, ``enrolment`` included, in :data:`CONSENT_PURPOSES` order; 422
    ``bad_consent_covers`` naming an unknown code."""
    wanted = {c.strip() for c in codes if c and c.strip()}
    unknown = sorted(wanted - CONSENT_PURPOSES.keys())
    if unknown:
        known = ", ".join(CONSENT_PURPOSES)
        raise EnrolmentError("bad_consent_covers", f"未知的同意用途代码 {', '.join(unknown)}（可选：{known}）/ "
                                                   f"consent_covers: unknown consent purpose code "
                                                   f"{', '.join(unknown)} (known: {known})")
    return tuple(c for c in CONSENT_PURPOSES if c in wanted or c == ENROLMENT)


def policy_from_config(face: FaceConfig, *, max_bytes: int = 10 * 1024 * 1024) -> EnrolmentPolicy:
    """The enrolment limits of ``face`` (its engine's minimum face, the enrol_* fields, the voter threshold)."""
    return EnrolmentPolicy(min_face_px=face.engine.min_face_px, min_sharpness=face.enrol_min_sharpness,
                           duplicate_threshold=face.voter.threshold, max_bytes=max_bytes,
                           max_abs_yaw=face.enrol_max_yaw, min_hog_score=face.enrol_min_hog_score,
                           min_blazeface_score=face.enrol_min_blazeface_score,
                           min_eye_aspect=face.enrol_min_eye_aspect)


class Enroller:
    def __init__(self, *, engine: FaceEngine, gallery: Gallery, gallery_dir: Path, store: Store,
                 policy: EnrolmentPolicy, finder: SingleFaceFinder | None = None) -> None:
        self._engine = engine
        self._finder = finder  # None: each engine owner's default finder (see check_face)
        self._gallery = gallery
        self._gallery_dir = gallery_dir
        self._store = store
        self.policy = policy
        self._lock = threading.Lock()

    @property
    def gallery_dir(self) -> Path:
        """Where the gallery files are saved after each enrolment."""
        return self._gallery_dir

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold off every enrolment while the caller replaces the gallery (a console sync); ``move_gallery``
        then says where the files went."""
        with self._lock:
            yield

    def move_gallery(self, gallery_dir: Path) -> None:
        """From now on save the gallery to ``gallery_dir`` (call inside :meth:`exclusive`)."""
        self._gallery_dir = gallery_dir

    def enrol(self, *, name: str, tier: str, photo: bytes, consent: str, role: str = "vip",
              consent_covers: Iterable[str] = ()) -> Person:
        """Enrol a person from one photo; ``consent_covers``: the uses the consent covers besides the enrolment
        (``visit_template``), recorded with the person."""
        # what terminals show is what is stored: no bidi overrides, zero-width or control characters
        name, tier = display_text(name), display_text(tier)
        consent = display_text(consent, compatibility=False)
        if not name or len(name) > 128:
            raise EnrolmentError("bad_name", "name must have 1 to 128 visible characters")
        if not tier or len(tier) > 32:
            raise EnrolmentError("bad_tier", "tier must have 1 to 32 visible characters")
        if role not in ROLES:
            raise EnrolmentError("bad_role", f"role must be one of {', '.join(ROLES)}")
        if not consent:
            raise EnrolmentError("no_consent", "a consent record is required to enrol a face")
        purposes = check_consent_covers(consent_covers)
        face = self._check_photo(photo)
        with self._lock:  # check-then-add must not interleave with another enrolment
            return self._store_person(name=name, tier=tier, role=role, consent=consent, photo=photo, face=face,
                                      purposes=purposes)

    def add_photo(self, *, person_id: str, photo: bytes) -> Person:
        """Add an enrolment photo of an enrolled person; their gallery entry becomes the mean template."""
        if self._store.get_person(person_id) is None:
            raise EnrolmentError("not_found", f"no person {person_id}", 404)
        face = self._check_photo(photo)
        with self._lock:  # the checks, the template and the commit must not interleave with another edit
            return self._store_photo(person_id=person_id, photo=photo, face=face)

    def _check_photo(self, photo: bytes) -> FaceCheck:
        try:
            image = decode_image(photo, max_bytes=self.policy.max_bytes, max_pixels=self.policy.max_pixels,
                                 fit_pixels=self.policy.work_pixels)
        except BadImageError as exc:
            status = 413 if exc.code in ("too_large", "decompression_bomb") else 415
            raise EnrolmentError(exc.code, str(exc), status) from exc
        try:
            return check_face(self._engine, image, self.policy, self._finder)
        except FaceRejectedError as exc:  # a refused photo: 422 with the check's code and message
            raise EnrolmentError(exc.code, str(exc)) from exc

    def _store_person(self, *, name: str, tier: str, role: str, consent: str, photo: bytes,
                      face: FaceCheck, purposes: tuple[str, ...] = (ENROLMENT,)) -> Person:
        best = find_duplicate(self._gallery, face.embedding, self.policy.duplicate_threshold)
        if best is not None:
            other = self._store.get_person(best.person_id)
            who = f"{other.name} ({other.id})" if other is not None else best.person_id
            raise EnrolmentError("duplicate", f"this face is already enrolled as {who} (similarity {best.score:.3f})",
                                 409, person_id=best.person_id, score=best.score)
        person: Person | None = None
        try:
            with self._store.session() as session, session.begin():
                person = self._store.add_person(session, name=name, tier=tier, role=role, consent=consent,
                                                photo=photo, photo_sha256=hashlib.sha256(photo).hexdigest(),
                                                model_id=self._engine.model_id)
                session.add_all([ConsentPurposeRow(person_id=person.id, purpose=p) for p in purposes])
                session.flush()
                self._gallery.add(person.id, face.embedding[None, :])
                self._gallery.save(self._gallery_dir)
        except Exception:
            if person is not None and self._gallery.remove(person.id):
                self._gallery.save(self._gallery_dir)
            raise
        logger.info("enrolled %s (%s, %s): face %.0f px, sharpness %.1f", person.id, role, tier,
                    face.face_px, face.sharpness)
        return person

    def _store_photo(self, *, person_id: str, photo: bytes, face: FaceCheck) -> Person:
        sha256 = hashlib.sha256(photo).hexdigest()
        hashes = self._store.person_photo_hashes(person_id)
        if len(hashes) >= MAX_PHOTOS:
            raise EnrolmentError("too_many_photos", f"{person_id} already has {len(hashes)} photos; "
                                                    f"at most {MAX_PHOTOS} are kept")
        if sha256 in hashes:
            raise EnrolmentError("duplicate_photo", f"this photo is already enrolled for {person_id}", 409)
        self._check_same_person(person_id, face)
        photos = self._store.person_photos(person_id)
        vectors = [v for v in (embed_photo(self._engine, p, self._finder) for p in photos) if v is not None]
        if len(vectors) < len(hashes):
            logger.warning("person %s: %s of %s stored photos give no face with %s; left out of the template",
                           person_id, len(hashes) - len(vectors), len(hashes), self._engine.model_id)
        template = mean_template([*vectors, face.embedding])
        old: FloatArray | None = None
        try:
            with self._store.session() as session, session.begin():
                self._store.add_person_photo(session, person_id=person_id, photo=photo, photo_sha256=sha256)
                old = self._gallery.replace(person_id, template[None, :])
                self._gallery.save(self._gallery_dir)
        except Exception:
            if old is not None:
                self._restore(person_id, old)
            raise
        person = self._store.get_person(person_id)
        if person is None:  # not reachable: persons are not deleted on the edge
            raise EnrolmentError("not_found", f"no person {person_id}", 404)
        logger.info("person %s: photo %s added, template is the mean of %s photos", person_id, len(hashes) + 1,
                    len(vectors) + 1)
        return person

    def _check_same_person(self, person_id: str, face: FaceCheck) -> None:
        """The new face must be this person's and nobody else's.

        "Same person" is judged with ``policy.duplicate_threshold`` (= ``face.voter.threshold``), not a new
        number: it is the one cosine calibrated on our own population for "this face is that person"
        (East-Asian set, FPIR 1e-3 per track) and no 1:1 (FAR) threshold has been measured to replace it.
        It errs strict on purpose: a wrong photo drags the template towards a stranger, who would then be
        greeted by the VIP's name, while a refused genuine photo only costs the enroller another try (e.g.
        obama2/obama3 score 0.958, just under 0.9585; both score >= 0.966 against an obama.jpg template).
        It also mirrors enrol's duplicate check: a face refused as "already P" is one that may be added to P.
        """
        own = own_similarity(self._gallery, person_id, face.embedding)
        best = find_duplicate(self._gallery, face.embedding, self.policy.duplicate_threshold)
        if best is not None and best.person_id != person_id and best.score > own:
            other = self._store.get_person(best.person_id)
            who = f"{other.name} ({other.id})" if other is not None else best.person_id
            raise EnrolmentError("duplicate", f"this face is enrolled as {who} (similarity {best.score:.3f}, "
                                              f"{own:.3f} to {person_id})", 409,
                                 person_id=best.person_id, score=best.score)
        if own < self.policy.duplicate_threshold:
            raise EnrolmentError("not_same_person", f"this face does not match {person_id} (similarity {own:.3f}, "
                                                    f"at least {self.policy.duplicate_threshold:.4f} is needed)",
                                 409, person_id=person_id, score=own)

    def _restore(self, person_id: str, old: FloatArray) -> None:
        """Put the person's previous gallery entry back after a failed add and try to save it."""
        self._gallery.replace(person_id, old)
        try:
            self._gallery.save(self._gallery_dir)
        except OSError:
            logger.exception("person %s: restored gallery entry could not be saved to %s", person_id,
                             self._gallery_dir)
