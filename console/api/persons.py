"""Persons and their photos over HTTP: list, enrol, read, change, erase; add, view and remove photos.

Each endpoint checks the role first, then the scope: a person outside the caller's scope answers 404 (an id of
another branch is never confirmed); enrolling into a branch outside it answers 403. The rules themselves live
in :mod:`console.enrolment`, which the bulk importer calls too; this module only turns forms into its inputs.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import date
from typing import Annotated, Any

import cv2
import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from console import audit, enrolment, persons_cache
from console.api.deps import Caller, Ctx, caller_in
from console.consent import MAX_EVIDENCE_BYTES
from console.context import ConsoleContext
from console.enrolment import ConsentInput, PersonChanges, PersonInput, PhotoUpload
from console.errors import ConsoleError, not_found
from console.persons_query import (
    PHOTO_ROLES,
    READ_ROLES,
    PersonFilter,
    list_persons,
    loaded_person,
    person_detail,
    visible_person,
)
from console.security import Principal
from console.storage import BlobNotFound
from console.tables import Photo
from vision.errors import BadImageError
from vision.imageio import decode_image

router = APIRouter(prefix="/api", tags=["persons"])
THUMB_PX = 160
CLAIM_WAIT_S = 30.0  # past this, a request waiting for another's answer computes its own
Upload = Annotated[UploadFile | None, File()]


def read_photo(ctx: Ctx, upload: UploadFile | None, field: str) -> PhotoUpload | None:
    """The uploaded photo (None when the field is empty), read no further than one byte past the size limit."""
    if upload is None or (not upload.filename and not upload.size):
        return None
    data = upload.file.read(ctx.config.face.policy().max_bytes + 1)
    return PhotoUpload(data, field) if data or upload.filename else None


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").replace("，", ",").split(",") if part.strip())


def _day(text: str | None) -> date | None:
    if not (text or "").strip():
        return None
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        raise ConsoleError("invalid_consent", f"同意日期“{text}”须为 YYYY-MM-DD / the consent date {text!r} must be "
                                              "YYYY-MM-DD", 422, field="consent_date") from None


def _detail(ctx: Ctx, caller: Principal, person_id: str) -> dict[str, Any]:
    with ctx.db.transaction() as session:
        visible_person(session, caller, person_id)
        return person_detail(session, loaded_person(session, person_id), caller)


@router.get("/persons")
async def get_persons(ctx: Ctx, request: Request, q: Annotated[str, Query(max_length=128)] = "",
                      role: Annotated[str, Query(max_length=8)] = "", tier: Annotated[str, Query(max_length=32)] = "",
                      branch: Annotated[str, Query(max_length=32)] = "",
                      limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0)] = 0
                      ) -> Response:
    """The persons list; an answer is kept while its data stands (:mod:`console.persons_cache`). The caller and
    the list's version are read in one transaction, on one worker thread. A kept answer for an API token is
    mostly sent before this endpoint, by :mod:`console.persons_fast`; this is the full way for the rest."""
    query = PersonFilter(q.strip(), role, tier, branch.strip().upper(), limit, offset)
    body = await run_in_threadpool(_list_body, ctx, request, query)
    return Response(body, media_type="application/json")


def _list_body(ctx: ConsoleContext, request: Request, query: PersonFilter) -> bytes:
    cache = persons_cache.ListCache.of(ctx.extras)
    with ctx.db.transaction() as session:
        caller = caller_in(session, request)  # each request asks: a revoke or a scope change counts at once
        caller.require_role(*READ_ROLES)
        key = (query, caller.branch_ids, caller.role in PHOTO_ROLES)
        version = persons_cache.list_version(session)  # before the rows: the answer is no older than this number
        kept = cache.claim(version, key)
        if isinstance(kept, threading.Event):  # another request computes this very answer: wait for it
            kept.wait(CLAIM_WAIT_S)
            kept = cache.get(version, key)
            claimed = False
        else:
            claimed = kept is None
        if kept is not None:
            return kept.body
        try:
            counted = (replace(query, limit=0, offset=0), caller.branch_ids)  # every page of it has this total
            answer = list_persons(session, caller, query, cache.total(version, counted))
            cache.put_total(version, counted, (answer["total"], answer["total_exact"]))
        except BaseException:
            if claimed:
                cache.release(version, key)
            raise
    body = json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    cache.put(version, key, persons_cache.Answer.of(body))
    return body


@router.post("/persons", status_code=201)
def post_person(ctx: Ctx, caller: Caller, name: Annotated[str, Form(max_length=1000)],
                role: Annotated[str, Form(max_length=16)], home_branch: Annotated[str, Form(max_length=64)],
                tier: Annotated[str, Form(max_length=1000)] = "", notes: Annotated[str, Form(max_length=8000)] = "",
                scope_kind: Annotated[str, Form(max_length=16)] = "branches",
                scope_region: Annotated[str | None, Form(max_length=200)] = None,
                scope_branches: Annotated[str, Form(max_length=4000)] = "",
                external_id: Annotated[str | None, Form(max_length=200)] = None,
                plates: Annotated[str, Form(max_length=1000)] = "",
                distinct_from: Annotated[str, Form(max_length=400, description=(
                    "ids of enrolled persons a 409 duplicate showed, confirmed by the enroller as other people"))] = "",
                consent_purpose: Annotated[str, Form(max_length=1000)] = "",
                consent_date: Annotated[str, Form(max_length=32)] = "",
                consent_operator: Annotated[str, Form(max_length=1000)] = "",
                consent_covers: Annotated[list[str] | None, Form(description=(
                    "repeatable: the uses the consent covers besides the enrolment (visit_template)"))] = None,
                consent_evidence: Upload = None, photo: Upload = None, photo2: Upload = None,
                photo3: Upload = None, photo4: Upload = None, photo5: Upload = None) -> dict[str, Any]:
    caller.require_role(*enrolment.WRITE_ROLES)
    photos = [p for f, u in (("photo", photo), ("photo2", photo2), ("photo3", photo3), ("photo4", photo4),
                             ("photo5", photo5)) if (p := read_photo(ctx, u, f)) is not None]
    evidence = consent_evidence.file.read(MAX_EVIDENCE_BYTES + 1) if consent_evidence is not None else None
    evidence_name = consent_evidence.filename if consent_evidence is not None else None
    data = PersonInput(name=name, role=role.strip().lower(), tier=tier, home_branch=home_branch,
                       scope_kind=scope_kind.strip().lower(), scope_region=scope_region,
                       scope_branches=_csv(scope_branches), external_id=external_id, notes=notes, plates=_csv(plates),
                       distinct_from=_csv(distinct_from))
    covers = tuple(code for value in consent_covers or () for code in _csv(value))
    consent = ConsentInput(consent_purpose, _day(consent_date), consent_operator, evidence or None, evidence_name,
                           covers)
    person = enrolment.create_person(ctx, caller, data, photos, consent)
    return _detail(ctx, caller, person.id)


@router.get("/persons/{person_id}")
def get_person(person_id: str, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    caller.require_role(*READ_ROLES)
    return _detail(ctx, caller, person_id)


class PersonPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=1000)
    tier: str | None = Field(default=None, max_length=1000)
    notes: str | None = Field(default=None, max_length=8000)
    scope_kind: str | None = Field(default=None, max_length=16)
    scope_region: str | None = Field(default=None, max_length=200)
    scope_branches: list[str] | str | None = Field(default=None, description="codes: a list or comma separated")
    external_id: str | None = Field(default=None, max_length=200)


@router.patch("/persons/{person_id}")
def patch_person(person_id: str, body: PersonPatch, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    branches = body.scope_branches
    codes = _csv(branches) if isinstance(branches, str) else (tuple(branches) if branches is not None else None)
    changes = PersonChanges(name=body.name, tier=body.tier, notes=body.notes,
                            scope_kind=body.scope_kind.strip().lower() if body.scope_kind else None,
                            scope_region=body.scope_region, scope_branches=codes, external_id=body.external_id)
    enrolment.update_person(ctx, caller, person_id, changes)
    return _detail(ctx, caller, person_id)


@router.delete("/persons/{person_id}")
def delete_person(person_id: str, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    seq = enrolment.erase_person(ctx, caller, person_id)
    return {"erased": person_id, "seq": seq}


@router.post("/persons/{person_id}/photos", status_code=201)
def post_photo(person_id: str, ctx: Ctx, caller: Caller, photo: Upload = None) -> dict[str, Any]:
    upload = read_photo(ctx, photo, "photo")
    if upload is None:
        raise ConsoleError("no_photo", "请选择照片 / choose a photo", 422, photo="photo")
    enrolment.add_photo(ctx, caller, person_id, upload)
    return _detail(ctx, caller, person_id)


@router.delete("/persons/{person_id}/photos/{photo_id}")
def delete_photo(person_id: str, photo_id: str, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    enrolment.remove_photo(ctx, caller, person_id, photo_id)
    return _detail(ctx, caller, person_id)


@router.get("/persons/{person_id}/photos/{photo_id}")
def get_photo(person_id: str, photo_id: str, ctx: Ctx, caller: Caller,
              thumb: Annotated[bool, Query()] = False) -> Response:
    """The stored photo (or a 160 px JPEG of it); every view is audited ``photo_view``."""
    caller.require_role(*PHOTO_ROLES)
    with ctx.db.transaction() as session:
        person = visible_person(session, caller, person_id)
        photo = session.get(Photo, photo_id)
        if photo is None or photo.person_id != person.id:
            raise not_found("photo", photo_id)
        try:
            data = ctx.blobs.get(photo.blob_key)
        except BlobNotFound:
            raise not_found("photo", photo_id) from None
        content_type = photo.content_type
        if thumb:
            data, content_type = _thumbnail(data), "image/jpeg"
        audit.record(session, caller, "photo_view", object_type="person", object_id=person.id,
                     branch_code=person.home_branch.code, detail={"photo_id": photo.id, "thumb": thumb})
    return Response(data, media_type=content_type,
                    headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})


def _thumbnail(data: bytes) -> bytes:
    try:
        image = decode_image(data, fit_pixels=THUMB_PX * THUMB_PX * 4)
    except BadImageError as exc:
        raise ConsoleError("bad_photo", f"照片无法解码 / the stored photo cannot be decoded: {exc}", 500) from exc
    h, w = image.shape[:2]
    scale = THUMB_PX / max(h, w)
    if scale < 1:
        image = np.asarray(cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                                      interpolation=cv2.INTER_AREA), np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ConsoleError("bad_photo", "缩略图生成失败 / the thumbnail could not be made", 500)
    return bytes(buf.tobytes())
