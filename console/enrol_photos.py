"""One enrolment photo at the console: the quality gates, what is stored of it, and the bank-wide duplicate check.

A photo is decoded safely (:func:`vision.imageio.decode_image` with the policy's byte and pixel limits) and goes
through the edge's own gates (:func:`vision.enrolment.check_face` on the context's engine pool). A refusal is a
:class:`~console.errors.ConsoleError` with the gate's code and ``photo=<form field>``, so a form can point at the
file it means: 413/415 for a bad file, 422 for a face that will not do. Nothing here writes to the database;
:mod:`console.enrolment` does, under the gallery lock.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.context import ConsoleContext
from console.db import utcnow
from console.dupindex import DuplicateIndex, TemplateCipher, index_for
from console.errors import ConsoleError
from console.security import Principal
from console.tables import Person, Photo
from vision.enrolment import FaceCheck, check_face, embed_photo
from vision.errors import BadImageError, EngineBusyError, FaceRejectedError
from vision.imageio import decode_image
from vision.types import FloatArray


@dataclass(frozen=True, slots=True)
class PhotoUpload:
    """One uploaded photo: its bytes and the form field (or file name) a refusal should name."""

    data: bytes
    field: str = "photo"


@dataclass(frozen=True, slots=True)
class CheckedPhoto:
    """A photo that passed every gate: its face check, the decoded size and what is stored of the file."""

    upload: PhotoUpload
    face: FaceCheck
    width: int
    height: int
    content_type: str
    model_id: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.upload.data).hexdigest()


@dataclass(frozen=True, slots=True)
class DuplicateMatch:
    """The enrolled person a face already is, as a refusal shows it (``person_id`` only when in scope)."""

    person_id: str
    name: str
    role: str
    tier: str
    branch_code: str
    branch_name: str
    score: float
    in_scope: bool = field(default=False)

    def public(self) -> dict[str, Any]:
        """What a 409 ``duplicate`` carries as ``match``."""
        out: dict[str, Any] = {"name": self.name, "role": self.role, "branch_code": self.branch_code,
                               "branch_name": self.branch_name, "score": round(self.score, 4)}
        if self.in_scope:
            out = {"person_id": self.person_id, **out}
        return out


_PHOTO_ZH = {
    "no_face": "照片中未找到人脸", "multiple_faces": "照片中有多张人脸，须只有一张", "face_too_small": "人脸太小",
    "blurred": "人脸模糊", "profile": "头部偏转，须为正脸照片", "low_score": "人脸不清晰", "eyes_closed": "眼睛闭合",
    "empty": "文件为空", "too_large": "文件过大", "not_an_image": "不是 JPEG、PNG、WebP、BMP 或 GIF 图片",
    "truncated": "图片损坏或不完整", "decompression_bomb": "图片像素过多",
}
_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG", "image/png"), (b"GIF8", "image/gif"), (b"BM", "image/bmp"))


def _content_type(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((t for magic, t in _MAGIC if data.startswith(magic)), "application/octet-stream")


def check_photo(ctx: ConsoleContext, upload: PhotoUpload) -> CheckedPhoto:
    """Decode and check one photo (no database): ConsoleError 413/415/422 naming ``upload.field``."""
    policy = ctx.config.face.policy()
    try:
        image = decode_image(upload.data, max_bytes=policy.max_bytes, max_pixels=policy.max_pixels,
                             fit_pixels=policy.work_pixels)
    except BadImageError as exc:
        status = 413 if exc.code in ("too_large", "decompression_bomb") else 415
        raise ConsoleError(exc.code, f"{_PHOTO_ZH.get(exc.code, '图片无法使用')} / {exc}", status,
                           photo=upload.field) from exc
    engine = ctx.engine()
    try:
        face = check_face(engine, image, policy)
    except FaceRejectedError as exc:
        raise ConsoleError(exc.code, f"{_PHOTO_ZH.get(exc.code, '照片不合格')} / {exc}", 422,
                           photo=upload.field) from exc
    except EngineBusyError as exc:
        raise ConsoleError("busy", "人脸引擎繁忙，请稍后重试 / the face engine is busy; try again shortly",
                           503) from exc
    height, width = image.shape[:2]
    return CheckedPhoto(upload, face, width, height, _content_type(upload.data), engine.model_id)


def index(ctx: ConsoleContext) -> DuplicateIndex:
    engine = ctx.engine()
    return index_for(ctx.extras, ctx.db, ctx.key, engine.model_id, engine.dim)


def matches_for(ctx: ConsoleContext, actor: Principal, embedding: FloatArray, *, k: int = 1, floor: float,
                exclude: str | None = None, session: Session | None = None) -> list[DuplicateMatch]:
    """The enrolled persons at or above ``floor`` for ``embedding``, best first, as ``actor`` may see them."""
    hits = [h for h in index(ctx).search(embedding, k, session=session, exclude=exclude) if h.score >= floor]
    if not hits:
        return []

    def describe(s: Session) -> list[DuplicateMatch]:
        rows = {p.id: p for p in s.scalars(select(Person).where(Person.id.in_([h.person_id for h in hits])))}
        return [DuplicateMatch(h.person_id, p.name, p.role, p.tier, p.home_branch.code, p.home_branch.name,
                               h.score, actor.sees_branch(p.home_branch_id))
                for h in hits if (p := rows.get(h.person_id)) is not None]

    if session is not None:
        return describe(session)
    with ctx.db.transaction() as own:
        return describe(own)


def find_duplicate(ctx: ConsoleContext, actor: Principal, embedding: Any, *, exclude: str | None = None,
                   session: Session | None = None) -> DuplicateMatch | None:
    """The best enrolled person at or above ``config.face.duplicate_threshold`` (other than ``exclude``)."""
    found = matches_for(ctx, actor, embedding, floor=ctx.config.face.duplicate_threshold, exclude=exclude,
                        session=session)
    return found[0] if found else None


def refuse_duplicates(ctx: ConsoleContext, actor: Principal, embedding: FloatArray, *, photo_field: str,
                      distinct_from: Sequence[str] = (), exclude: str | None = None,
                      session: Session | None = None) -> list[DuplicateMatch]:
    """409 ``duplicate`` when the face matches an enrolled person, unless the enroller has confirmed, for every
    such match, that it is another person (``distinct_from``: the ids a previous 409 showed; only a match in
    the caller's scope can be confirmed). Returns the confirmed matches (the caller audits them).

    dlib scores some different East-Asian people at 0.96-0.98, above the duplicate threshold, so a refusal
    alone would keep real customers out of the gallery; two near-identical templates make the edge's voter
    margin undecided between them (no greeting), never a greeting by the wrong name."""
    confirmed = []
    for match in matches_for(ctx, actor, embedding, k=5, floor=ctx.config.face.duplicate_threshold,
                             exclude=exclude, session=session):
        if not (match.in_scope and match.person_id in distinct_from):
            raise duplicate_error(match, photo_field)
        confirmed.append(match)
    return confirmed


def duplicate_error(match: DuplicateMatch, field: str | None = None) -> ConsoleError:
    extra: dict[str, Any] = {"match": match.public()}
    if field is not None:
        extra["photo"] = field
    return ConsoleError("duplicate", f"此人脸已登记为 {match.name}（{match.branch_name}，相似度 {match.score:.3f}）/ "
                                     f"this face is already enrolled as {match.name} at {match.branch_code} "
                                     f"(similarity {match.score:.3f})", 409, **extra)


def ensure_checked(ctx: ConsoleContext, photo: CheckedPhoto | PhotoUpload) -> CheckedPhoto:
    checked = photo if isinstance(photo, CheckedPhoto) else check_photo(ctx, photo)
    if checked.model_id != ctx.engine().model_id:
        return check_photo(ctx, checked.upload)
    return checked


def same_person(ctx: ConsoleContext, template: FloatArray, photo: CheckedPhoto, name: str) -> None:
    threshold = ctx.config.face.duplicate_threshold
    own = float(np.dot(template, photo.face.embedding))
    if own < threshold:
        raise ConsoleError("not_same_person", f"此照片与{name}的其他照片不像同一人（相似度 {own:.3f}，至少须 "
                                              f"{threshold:.4f}）/ this face does not match {name}'s other photos "
                                              f"(similarity {own:.3f}, at least {threshold:.4f} is needed)", 422,
                           photo=photo.upload.field, score=round(own, 4))


def put_photos(ctx: ConsoleContext, photos: Sequence[CheckedPhoto]) -> list[str]:
    keys: list[str] = []
    try:
        for photo in photos:
            keys.append(ctx.blobs.put(photo.upload.data))
    except BaseException:
        delete_blobs(ctx, keys)
        raise
    return keys


def delete_blobs(ctx: ConsoleContext, keys: Sequence[str | None]) -> None:
    for key in keys:
        if key:
            ctx.blobs.delete(key)


def photo_row(ctx: ConsoleContext, person_id: str, photo: CheckedPhoto, key: str, actor: Principal) -> Photo:
    cipher = TemplateCipher(ctx.key)
    face = photo.face
    return Photo(id=secrets.token_hex(16), person_id=person_id, blob_key=key, sha256=photo.sha256,
                 content_type=photo.content_type, width=photo.width, height=photo.height, face_px=face.face_px,
                 sharpness=face.sharpness, yaw=face.yaw, detector_score=face.detector_score,
                 embedding=cipher.encrypt(face.embedding), model_id=photo.model_id, created_by=actor.actor[:64],
                 created_at=utcnow())


def embeddings(ctx: ConsoleContext, photos: Sequence[Photo], model_id: str) -> list[FloatArray]:
    """The embeddings of ``photos`` under ``model_id``: stored ones as they are; a photo embedded by another model
    (the engine changed since) is embedded again from its stored file and its row updated, because vectors of
    two models cannot be averaged or compared. A stored photo that no longer gives a face is left out."""
    cipher = TemplateCipher(ctx.key)
    out: list[FloatArray] = []
    for photo in photos:
        if photo.model_id == model_id:
            out.append(cipher.decrypt(photo.embedding))
            continue
        vector = embed_photo(ctx.engine(), ctx.blobs.get(photo.blob_key))
        if vector is not None:
            photo.embedding, photo.model_id = cipher.encrypt(vector), model_id
            out.append(vector)
    return out
