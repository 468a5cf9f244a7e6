"""Enrolment checks on one photo, shared by the edge box and the console: quality gates (one face, large,
sharp, frontal, clear to its detector, eyes open), the embedding of the largest face, the mean template of a
person's photos, and the duplicate search against a gallery. A refused photo raises
:class:`~vision.errors.FaceRejectedError` with a stable ``code``; the caller maps it to its own answer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from vision.engines.base import FaceEngine
from vision.engines.owner import on_owner
from vision.errors import BadImageError, FaceRejectedError
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
from vision.types import Detections, FloatArray, GalleryHit, Image

PAD_FRACTION = 0.25  # tight ID-style crops need context around the face (vision.single_face pads the same)
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
    """The photo's single usable face, or :class:`~vision.errors.FaceRejectedError` naming why there is none.

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
            raise FaceRejectedError("face_too_small",
                                    f"the face is about {small:.0f} px; at least {policy.min_face_px} px is needed"
                                    f"{_measured_at(policy)}")
        raise FaceRejectedError("no_face", "no face was found in the photo")
    if len(dets) > 1:
        raise FaceRejectedError("multiple_faces", f"the photo holds {len(dets)} faces; exactly one is needed")
    side = float(min(dets.widths[0], dets.heights[0]))
    if side < policy.min_face_px:
        raise FaceRejectedError("face_too_small",
                                f"the face is {side:.0f} px; at least {policy.min_face_px} px is needed"
                                f"{_measured_at(policy)}")
    chips = engine.chips(padded, dets)
    sharp = sharpness(chips[0])
    if sharp < policy.min_sharpness:
        raise FaceRejectedError("blurred", f"the face is blurred (sharpness {sharp:.1f}, "
                                           f"at least {policy.min_sharpness:.1f} is needed)")
    yaw = yaw_ratio(dets.landmarks[0], engine.landmark_layout) if dets.landmarks is not None else 0.0
    if abs(yaw) > policy.max_abs_yaw:
        raise FaceRejectedError("profile", f"the head is turned (yaw ratio {yaw:+.2f}, at most "
                                           f"±{policy.max_abs_yaw:.2f}); a frontal photo is needed")
    score = float(dets.score[0])
    floor = policy.min_blazeface_score if found.detector == "blazeface" else policy.min_hog_score
    if score < floor:
        raise FaceRejectedError("low_score", f"the face is unclear to the {found.detector} detector (score "
                                             f"{score:.2f}, at least {floor:.2f} is needed)")
    eyes = _eye_aspect(padded, dets.xyxy[0]) if policy.min_eye_aspect is not None else None
    if eyes is not None and policy.min_eye_aspect is not None and eyes < policy.min_eye_aspect:
        raise FaceRejectedError("eyes_closed", f"the eyes look closed (eye aspect ratio {eyes:.2f}, at least "
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


def find_duplicate(gallery: Gallery, embedding: FloatArray, threshold: float) -> GalleryHit | None:
    """The enrolled person ``embedding`` already is: the gallery's best match when it scores at least
    ``threshold`` (the voter's threshold: the one cosine calibrated for "this face is that person")."""
    best = gallery.search(embedding[None, :], k=1)[0].best
    return best if best is not None and best.score >= threshold else None


def own_similarity(gallery: Gallery, person_id: str, embedding: FloatArray) -> float:
    """The cosine of ``embedding`` to ``person_id``'s gallery entry; -1 when they have none."""
    own_vectors = gallery.vectors(person_id)
    return float(np.max(own_vectors @ embedding)) if len(own_vectors) else -1.0
