"""Local enrolment: validate one photo, embed its single face, store the person and the gallery.

A person may get up to :data:`MAX_PHOTOS` photos (:meth:`Enroller.add_photo`); their gallery entry is
then one mean template, the L2-normalised mean of every photo's embedding (on LFW, three photos cut
FNIR at FPIR 1e-2 from 0.14 to 0.02, and the mean beat keeping every vector).

Nothing is written unless every check passes; the database row, the gallery file and the
in-memory index change together or not at all.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from alerts.text import display_text
from edge.errors import EnrolmentError
from edge.faces.config import FaceConfig
from edge.store.db import Person, Store
from vision.engines.base import FaceEngine
from vision.engines.owner import on_owner
from vision.errors import BadImageError
from vision.gallery import Gallery
from vision.imageio import decode_image
from vision.quality import (
    ENROL_MAX_ABS_YAW,
    ENROL_MIN_BLAZEFACE_SCORE,
    ENROL_MIN_HOG_SCORE,
    EyeMeter,
    sharpness,
    yaw_ratio,
)
from vision.single_face import DEFAULT_STRATEGY, SingleFaceFinder, SingleFaceStrategy, pad_photo
from vision.types import Detections, FloatArray, Image

logger = logging.getLogger(__name__)

PAD_FRACTION = 0.25  # tight ID-style crops need context around the face (vision.single_face pads the same)
ROLES = ("vip", "staff")
MAX_PHOTOS = 5  # enrolment photos per person, the first included
# Photos are checked and embedded at no more than 8 MP (a 40 MP upload is decoded at a reduced JPEG scale):
# the 150 px face chip needs far less, and full-size HOG on a padded 40 MP photo held about 0.9 GB per engine.
# A face that an enrolment photo shows at 80 px only after this reduction is a distant one anyway.
WORK_PIXELS = 8_000_000


@dataclass(frozen=True, slots=True)
class EnrolmentPolicy:
    min_face_px: int
    min_sharpness: float
    duplicate_threshold: float = 1.01  # a face this similar to an enrolled person is that person (enrol refuses
    # it as a duplicate; add_photo requires it of the person's template); 1.01: never
    max_abs_yaw: float = ENROL_MAX_ABS_YAW  # |yaw ratio| above this is a profile (vision.quality.yaw_ratio)
    min_hog_score: float = ENROL_MIN_HOG_SCORE  # a HOG-found face scoring below this is refused
    min_blazeface_score: float = ENROL_MIN_BLAZEFACE_SCORE  # the same for a BlazeFace-found face
    min_eye_aspect: float | None = None  # eyes closed below this eye aspect ratio; None: not checked
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    work_pixels: int = WORK_PIXELS  # a larger photo is checked and embedded reduced to this many pixels


def policy_from_config(face: FaceConfig, *, max_bytes: int = 10 * 1024 * 1024) -> EnrolmentPolicy:
    """The enrolment limits of ``face`` (its engine's minimum face, the enrol_* fields, the voter threshold)."""
    return EnrolmentPolicy(min_face_px=face.engine.min_face_px, min_sharpness=face.enrol_min_sharpness,
                           duplicate_threshold=face.voter.threshold, max_bytes=max_bytes,
                           max_abs_yaw=face.enrol_max_yaw, min_hog_score=face.enrol_min_hog_score,
                           min_blazeface_score=face.enrol_min_blazeface_score,
                           min_eye_aspect=face.enrol_min_eye_aspect)


@dataclass(frozen=True, slots=True)
class FaceCheck:
    embedding: FloatArray
    face_px: float
    sharpness: float
    yaw: float = 0.0
    detector_score: float = 0.0
    eye_aspect: float | None = None


def pad_for_detection(image: Image) -> tuple[Image, int]:
    """The photo with ``PAD_FRACTION`` of its longer side replicated around it, and that border in pixels."""
    return pad_photo(image, PAD_FRACTION)


_FINDERS: dict[tuple[int, str], SingleFaceFinder] = {}
_FINDERS_LOCK = threading.Lock()


def default_finder(engine: FaceEngine, strategy: SingleFaceStrategy = DEFAULT_STRATEGY) -> SingleFaceFinder:
    """One finder per engine and strategy, built at first use (BlazeFace loads once per process)."""
    key = (id(engine), strategy)
    with _FINDERS_LOCK:
        finder = _FINDERS.get(key)
        if finder is None or finder.engine is not engine:  # an id reused by a newer engine
            finder = _FINDERS[key] = SingleFaceFinder(engine, strategy)
    return finder


def embed_largest_face(engine: FaceEngine, image: Image, finder: SingleFaceFinder | None = None) -> FloatArray | None:
    """Embedding of the largest face of a photo known to hold one person (padded as for enrolment).

    None when no face is found. Unlike :func:`check_face` it applies no size, count or blur limit:
    evaluation uses it to measure recognition itself on photos labelled with one identity. ``finder``
    (default: :data:`vision.single_face.DEFAULT_STRATEGY`) decides how the face is found.
    """
    if finder is not None:
        return finder.embed_largest(image)
    return on_owner(engine, lambda own: default_finder(own).embed_largest(image))


def embed_photo(engine: FaceEngine, photo: bytes, finder: SingleFaceFinder | None = None) -> FloatArray | None:
    """Embedding of a stored enrolment photo's largest face; None when it gives none (or no longer decodes)."""
    try:
        image = decode_image(photo, fit_pixels=WORK_PIXELS)
    except BadImageError:
        return None
    return embed_largest_face(engine, image, finder)


def mean_template(vectors: list[FloatArray]) -> FloatArray:
    """The L2-normalised mean of one person's embeddings: the one gallery entry kept for them."""
    mean = np.mean(np.stack(vectors).astype(np.float32), axis=0)
    template: FloatArray = (mean / np.linalg.norm(mean)).astype(np.float32)
    return template


def check_face(engine: FaceEngine, image: Image, policy: EnrolmentPolicy,
               finder: SingleFaceFinder | None = None) -> FaceCheck:
    """The photo's single usable face, or :class:`EnrolmentError` naming why there is none.

    Every step runs on one owner of the engine (:func:`vision.engines.owner.on_owner`): detection, landmark
    fits, the eye meter and the embedding all use native models that must not be shared between threads.
    """
    if finder is not None:
        return _check_face(finder.engine, image, policy, finder)
    return on_owner(engine, lambda own: _check_face(own, image, policy, default_finder(own)))


def _check_face(engine: FaceEngine, image: Image, policy: EnrolmentPolicy, finder: SingleFaceFinder) -> FaceCheck:
    found = finder.find(image)
    padded, dets = found.image, found.dets
    if len(dets) == 0:
        small = _faces_below_minimum(engine, padded)
        if small is not None:
            raise EnrolmentError("face_too_small",
                                 f"the face is about {small:.0f} px; at least {policy.min_face_px} px is needed"
                                 f"{_measured_at(policy)}")
        raise EnrolmentError("no_face", "no face was found in the photo")
    if len(dets) > 1:
        raise EnrolmentError("multiple_faces", f"the photo holds {len(dets)} faces; exactly one is needed")
    side = float(min(dets.widths[0], dets.heights[0]))
    if side < policy.min_face_px:
        raise EnrolmentError("face_too_small",
                             f"the face is {side:.0f} px; at least {policy.min_face_px} px is needed"
                             f"{_measured_at(policy)}")
    chips = engine.chips(padded, dets)
    sharp = sharpness(chips[0])
    if sharp < policy.min_sharpness:
        raise EnrolmentError("blurred", f"the face is blurred (sharpness {sharp:.1f}, "
                                        f"at least {policy.min_sharpness:.1f} is needed)")
    yaw = yaw_ratio(dets.landmarks[0], engine.landmark_layout) if dets.landmarks is not None else 0.0
    if abs(yaw) > policy.max_abs_yaw:
        raise EnrolmentError("profile", f"the head is turned (yaw ratio {yaw:+.2f}, at most "
                                        f"±{policy.max_abs_yaw:.2f}); a frontal photo is needed")
    score = float(dets.score[0])
    floor = policy.min_blazeface_score if found.detector == "blazeface" else policy.min_hog_score
    if score < floor:
        raise EnrolmentError("low_score", f"the face is unclear to the {found.detector} detector (score "
                                          f"{score:.2f}, at least {floor:.2f} is needed)")
    eyes = _eye_aspect(padded, dets.xyxy[0]) if policy.min_eye_aspect is not None else None
    if eyes is not None and policy.min_eye_aspect is not None and eyes < policy.min_eye_aspect:
        raise EnrolmentError("eyes_closed", f"the eyes look closed (eye aspect ratio {eyes:.2f}, at least "
                                            f"{policy.min_eye_aspect:.2f} is needed)")
    return FaceCheck(engine.embed_chips(chips)[0], side, sharp, yaw, score, eyes)


def _measured_at(policy: EnrolmentPolicy) -> str:
    return (f" (measured on the photo at up to {policy.work_pixels / 1e6:.0f} MP; "
            "crop a larger photo closer to the face)")


_EYES = threading.local()  # one 68-point predictor per thread that uses it: a dlib model has one owner thread


def _eye_aspect(image: Image, box: FloatArray) -> float:
    """Eye aspect ratio from dlib's 68 points; the model loads at the thread's first use (opt-in check)."""
    meter: EyeMeter | None = getattr(_EYES, "meter", None)
    if meter is None:
        meter = _EYES.meter = EyeMeter()
    return meter.aspect_ratio(image, box)


def _faces_below_minimum(engine: FaceEngine, padded: Image) -> float | None:
    """Look for a face too small for the engine at 2x and 4x; return its size in original pixels."""
    for factor in (2, 4):
        h, w = padded.shape[:2]
        if h * w * factor * factor > 36_000_000:
            break
        big = np.asarray(cv2.resize(padded, (w * factor, h * factor), interpolation=cv2.INTER_LINEAR), np.uint8)
        dets: Detections = engine.detect(big)
        if len(dets):
            return float(np.min([min(dets.widths[i], dets.heights[i]) for i in range(len(dets))])) / factor
    return None


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

    def enrol(self, *, name: str, tier: str, photo: bytes, consent: str, role: str = "vip") -> Person:
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
        face = self._check_photo(photo)
        with self._lock:  # check-then-add must not interleave with another enrolment
            return self._store_person(name=name, tier=tier, role=role, consent=consent, photo=photo, face=face)

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
        return check_face(self._engine, image, self.policy, self._finder)

    def _store_person(self, *, name: str, tier: str, role: str, consent: str, photo: bytes,
                      face: FaceCheck) -> Person:
        best = self._gallery.search(face.embedding[None, :], k=1)[0].best
        if best is not None and best.score >= self.policy.duplicate_threshold:
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
        own_vectors = self._gallery.vectors(person_id)
        own = float(np.max(own_vectors @ face.embedding)) if len(own_vectors) else -1.0
        best = self._gallery.search(face.embedding[None, :], k=1)[0].best
        if (best is not None and best.person_id != person_id and best.score >= self.policy.duplicate_threshold
                and best.score > own):
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
